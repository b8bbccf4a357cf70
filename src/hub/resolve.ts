/**
 * From what a user wrote (`RN50`, `./my-model.pt`, a model folder, `hf:laion/CLIP-ViT-B-32-laion2B-s34B-b79K`,
 * `https://host/x.pt#sha256=…`) to a local file, through the sources that can provide it (sources.ts), tried in
 * order: first every one that needs no network (a local path, clip-iqa's cache, the huggingface_hub cache), then
 * each that can download, until one succeeds. When all fail, the error lists every source and why.
 *
 * Decisions:
 * - A URL given without `#sha256=` is allowed: it is downloaded once, its SHA-256 computed and recorded in the
 *   manifest, and a warning says that nothing was verified and how to pin it. It is cached by URL, so later runs
 *   use the cached copy (verified against the recorded hash by `verifyCache`). `requireChecksum` (or
 *   CLIP_IQA_REQUIRE_CHECKSUM=1) turns such URLs into an E_OPTION error for environments that want every byte pinned.
 * - Registry entries without a published checksum (the official `iter_80000.pth`) are treated the same way.
 * - Files of a Hugging Face repository are verified against the SHA-256 the hub publishes for them (or a pin), and
 *   kept per commit; a branch is resolved to its commit once and that commit is used from then on (offline too),
 *   until `models pull --force` asks the hub again.
 * - Offline (`offline`, CLIP_IQA_OFFLINE=1 or HF_HUB_OFFLINE=1): nothing touches the network. A missing file is an
 *   E_OFFLINE error naming the file, the exact path to put it at, and where to get it.
 * - Mirror (`mirror` or CLIP_IQA_MIRROR=<base URL or directory>): every registry file is fetched from
 *   `<mirror>/<fileName>` (file name URL-encoded, e.g. `CLIP-IQA%2B_learned_prompts-603f3273.pth`) instead of its
 *   publishers, with the same checksums. The mirror replaces the publishers rather than preceding them: an
 *   intranet that needs a mirror usually cannot reach the internet, and falling back would only add timeouts.
 *   URLs and hf: ids given explicitly are fetched as given (a hub mirror is HF_ENDPOINT).
 */
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClipIqaError } from '../errors.js';
import { WEIGHT_FILES } from '../weights/files.js';
import { entryPath, pinnedUrlPath, unpinnedUrlPath } from './cache.js';
import { downloadFailures, isResumable } from './download.js';
import { HF_PREFIX, parseHfId, type HfId } from './hf.js';
import { DEFAULT_REGISTRY, findEntry, getEntry, type FileKind, type Registry, type RegistryEntry } from './registry.js';
import { hubSettings, mirrorUrl, REQUIRE_CHECKSUM_ENV, type HubOptions, type HubSettings } from './settings.js';
import { hfCacheSource, hubSource, localSource, packagedSource, urlSource, type RepoFile, type ResolvedFile, type Source, type SourceContext } from './sources.js';
import type { CacheTarget } from './store.js';

export type { ResolvedFile } from './sources.js';

export type SourceSpec =
  | { readonly type: 'registry'; readonly entry: RegistryEntry }
  | { readonly type: 'path'; readonly path: string; readonly folder?: boolean }
  | { readonly type: 'url'; readonly url: string; readonly sha256: string | null; readonly fileName: string }
  | ({ readonly type: 'hf' } & HfId);

const HEX64 = /^[0-9a-f]{64}$/;
const MiB = 2 ** 20;

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
    throw new ClipIqaError('E_OPTION', `Unsupported URL scheme ${u.protocol} in "${spec}": use https://, http://, hf:ORG/NAME or a local path`);
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

async function pathKind(p: string): Promise<'file' | 'dir' | null> {
  try {
    const st = await stat(p);
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : null;
  } catch {
    return null;
  }
}

/**
 * What a spec names. Order: a Hugging Face id (`hf:`); a URL; something written as a path (`./x`, `/x`, `~/x`,
 * `C:\x`); a registry name of `kind`; an existing file (or, for a model, a folder); otherwise E_NOT_FOUND listing the
 * registry names. So `RN50` is the registry model even if a file called `RN50` is in the working directory (write
 * `./RN50` for that file).
 */
export async function parseSource(spec: string, kind: FileKind, registry: Registry = DEFAULT_REGISTRY): Promise<SourceSpec> {
  const s = spec.trim();
  if (!s) throw new ClipIqaError('E_OPTION', `An empty ${kindWord(kind)} name`);
  if (s.toLowerCase().startsWith(HF_PREFIX)) {
    const id = parseHfId(s);
    if (kind !== 'model' && id.file === null) {
      throw new ClipIqaError('E_OPTION', `"${s}" names a repository; a ${kindWord(kind)} is one file in it: write hf:${id.repo}/<file name>`);
    }
    return { type: 'hf', ...id };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return parseUrl(s);
  const pathLike = /^(\.{1,2}([/\\]|$)|[/\\~]|[A-Za-z]:[/\\])/.test(s);
  if (!pathLike) {
    const entry = findEntry(registry, s, kind);
    if (entry) return { type: 'registry', entry };
  }
  const p = resolve(expandHome(s));
  const found = await pathKind(p);
  if (found === 'file') return { type: 'path', path: p };
  if (found === 'dir') {
    if (kind === 'model') return { type: 'path', path: p, folder: true };
    throw new ClipIqaError('E_NOT_FOUND', `${p} is a directory; a ${kindWord(kind)} must be a file`);
  }
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

/** The registry file at its publishers' URLs (or the mirror), kept at models|vocab|contexts/<name>/<fileName>. */
function registryTarget(e: RegistryEntry, st: HubSettings): CacheTarget {
  return {
    dest: entryPath(st.root, e),
    fileName: e.fileName,
    expected: { sha256: e.sha256, sha256Prefix: e.sha256Prefix },
    urls: st.mirror ? [mirrorUrl(st.mirror, e.fileName)] : e.urls,
    publicUrl: e.urls[0] ?? mirrorUrl(st.mirror ?? '', e.fileName),
    label: `${kindWord(e.kind)} ${e.name}`,
    entry: e,
    kind: e.kind,
    sizeHint: e.sizeBytes,
    exactSize: e.sizeApproximate ? null : e.sizeBytes,
    // An approximate size (OpenAI's, rounded to MiB) caps the download with some room.
    maxBytes: e.sizeBytes !== null && e.sizeApproximate ? Math.ceil(e.sizeBytes * 1.1) + MiB : null,
  };
}

/** @internal Where a URL given by the user is (or will be) cached and fetched from. */
function urlTarget(src: Extract<SourceSpec, { type: 'url' }>, st: HubSettings): CacheTarget {
  return {
    dest: src.sha256 ? pinnedUrlPath(st.root, src.sha256, src.fileName) : unpinnedUrlPath(st.root, src.url, src.fileName),
    fileName: src.fileName,
    expected: { sha256: src.sha256, sha256Prefix: null },
    urls: [src.url],
    publicUrl: src.url,
    label: src.url,
    entry: null,
    kind: null,
    sizeHint: null,
  };
}

/** The repository files a registry entry lists on the hub. */
function registryRepoFiles(e: RegistryEntry): RepoFile[] {
  return (e.hub ?? []).map((h) => ({
    repo: h.repo,
    revision: h.revision ?? 'main',
    files: [h.file],
    sha256: h.sha256 ?? null,
    sha256Prefix: e.sha256Prefix,
    withConfig: false,
    entry: e,
  }));
}

/** The sources of a spec, in the order they are tried. */
export function sourcesOf(src: SourceSpec, kind: FileKind, st: HubSettings): Source[] {
  switch (src.type) {
    case 'path':
      return [localSource(src.path, src.folder === true)];
    case 'url':
      return [urlSource(urlTarget(src, st), 'url')];
    case 'hf': {
      const r: RepoFile = { repo: src.repo, revision: src.revision, files: src.file ? [src.file] : WEIGHT_FILES, withConfig: kind === 'model', entry: null };
      return [hubSource(r), hfCacheSource(r)];
    }
    case 'registry': {
      const e = src.entry;
      // Files the package ships (the vocabulary) are used where they lie, before any cache or network.
      const shipped = packagedSource(e);
      if (shipped) return [shipped];
      const refs = registryRepoFiles(e);
      const publisher = e.urls.length > 0 || st.mirror ? [urlSource(registryTarget(e, st), 'registry')] : [];
      // A mirror replaces the publishers, the hub included; the huggingface_hub cache needs no network.
      if (st.mirror) return [...publisher, ...refs.map(hfCacheSource)];
      return [...refs.map(hubSource), ...refs.map(hfCacheSource), ...publisher];
    }
  }
}

function offlineError(what: string, sources: readonly Source[], ctx: SourceContext): ClipIqaError {
  const hints = sources.flatMap((s) => (s.offline ? [s.offline(ctx)] : []));
  return new ClipIqaError(
    'E_OFFLINE',
    `Offline mode (${ctx.st.offlineBecause}): the ${what} is not in the cache and may not be downloaded.\n` +
      `${hints.join('\n  or\n')}\n` +
      `Fetch ${hints.length > 1 ? 'one of these' : 'it'} on a machine with network access and copy it there, or turn offline mode off.`,
  );
}

/** Errors that end the resolution at once: the cache or the caller is at fault, not the source. */
function fatal(e: unknown): boolean {
  if ((e as Error | null)?.name === 'AbortError') return true;
  return e instanceof ClipIqaError && ['E_CACHE', 'E_OPTION', 'E_OFFLINE'].includes(e.code);
}

/** One error for every source that failed, each with its reason. */
function failedError(what: string, failures: readonly { source: Source; error: Error }[]): Error {
  const [only] = failures;
  if (failures.length === 1 && only!.error instanceof ClipIqaError) return only!.error;
  const lines = failures.flatMap(({ source, error }) => {
    const urls = downloadFailures(error);
    if (urls) return urls.map((u) => `  ${u.url}: ${u.message}`);
    return [`  ${source.label}: ${error.message.replace(/\n/g, '\n    ')}`];
  });
  const allChecksum = failures.every((f) => f.error instanceof ClipIqaError && f.error.code === 'E_CHECKSUM');
  const retryable = failures.some((f) => isResumable(f.error));
  const hints = [
    ...(failures.some((f) => / 404/.test(f.error.message)) ? ['A 404 means the file is not at that address (or no longer is).'] : []),
    ...(retryable ? ['Check the network (a hub mirror: HF_ENDPOINT; other files: CLIP_IQA_MIRROR), then run the command again: any partial download is kept and resumed.'] : []),
  ];
  return new ClipIqaError(
    allChecksum ? 'E_CHECKSUM' : 'E_DOWNLOAD',
    `Could not get the ${what} from ${failures.length === 1 ? 'its source' : `any of its ${failures.length} sources`}:\n${lines.join('\n')}${hints.length ? `\n${hints.join(' ')}` : ''}`,
    { cause: failures[failures.length - 1]?.error },
  );
}

function describeSpec(src: SourceSpec, kind: FileKind): string {
  switch (src.type) {
    case 'registry':
      return `${kindWord(kind)} ${src.entry.name}`;
    case 'path':
      return src.path;
    case 'url':
      return src.url;
    case 'hf':
      return `${kindWord(kind)} hf:${src.repo}`;
  }
}

/**
 * Resolves a spec to a local file, downloading into the cache when needed; see `resolveFile` for the short form.
 * `spec` undefined means the registry's default of `kind` (RN50, the BPE vocabulary, clipiqa+).
 */
export async function resolveSource(spec: string | undefined, kind: FileKind, options: HubOptions = {}): Promise<ResolvedFile> {
  return (await resolveSources([{ spec, kind }], options)).files[0]!;
}

/** One file to resolve: a spec (undefined: the registry's default) of a kind. */
export interface FileRequest {
  readonly spec: string | undefined;
  readonly kind: FileKind;
}

/**
 * Resolves several files with one reading of the options and environment, one after another (so that progress bars
 * of first downloads do not interleave); returns them in order with the cache root they were resolved in.
 */
export async function resolveSources(requests: readonly FileRequest[], options: HubOptions = {}): Promise<{ files: ResolvedFile[]; root: string }> {
  const st = hubSettings(options);
  const files: ResolvedFile[] = [];
  for (const { spec, kind } of requests) files.push(await resolveParsed(await parseSource(spec ?? st.registry.defaults[kind], kind, st.registry), kind, st, options));
  return { files, root: st.root };
}

/**
 * @internal `resolveSource` once the spec is parsed. With `replace`, nothing cached is looked at: `replace` runs
 * (removing the cached copy) and the file is downloaded again.
 */
export async function resolveParsed(src: SourceSpec, kind: FileKind, st: HubSettings, options: HubOptions, replace?: () => Promise<unknown>): Promise<ResolvedFile> {
  if (src.type === 'url' && src.sha256 === null && st.requireChecksum) {
    throw new ClipIqaError(
      'E_OPTION',
      `${src.url} has no checksum and checksums are required (${REQUIRE_CHECKSUM_ENV} or requireChecksum): add #sha256=<the file's 64-hex-digit SHA-256>`,
    );
  }
  const ctx: SourceContext = { st, options, kind: src.type === 'registry' ? src.entry.kind : kind };
  const sources = sourcesOf(src, ctx.kind, st);
  if (!replace) {
    for (const s of sources) {
      const found = await s.find(ctx);
      if (found) return found;
    }
  }
  const fetchers = sources.filter((s) => s.fetch);
  const what = describeSpec(src, ctx.kind);
  if (fetchers.length === 0) throw new ClipIqaError('E_NOT_FOUND', `No such ${kindWord(ctx.kind)}: ${what}`);
  if (st.offline) throw offlineError(what, sources, ctx);
  await replace?.();
  const failures: { source: Source; error: Error }[] = [];
  for (const [i, s] of fetchers.entries()) {
    try {
      return await s.fetch!(ctx);
    } catch (e) {
      if (fatal(e) || !(e instanceof Error)) throw e;
      failures.push({ source: s, error: e });
      if (i < fetchers.length - 1) st.log('warn', `${what}: ${s.label} failed (${e.message.split('\n')[0]}); trying the next source`);
    }
  }
  throw failedError(what, failures);
}

/**
 * The local path of a model, vocabulary or context: a registry name (forgiving spelling), a local path (a model
 * folder too), a Hugging Face id (`hf:ORG/NAME[@REVISION][/FILE]`) or a URL (`https://…#sha256=<64 hex>`),
 * downloaded into the cache if it is not there yet.
 */
export async function resolveFile(spec: string | undefined, kind: FileKind, options: HubOptions = {}): Promise<string> {
  return (await resolveSource(spec, kind, options)).path;
}

/** Where `spec` is (or would be) cached, without touching the network; null for local paths and hub files. */
export async function cachedPathOf(spec: string, kind: FileKind, options: HubOptions = {}): Promise<string | null> {
  const st = hubSettings(options);
  const src = await parseSource(spec, kind, st.registry);
  if (src.type === 'url') return urlTarget(src, st).dest;
  if (src.type === 'registry' && (src.entry.urls.length > 0 || st.mirror)) return registryTarget(src.entry, st).dest;
  return null;
}

/** @internal For models.ts: the cache target of a registry entry's publisher file, or a URL. */
export function publisherTarget(src: SourceSpec, st: HubSettings): CacheTarget | null {
  if (src.type === 'url') return urlTarget(src, st);
  if (src.type === 'registry' && (src.entry.urls.length > 0 || st.mirror)) return registryTarget(src.entry, st);
  return null;
}
