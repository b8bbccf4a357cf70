/**
 * Where downloaded files live, and the small manifests that describe them.
 *
 * Layout under the cache root (see `cacheRoot`):
 *
 *   models/<name>/<file>          OpenAI checkpoints            models/RN50/RN50.pt, models/ViT-B-32/ViT-B-32.pt
 *   vocab/<name>/<file>           the BPE vocabulary            vocab/bpe_simple_vocab_16e6/bpe_simple_vocab_16e6.txt.gz
 *   contexts/<name>/<file>        CLIP-IQA+ contexts            contexts/clipiqa+/CLIP-IQA+_learned_prompts-603f3273.pth
 *   by-hash/<sha256>/<file>       URLs given with #sha256=…     (content-addressed: the same bytes are kept once)
 *   by-url/<sha256 of URL>/<file> URLs given without checksum   (keyed by the URL, the only identity there is)
 *   hf/<org>--<name>/<commit>/<path>      files of a Hugging Face repository at a commit (registry hub copies, hf: ids)
 *   hf/<org>--<name>/refs/<revision>      the commit a branch or tag named when it was fetched (for offline use)
 *
 * Beside each file `<file>`:
 *   <file>.meta.json   manifest: source URL, SHA-256, size, how it was verified, date (written by temp + rename)
 *   <file>.part        an interrupted download, resumed by the next attempt
 *   <file>.part.json   what the partial file is a prefix of (URL, expected hash, ETag), so a resume never splices
 *                      two different files
 *   <file>.lock        held while a process downloads or removes the file
 *
 * A file appears under its final name only by an atomic rename after its SHA-256 was checked, so the cache never
 * holds a half-written or unverified file under a name that `resolveFile` returns. Directories are created 0700;
 * clip-iqa never creates a symbolic link in its cache, so a cached file, manifest or partial file that is one was
 * put there by someone else and is refused rather than followed.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { posix, win32, dirname, isAbsolute, resolve } from 'node:path';
import { ClipIqaError, errCode, isErrno } from '../errors.js';
import type { FileKind, RegistryEntry } from './registry.js';

export const CACHE_ENV = 'CLIP_IQA_HOME';

export interface CacheRootOptions {
  /** Explicit cache root; wins over the environment. */
  readonly cacheDir?: string;
  /** Environment to read (default `process.env`); injectable for tests. */
  readonly env?: NodeJS.ProcessEnv;
  /** Platform whose convention applies (default `process.platform`). */
  readonly platform?: NodeJS.Platform;
  /** Home directory (default `os.homedir()`). */
  readonly homedir?: string;
}

/**
 * The cache root: `cacheDir`, else `$CLIP_IQA_HOME`, else the platform's cache directory:
 * Linux and others `$XDG_CACHE_HOME/clip-iqa` or `~/.cache/clip-iqa`; macOS `~/Library/Caches/clip-iqa`;
 * Windows `%LOCALAPPDATA%\clip-iqa\Cache`.
 */
export function cacheRoot(options: CacheRootOptions = {}): string {
  const env = options.env ?? process.env;
  const platform = options.platform ?? process.platform;
  const path = platform === 'win32' ? win32 : posix;
  if (options.cacheDir) return resolve(options.cacheDir);
  const fromEnv = env[CACHE_ENV]?.trim();
  if (fromEnv) return resolve(fromEnv);
  const home = options.homedir ?? homedir();
  if (platform === 'win32') {
    const local = env.LOCALAPPDATA?.trim() || path.join(home, 'AppData', 'Local');
    return path.join(local, 'clip-iqa', 'Cache');
  }
  if (platform === 'darwin') return path.join(home, 'Library', 'Caches', 'clip-iqa');
  const xdg = env.XDG_CACHE_HOME?.trim();
  // The XDG spec says a relative value is invalid and must be ignored.
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(home, '.cache'), 'clip-iqa');
}

const KIND_DIR: Record<FileKind, string> = { model: 'models', vocab: 'vocab', context: 'contexts' };

/** A registry name as one directory name: `ViT-B/32` → `ViT-B-32`. */
export function safeSegment(name: string): string {
  const s = name.replace(/[^A-Za-z0-9._+@-]+/g, '-').replace(/^\.+/, '_');
  return s || '_';
}

/** Where a registry entry's file lives in the cache. */
export function entryPath(root: string, entry: RegistryEntry): string {
  return resolve(root, KIND_DIR[entry.kind], safeSegment(entry.name), entry.fileName);
}

/** Where a URL given with its checksum is cached. */
export function pinnedUrlPath(root: string, sha256: string, fileName: string): string {
  return resolve(root, 'by-hash', sha256, safeSegment(fileName));
}

/** Where a URL given without a checksum is cached. */
export function unpinnedUrlPath(root: string, url: string, fileName: string): string {
  const key = createHash('sha256').update(url).digest('hex').slice(0, 32);
  return resolve(root, 'by-url', key, safeSegment(fileName));
}

/** A repository id as one directory name, as huggingface_hub spells it: `timm/x` → `timm--x`. */
export const repoFolder = (repo: string): string => safeSegment(repo.replace('/', '--'));

/** Where a file of a Hugging Face repository at a commit is cached; `path` may hold sub-folders. */
export function hfPath(root: string, repo: string, commit: string, path: string): string {
  return resolve(root, 'hf', repoFolder(repo), safeSegment(commit), ...path.split('/').map(safeSegment));
}

/** Where the commit a revision named is remembered. */
export function hfRefPath(root: string, repo: string, revision: string): string {
  return resolve(root, 'hf', repoFolder(repo), 'refs', safeSegment(encodeURIComponent(revision)));
}

/** A git commit id. */
export const COMMIT = /^[0-9a-f]{40}$/;

/** The commit written in a ref file (clip-iqa's or huggingface_hub's); null when there is none. */
export async function commitIn(refFile: string): Promise<string | null> {
  try {
    const commit = (await readFile(refFile, 'utf8')).trim();
    return COMMIT.test(commit) ? commit : null;
  } catch {
    return null;
  }
}

/** The commit a revision names in clip-iqa's cache: itself when it is one, else what was recorded when it was fetched. */
export async function refCommit(root: string, repo: string, revision: string): Promise<string | null> {
  return COMMIT.test(revision) ? revision : commitIn(hfRefPath(root, repo, revision));
}

export const manifestPath = (file: string): string => `${file}.meta.json`;
export const partPath = (file: string): string => `${file}.part`;
export const partInfoPath = (file: string): string => `${file}.part.json`;
export const lockPath = (file: string): string => `${file}.lock`;

/**
 * Whether a name in a cache directory is one of the files kept beside a cached file (the four above, a
 * `writeJsonAtomic` temp file, a lock moved aside to be broken) rather than a cached file itself.
 */
export function isSideFile(name: string): boolean {
  return /\.(meta\.json|part|part\.json|lock|tmp)$|\.lock\.stale-/.test(name);
}

/** Size of the regular file at `path`; null when there is none (or it cannot be seen). Links are not followed. */
export async function fileSize(path: string): Promise<number | null> {
  try {
    const st = await lstat(path);
    return st.isFile() ? st.size : null;
  } catch {
    return null;
  }
}

/** Refuses a symbolic link where the cache keeps a file of its own: clip-iqa never makes one, so it was planted. */
export async function refuseLink(path: string): Promise<void> {
  let isLink = false;
  try {
    isLink = (await lstat(path)).isSymbolicLink();
  } catch {
    return;
  }
  if (isLink) {
    throw new ClipIqaError(
      'E_CACHE',
      `${path} is a symbolic link. clip-iqa never creates links in its cache, so something else put it there, and it is not followed: ` +
        'remove it (and check who can write to the cache directory).',
    );
  }
}

/**
 * How a cached file's bytes were checked:
 * - `sha256`: equal to a full SHA-256 pinned by the registry or by a URL's `#sha256=`;
 * - `hub`: equal to the SHA-256 the Hugging Face hub published for that file at that commit (its LFS ETag); the
 *   hash and commit are recorded, and later uses are checked against the record (trust on first use);
 * - `git-sha1`: a small, non-LFS file of a hub repository, equal to the git blob id the hub sent as its ETag;
 * - `sha256-prefix`: its SHA-256 starts with the published prefix (pyiqa's 8 hex digits);
 * - `recorded`: nothing was published; the hash computed on first download is recorded and checked from then on;
 * - `hf-cache`: used where it lies in the huggingface_hub cache, whose blob is named by its SHA-256 (not re-hashed).
 */
export type Verification = 'sha256' | 'hub' | 'git-sha1' | 'sha256-prefix' | 'recorded' | 'hf-cache';

export interface ExpectedHash {
  readonly sha256: string | null;
  readonly sha256Prefix: string | null;
  /** Where `sha256` comes from: a pin (registry, URL; the default) or the hub's answer for this download. */
  readonly from?: 'pin' | 'hub';
  /** The git blob id of a small, non-LFS repository file (its hub ETag). */
  readonly gitSha1?: string | null;
}

export interface Manifest {
  readonly version: 1;
  readonly fileName: string;
  /** Registry kind and name; null for URL sources. */
  readonly kind: FileKind | null;
  readonly name: string | null;
  /** What the user asked for: the registry's primary URL or the URL given. */
  readonly source: string;
  /** Where the bytes actually came from (a mirror, a fallback URL); null when the file was placed by hand. */
  readonly url: string | null;
  readonly sha256: string;
  readonly size: number;
  readonly verification: Verification;
  /** `download`: fetched by clip-iqa; `placed`: found in the cache (copied there by hand) and hashed. */
  readonly origin: 'download' | 'placed';
  readonly createdAt: string;
  /** For files of a Hugging Face repository: which, at which revision and commit. */
  readonly repo?: string;
  readonly revision?: string;
  readonly commit?: string;
  /** The config file fetched with a model's weights (`open_clip_config.json`, `config.json`), if any. */
  readonly config?: string | null;
}

/** How `actual` meets `expected` (a full hash and a prefix are both checked when both are given), or null when it does not. */
export function checkHash(expected: ExpectedHash, actual: string): Verification | null {
  if (expected.sha256Prefix !== null && !actual.startsWith(expected.sha256Prefix)) return null;
  if (expected.sha256 !== null) return actual === expected.sha256 ? (expected.from === 'hub' ? 'hub' : 'sha256') : null;
  if (expected.sha256Prefix !== null) return 'sha256-prefix';
  if (expected.gitSha1) return 'git-sha1';
  return 'recorded';
}

/** The expected hash in words, for messages. */
export function describeExpected(expected: ExpectedHash): string {
  const prefix = expected.sha256Prefix !== null ? `a sha256 starting with ${expected.sha256Prefix}` : null;
  if (expected.sha256 !== null) return `sha256 ${expected.sha256}${expected.from === 'hub' ? ' (as the hub published it)' : ''}`;
  if (prefix) return prefix;
  if (expected.gitSha1) return `git blob ${expected.gitSha1}`;
  return 'no published checksum';
}

/** The git blob id of a file (what the hub sends as the ETag of a small, non-LFS file). */
export async function gitBlobSha1(path: string, size: number, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha1').update(`blob ${size}\0`);
  await hashFileInto(hash, path, undefined, signal);
  return hash.digest('hex');
}

/** The manifest beside `file`; null when absent, unreadable, malformed, or a link (never followed). */
export async function readManifest(file: string): Promise<Manifest | null> {
  let fh;
  try {
    fh = await open(manifestPath(file), constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    const m = JSON.parse(await fh.readFile('utf8')) as Partial<Manifest>;
    if (m.version !== 1 || typeof m.sha256 !== 'string' || typeof m.size !== 'number') return null;
    return m as Manifest;
  } catch {
    return null;
  } finally {
    await fh?.close();
  }
}

/**
 * A cached file whose manifest agrees with what is expected (size from the manifest, hash not recomputed); null
 * when there is none. A link at `file` is refused (E_CACHE) rather than followed.
 */
export async function cachedManifest(file: string, expected: ExpectedHash): Promise<Manifest | null> {
  let st;
  try {
    st = await lstat(file);
  } catch {
    return null;
  }
  if (st.isSymbolicLink()) await refuseLink(file);
  if (!st.isFile()) return null;
  const m = await readManifest(file);
  if (!m || m.size !== st.size || checkHash(expected, m.sha256) === null) return null;
  return m;
}

/** Writes a small file by temp file + rename, so a reader sees the old content or the new, never half of it. */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`;
  try {
    // wx: a link planted at the temporary name is never followed.
    await writeFile(tmp, text, { flag: 'wx', mode: 0o600 });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
}

export const writeJsonAtomic = (path: string, value: unknown): Promise<void> => writeTextAtomic(path, JSON.stringify(value, null, 2) + '\n');

export async function writeManifest(file: string, manifest: Manifest): Promise<void> {
  await writeJsonAtomic(manifestPath(file), manifest);
}

/** Feeds bytes [0, end) of `path` (the whole file when `end` is omitted) into `hash`; returns the byte count. */
export async function hashFileInto(hash: Hash, path: string, end?: number, signal?: AbortSignal): Promise<number> {
  if (end === 0) return 0;
  let n = 0;
  const stream = createReadStream(path, end === undefined ? { signal } : { end: end - 1, signal });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    n += chunk.length;
  }
  return n;
}

export async function sha256File(path: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  const size = await hashFileInto(hash, path, undefined, signal);
  return { sha256: hash.digest('hex'), size };
}

/** File-system failures that mean "this cache cannot be written", as opposed to a bug or a network problem. */
export const CACHE_ERRNOS = ['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST', 'EISDIR', 'ENOENT', 'EMFILE', 'ENFILE', 'EIO'];

/**
 * An E_CACHE error that says which directory, what went wrong and what to do. `action` completes
 * "… while <action>", e.g. "writing RN50.pt".
 */
export function cacheError(e: unknown, path: string, action: string, neededBytes?: number | null): ClipIqaError {
  if (e instanceof ClipIqaError) return e;
  const code = errCode(e) ?? 'unknown error';
  const dir = isAbsolute(path) ? dirname(path) : path;
  const elsewhere = `or set ${CACHE_ENV} to another directory`;
  let what: string;
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT': {
      const need = neededBytes ? ` (about ${(neededBytes / 1e6).toFixed(0)} MB are needed)` : '';
      what = `the disk holding ${dir} is full${code === 'EDQUOT' ? ' (quota exceeded)' : ''}${need}. Free some space there, ${elsewhere} on a disk with room.`;
      break;
    }
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      what =
        `${dir} is not writable (${code}${code === 'EROFS' ? ': read-only file system' : ''}). Make it writable, ${elsewhere}. ` +
        'A read-only cache filled in advance works with CLIP_IQA_OFFLINE=1.';
      break;
    case 'ENOTDIR':
    case 'EEXIST':
      what = `a part of the path ${dir} is a file where a directory is needed (${code}). Move that file away, ${elsewhere}.`;
      break;
    default:
      what = `${dir}: ${e instanceof Error ? e.message : String(e)}. Check that directory, ${elsewhere}.`;
  }
  return new ClipIqaError('E_CACHE', `Cannot use the model cache while ${action}: ${what}`, { cause: e });
}

/**
 * The real reason a recursive mkdir failed with ENOENT: Node reports ENOENT when a directory cannot be created on
 * a read-only file system (EROFS) or without permission, which would send a user looking for a missing path. The
 * first missing component is created alone, which fails with the true code; null when that works (a race).
 */
async function trueMkdirError(dir: string): Promise<{ error: unknown; at: string } | null> {
  const parts: string[] = [];
  let at = resolve(dir);
  for (;;) {
    try {
      await stat(at);
      break;
    } catch (e) {
      if (!isErrno(e, 'ENOENT')) return { error: e, at };
      const parent = dirname(at);
      if (parent === at) break;
      parts.unshift(at);
      at = parent;
    }
  }
  const first = parts[0];
  if (!first) return null;
  try {
    await mkdir(first, { mode: 0o700 });
    return null;
  } catch (e) {
    return isErrno(e, 'EEXIST') ? null : { error: e, at: first };
  }
}

/** mkdir -p (new directories 0700: only their owner may plant files there) mapped to E_CACHE. */
export async function ensureDir(dir: string, action: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      return;
    } catch (e) {
      const real = isErrno(e, 'ENOENT') ? await trueMkdirError(dir) : null;
      if (real) throw cacheError(real.error, real.at, action);
      if (attempt > 0 || !isErrno(e, 'ENOENT')) throw cacheError(e, resolve(dir, '_'), action);
    }
  }
}
