/**
 * From what a user wrote (`RN50`, `./my-model.pt`, `https://host/x.pt#sha256=…`) to a local file path,
 * downloading into the cache when needed.
 *
 * Decisions:
 * - A URL given without `#sha256=` is allowed: it is downloaded once, its SHA-256 computed and recorded in the
 *   manifest, and a warning says that nothing was verified and how to pin it. It is cached by URL, so later runs
 *   use the cached copy (verified against the recorded hash by `verifyCache`). `requireChecksum` (or
 *   CLIP_IQA_REQUIRE_CHECKSUM=1) turns such URLs into an E_OPTION error for environments that want every byte pinned.
 * - Registry entries without a published checksum (the official `iter_80000.pth`) are treated the same way.
 * - Offline (`offline` or CLIP_IQA_OFFLINE=1): nothing touches the network. A missing file is an E_OFFLINE error
 *   naming the file, the exact path to put it at, and where to get it.
 * - Mirror (`mirror` or CLIP_IQA_MIRROR=<base URL or directory>): every registry file is fetched from
 *   `<mirror>/<fileName>` (file name URL-encoded, e.g. `CLIP-IQA%2B_learned_prompts-603f3273.pth`) instead of its
 *   publisher, with the same checksums. The mirror replaces the publisher's URLs rather than preceding them: an
 *   intranet that needs a mirror usually cannot reach the internet, and falling back would only add timeouts.
 *   URLs given explicitly are fetched as given.
 */
import { rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ClipIqaError, isErrno } from '../errors.js';
import {
  cacheError,
  cachedManifest,
  cacheRoot,
  checkHash,
  describeExpected,
  entryPath,
  fileSize,
  manifestPath,
  pinnedUrlPath,
  readManifest,
  sha256File,
  unpinnedUrlPath,
  writeManifest,
  type ExpectedHash,
  type Verification,
} from './cache.js';
import { download, type DownloadJob, type DownloadOptions, type HubLogger } from './download.js';
import { packagedFile } from './packaged.js';
import { createProgressBar, type ProgressCallback } from './progress.js';
import { DEFAULT_REGISTRY, findEntry, getEntry, type FileKind, type Registry, type RegistryEntry } from './registry.js';

export const OFFLINE_ENV = 'CLIP_IQA_OFFLINE';
export const MIRROR_ENV = 'CLIP_IQA_MIRROR';
export const REQUIRE_CHECKSUM_ENV = 'CLIP_IQA_REQUIRE_CHECKSUM';

export interface HubOptions extends Omit<DownloadOptions, 'onProgress' | 'log'> {
  /** Cache root; default `$CLIP_IQA_HOME` or the platform cache directory (see `cacheRoot`). */
  readonly cacheDir?: string;
  /** Never use the network; default from CLIP_IQA_OFFLINE. */
  readonly offline?: boolean;
  /** Base URL (or directory) serving every registry file as `<mirror>/<fileName>`; default from CLIP_IQA_MIRROR. */
  readonly mirror?: string;
  /** Refuse URLs without `#sha256=`; default from CLIP_IQA_REQUIRE_CHECKSUM. */
  readonly requireChecksum?: boolean;
  /** Registry to resolve names in (tests, private checkpoints); default the built-in one. */
  readonly registry?: Registry;
  /** Progress events. When absent, a progress bar is drawn on stderr if it is a terminal and not `quiet`. */
  readonly onProgress?: ProgressCallback;
  /** No progress bar and no messages on stderr (errors are still thrown). */
  readonly quiet?: boolean;
  /** Where notes and warnings go; default stderr (`info` only on a terminal), nothing when `quiet`. */
  readonly log?: HubLogger;
  /** Environment to read (default `process.env`); injectable for tests. */
  readonly env?: NodeJS.ProcessEnv;
}

export interface ResolvedFile {
  readonly path: string;
  readonly source: 'registry' | 'path' | 'url';
  /** The registry entry, for registry names. */
  readonly entry: RegistryEntry | null;
  /** SHA-256 of the cached file (null for local paths, which are used as they are). */
  readonly sha256: string | null;
  readonly verification: Verification | null;
  /** True when this call downloaded the file. */
  readonly downloaded: boolean;
  /** The URL the file came from, when known. */
  readonly url: string | null;
}

export type SourceSpec =
  | { readonly type: 'registry'; readonly entry: RegistryEntry }
  | { readonly type: 'path'; readonly path: string }
  | { readonly type: 'url'; readonly url: string; readonly sha256: string | null; readonly fileName: string };

function flag(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return undefined;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ClipIqaError('E_OPTION', `${name}="${env[name]}" is not understood: use 1 (on) or 0 (off)`);
}

export interface HubSettings {
  readonly root: string;
  readonly offline: boolean;
  /** Why offline is on, for messages. */
  readonly offlineBecause: string;
  readonly mirror: string | null;
  readonly requireChecksum: boolean;
  readonly registry: Registry;
  readonly log: HubLogger;
}

function defaultLogger(quiet: boolean): HubLogger {
  return (level, message) => {
    if (quiet) return;
    if (level === 'info' && !process.stderr.isTTY) return;
    process.stderr.write(`clip-iqa: ${level === 'warn' ? 'warning: ' : ''}${message}\n`);
  };
}

/** A mirror as a base URL without trailing slash; a directory path becomes a `file:` URL. */
export function normalizeMirror(mirror: string): string {
  const m = mirror.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(m)) {
    let u: URL;
    try {
      u = new URL(m);
    } catch {
      throw new ClipIqaError('E_OPTION', `The mirror "${mirror}" is not a valid URL`);
    }
    if (!['http:', 'https:', 'file:'].includes(u.protocol)) {
      throw new ClipIqaError('E_OPTION', `The mirror "${mirror}" uses ${u.protocol}; use an http(s):// URL or a directory`);
    }
    return u.href.replace(/\/+$/, '');
  }
  return pathToFileURL(resolve(m)).href.replace(/\/+$/, '');
}

/** Where the mirror serves a registry file. */
export function mirrorUrl(mirror: string, fileName: string): string {
  return `${normalizeMirror(mirror)}/${encodeURIComponent(fileName)}`;
}

/** Options and environment merged into what the hub acts on. */
export function hubSettings(options: HubOptions = {}): HubSettings {
  const env = options.env ?? process.env;
  const envOffline = flag(env, OFFLINE_ENV);
  const offline = options.offline ?? envOffline ?? false;
  const mirrorRaw = options.mirror ?? env[MIRROR_ENV]?.trim();
  return {
    root: cacheRoot({ cacheDir: options.cacheDir, env }),
    offline,
    offlineBecause: options.offline !== undefined ? 'the offline option is set' : `${OFFLINE_ENV}=${env[OFFLINE_ENV]}`,
    mirror: mirrorRaw ? normalizeMirror(mirrorRaw) : null,
    requireChecksum: options.requireChecksum ?? flag(env, REQUIRE_CHECKSUM_ENV) ?? false,
    registry: options.registry ?? DEFAULT_REGISTRY,
    log: options.log ?? defaultLogger(options.quiet ?? false),
  };
}

const HEX64 = /^[0-9a-f]{64}$/;

function kindWord(kind: FileKind): string {
  return kind === 'vocab' ? 'vocabulary' : kind === 'context' ? 'CLIP-IQA+ context' : 'model';
}

/** The file name a URL points at, safe as one path segment. */
function urlFileName(u: URL): string {
  let name = '';
  try {
    name = decodeURIComponent(basename(u.pathname));
  } catch {
    name = basename(u.pathname);
  }
  name = name.replace(/[^A-Za-z0-9._+@-]+/g, '_').replace(/^\.+/, '');
  return name || 'download';
}

function parseUrl(spec: string): SourceSpec {
  const hashAt = spec.indexOf('#');
  const base = hashAt < 0 ? spec : spec.slice(0, hashAt);
  const fragment = hashAt < 0 ? '' : spec.slice(hashAt + 1);
  let u: URL;
  try {
    u = new URL(base);
  } catch {
    throw new ClipIqaError('E_OPTION', `"${spec}" is not a valid URL`);
  }
  if (u.protocol === 'file:') {
    if (fragment) throw new ClipIqaError('E_OPTION', `A file: URL takes no fragment: ${spec}`);
    return { type: 'path', path: fileURLToPath(u) };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ClipIqaError('E_OPTION', `Unsupported URL scheme ${u.protocol} in "${spec}": use https://, http:// or a local path`);
  }
  let sha256: string | null = null;
  if (fragment) {
    const m = /^sha256[=:]([0-9a-fA-F]+)$/.exec(fragment);
    if (!m || !HEX64.test(m[1]!.toLowerCase())) {
      throw new ClipIqaError(
        'E_OPTION',
        `The URL fragment "#${fragment}" in ${spec} is not a checksum: write #sha256= followed by the file's 64-hex-digit SHA-256`,
      );
    }
    sha256 = m[1]!.toLowerCase();
  }
  return { type: 'url', url: u.href, sha256, fileName: urlFileName(u) };
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') || p.startsWith('~\\') ? resolve(homedir(), p.slice(2)) : p;
}

async function isFile(p: string): Promise<boolean | 'dir'> {
  try {
    const st = await stat(p);
    return st.isDirectory() ? 'dir' : st.isFile();
  } catch {
    return false;
  }
}

/**
 * What a spec names. Order: a URL; something written as a path (`./x`, `/x`, `~/x`, `C:\x`); a registry name of
 * `kind`; an existing file; otherwise E_NOT_FOUND listing the registry names. So `RN50` is the registry model even
 * if a file called `RN50` is in the working directory (write `./RN50` for that file).
 */
export async function parseSource(spec: string, kind: FileKind, registry: Registry = DEFAULT_REGISTRY): Promise<SourceSpec> {
  const s = spec.trim();
  if (!s) throw new ClipIqaError('E_OPTION', `An empty ${kindWord(kind)} name`);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return parseUrl(s);
  const pathLike = /^(\.{1,2}([/\\]|$)|[/\\~]|[A-Za-z]:[/\\])/.test(s);
  if (!pathLike) {
    const entry = findEntry(registry, s, kind);
    if (entry) return { type: 'registry', entry };
  }
  const p = resolve(expandHome(s));
  const found = await isFile(p);
  if (found === true) return { type: 'path', path: p };
  if (found === 'dir') throw new ClipIqaError('E_NOT_FOUND', `${p} is a directory; a ${kindWord(kind)} must be a file`);
  if (pathLike) throw new ClipIqaError('E_NOT_FOUND', `No such ${kindWord(kind)} file: ${p}`);
  // Neither a name nor a file: say both, with the names that exist.
  try {
    getEntry(registry, s, kind);
  } catch (e) {
    if (e instanceof ClipIqaError) {
      throw new ClipIqaError('E_NOT_FOUND', `${e.message} (No file ${p} exists either.)`);
    }
    throw e;
  }
  throw new ClipIqaError('E_NOT_FOUND', `No such ${kindWord(kind)}: ${s}`);
}

/** A file the cache holds or will hold. */
export interface CacheTarget {
  readonly dest: string;
  readonly fileName: string;
  readonly expected: ExpectedHash;
  /** Where to fetch from, in order. */
  readonly urls: readonly string[];
  /** The URL to tell an offline user about. */
  readonly publicUrl: string;
  readonly label: string;
  readonly entry: RegistryEntry | null;
  readonly sizeHint: number | null;
}

/** @internal Where a non-path source lives in the cache and where to fetch it. */
export function targetOf(src: Exclude<SourceSpec, { type: 'path' }>, st: HubSettings): CacheTarget {
  if (src.type === 'registry') {
    const e = src.entry;
    return {
      dest: entryPath(st.root, e),
      fileName: e.fileName,
      expected: { sha256: e.sha256, sha256Prefix: e.sha256Prefix },
      urls: st.mirror ? [mirrorUrl(st.mirror, e.fileName)] : e.urls,
      publicUrl: e.urls[0]!,
      label: `${kindWord(e.kind)} ${e.name}`,
      entry: e,
      sizeHint: e.sizeBytes,
    };
  }
  return {
    dest: src.sha256 ? pinnedUrlPath(st.root, src.sha256, src.fileName) : unpinnedUrlPath(st.root, src.url, src.fileName),
    fileName: src.fileName,
    expected: { sha256: src.sha256, sha256Prefix: null },
    urls: [src.url],
    publicUrl: src.url,
    label: src.url,
    entry: null,
    sizeHint: null,
  };
}

/** Whether a target comes with no published checksum at all (verified only against the hash recorded on first download). */
function unpublished(t: CacheTarget): boolean {
  return t.expected.sha256 === null && t.expected.sha256Prefix === null;
}

function offlineError(t: CacheTarget, st: HubSettings): ClipIqaError {
  return new ClipIqaError(
    'E_OFFLINE',
    `Offline mode (${st.offlineBecause}): the ${t.label} is not in the cache and may not be downloaded.\n` +
      `  needed file:   ${t.fileName}${unpublished(t) ? '' : ` (${describeExpected(t.expected)})`}\n` +
      `  place it at:   ${t.dest}\n` +
      `  download from: ${t.publicUrl}\n` +
      'Fetch it on a machine with network access and copy it there, or turn offline mode off.',
  );
}

function unverifiedWarning(t: CacheTarget, sha256: string, where: string): string {
  if (t.entry) {
    return (
      `${t.fileName} has no published checksum, so it was not verified against its publisher. ` +
      `Its SHA-256 ${sha256} is now recorded in ${where} and checked by "models verify" from now on.`
    );
  }
  return (
    `${t.publicUrl} was given without a checksum, so its content was not verified. SHA-256 of what was downloaded: ${sha256}. ` +
    `Pin it with ${t.publicUrl}#sha256=${sha256}`
  );
}

/**
 * A file already in the cache: trusted when its manifest agrees (size and hash as expected); hashed once when it
 * has no manifest (copied there by hand). Returns null when absent, or when corrupt and the network may repair it.
 */
async function fromCache(t: CacheTarget, st: HubSettings, signal?: AbortSignal): Promise<ResolvedFile | null> {
  const m = await cachedManifest(t.dest, t.expected);
  const source = t.entry ? 'registry' : 'url';
  if (m) return { path: t.dest, source, entry: t.entry, sha256: m.sha256, verification: m.verification, downloaded: false, url: m.url };
  if ((await fileSize(t.dest)) === null) return null;

  const old = await readManifest(t.dest);
  st.log('info', `checking ${t.dest}`);
  const { sha256, size } = await sha256File(t.dest, signal);
  // Without a published hash, the one recorded on first download is the reference (trust on first use).
  const expected: ExpectedHash = unpublished(t) && old ? { sha256: old.sha256, sha256Prefix: null } : t.expected;
  const verification = checkHash(expected, sha256);
  if (verification !== null) {
    const v: Verification = unpublished(t) ? 'recorded' : verification;
    if (!old) st.log('warn', v === 'recorded' ? unverifiedWarning(t, sha256, manifestPath(t.dest)) : `adopting ${t.dest}, placed in the cache by hand (checksum ok)`);
    try {
      await writeManifest(t.dest, {
        version: 1,
        fileName: t.fileName,
        kind: t.entry?.kind ?? null,
        name: t.entry?.name ?? null,
        source: t.publicUrl,
        url: old?.url ?? null,
        sha256,
        size,
        verification: v,
        origin: old?.origin ?? 'placed',
        createdAt: old?.createdAt ?? new Date().toISOString(),
      });
    } catch (e) {
      // A read-only, pre-filled cache is fine: the file is good, it just gets hashed again next time.
      if (!isErrno(e, 'EACCES', 'EPERM', 'EROFS')) throw e;
    }
    return { path: t.dest, source, entry: t.entry, sha256, verification: v, downloaded: false, url: old?.url ?? null };
  }

  const problem =
    `The cached ${t.fileName} at ${t.dest} is damaged or is another file: expected ${old && unpublished(t) ? `the recorded sha256 ${old.sha256}` : describeExpected(t.expected)}, ` +
    `found sha256 ${sha256} (${size} bytes).`;
  if (st.offline) {
    throw new ClipIqaError('E_CHECKSUM', `${problem} Replace it with the right file (from ${t.publicUrl}), or delete it and run again online.`);
  }
  st.log('warn', `${problem} Downloading it again.`);
  try {
    await rm(t.dest, { force: true });
    await rm(manifestPath(t.dest), { force: true });
  } catch (e) {
    throw cacheError(e, t.dest, `replacing the damaged ${t.fileName}`);
  }
  return null;
}

/**
 * Resolves a spec to a local file, downloading into the cache when needed; see `resolveFile` for the short form.
 * `spec` undefined means the registry's default of `kind` (RN50, the BPE vocabulary, clipiqa+).
 */
export async function resolveSource(spec: string | undefined, kind: FileKind, options: HubOptions = {}): Promise<ResolvedFile> {
  const st = hubSettings(options);
  return resolveParsed(await parseSource(spec ?? st.registry.defaults[kind], kind, st.registry), st, options);
}

/**
 * @internal `resolveSource` once the spec is parsed. With `replace`, the cached copy is not looked at: `replace`
 * runs (removing it) and the file is downloaded again.
 */
export async function resolveParsed(src: SourceSpec, st: HubSettings, options: HubOptions, replace?: () => Promise<unknown>): Promise<ResolvedFile> {
  if (src.type === 'path') return { path: src.path, source: 'path', entry: null, sha256: null, verification: null, downloaded: false, url: null };
  // Files the package ships (the vocabulary) are used where they are, never cached or fetched.
  const packaged = src.type === 'registry' ? packagedFile(src.entry) : null;
  if (packaged && src.type === 'registry') {
    return { path: packaged, source: 'registry', entry: src.entry, sha256: src.entry.sha256, verification: 'sha256', downloaded: false, url: null };
  }
  if (src.type === 'url' && src.sha256 === null && st.requireChecksum) {
    throw new ClipIqaError(
      'E_OPTION',
      `${src.url} has no checksum and checksums are required (${REQUIRE_CHECKSUM_ENV} or requireChecksum): add #sha256=<the file's 64-hex-digit SHA-256>`,
    );
  }
  const t = targetOf(src, st);
  if (!replace) {
    const cached = await fromCache(t, st, options.signal);
    if (cached) return cached;
  }
  if (st.offline) throw offlineError(t, st);
  await replace?.();
  return fetchTarget(t, st, options);
}

/** Downloads a target (under its lock) and reports it as a resolved file. */
async function fetchTarget(t: CacheTarget, st: HubSettings, options: HubOptions): Promise<ResolvedFile> {
  const job: DownloadJob = {
    fileName: t.fileName,
    dest: t.dest,
    urls: t.urls,
    expected: t.expected,
    sizeHint: t.sizeHint,
    kind: t.entry?.kind ?? null,
    name: t.entry?.name ?? null,
    source: t.publicUrl,
  };
  const bar = options.onProgress ? null : createProgressBar({ quiet: options.quiet });
  try {
    const r = await download(job, { ...options, onProgress: options.onProgress ?? (bar?.active ? bar.update : undefined), log: st.log });
    if (r.downloaded && r.verification === 'recorded') st.log('warn', unverifiedWarning(t, r.sha256, manifestPath(t.dest)));
    return {
      path: r.path,
      source: t.entry ? 'registry' : 'url',
      entry: t.entry,
      sha256: r.sha256,
      verification: r.verification,
      downloaded: r.downloaded,
      url: r.url,
    };
  } finally {
    bar?.end();
  }
}

/**
 * The local path of a model, vocabulary or context: a registry name (forgiving spelling), a local path, or a URL
 * (`https://…#sha256=<64 hex>`), downloaded into the cache if it is not there yet.
 */
export async function resolveFile(spec: string | undefined, kind: FileKind, options: HubOptions = {}): Promise<string> {
  return (await resolveSource(spec, kind, options)).path;
}

/** Where `spec` is (or would be) cached, without touching the network; null for local paths. */
export async function cachedPathOf(spec: string, kind: FileKind, options: HubOptions = {}): Promise<string | null> {
  const st = hubSettings(options);
  const src = await parseSource(spec, kind, st.registry);
  return src.type === 'path' ? null : targetOf(src, st).dest;
}
