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
 *
 * Beside each file `<file>`:
 *   <file>.meta.json   manifest: source URL, SHA-256, size, how it was verified, date (written by temp + rename)
 *   <file>.part        an interrupted download, resumed by the next attempt
 *   <file>.part.json   what the partial file is a prefix of (URL, expected hash, ETag), so a resume never splices
 *                      two different files
 *   <file>.lock        held while a process downloads or removes the file
 *
 * A file appears under its final name only by an atomic rename after its SHA-256 was checked, so the cache never
 * holds a half-written or unverified file under a name that `resolveFile` returns.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { posix, win32, dirname, isAbsolute, resolve } from 'node:path';
import { ClipIqaError, errCode } from '../errors.js';
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

/** Size of the regular file at `path`; null when there is none (or it cannot be seen). */
export async function fileSize(path: string): Promise<number | null> {
  try {
    const st = await stat(path);
    return st.isFile() ? st.size : null;
  } catch {
    return null;
  }
}

/**
 * How a cached file's bytes were checked:
 * - `sha256`: equal to a full published SHA-256 (registry, or a URL's `#sha256=`);
 * - `sha256-prefix`: its SHA-256 starts with the published prefix (pyiqa's 8 hex digits);
 * - `recorded`: nothing was published; the hash computed on first download is recorded and checked from then on.
 */
export type Verification = 'sha256' | 'sha256-prefix' | 'recorded';

export interface ExpectedHash {
  readonly sha256: string | null;
  readonly sha256Prefix: string | null;
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
}

/** How `actual` meets `expected`, or null when it does not. */
export function checkHash(expected: ExpectedHash, actual: string): Verification | null {
  if (expected.sha256 !== null) return actual === expected.sha256 ? 'sha256' : null;
  if (expected.sha256Prefix !== null) return actual.startsWith(expected.sha256Prefix) ? 'sha256-prefix' : null;
  return 'recorded';
}

/** The expected hash in words, for messages. */
export function describeExpected(expected: ExpectedHash): string {
  if (expected.sha256 !== null) return `sha256 ${expected.sha256}`;
  if (expected.sha256Prefix !== null) return `a sha256 starting with ${expected.sha256Prefix}`;
  return 'no published checksum';
}

export async function readManifest(file: string): Promise<Manifest | null> {
  try {
    const m = JSON.parse(await readFile(manifestPath(file), 'utf8')) as Partial<Manifest>;
    if (m.version !== 1 || typeof m.sha256 !== 'string' || typeof m.size !== 'number') return null;
    return m as Manifest;
  } catch {
    return null;
  }
}

/** A cached file whose manifest agrees with what is expected (size from the manifest, hash not recomputed). */
export async function cachedManifest(file: string, expected: ExpectedHash): Promise<Manifest | null> {
  const size = await fileSize(file);
  if (size === null) return null;
  const m = await readManifest(file);
  if (!m || m.size !== size || checkHash(expected, m.sha256) === null) return null;
  return m;
}

/** Writes JSON by temp file + rename, so a reader sees the old content or the new, never half of it. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`;
  try {
    await writeFile(tmp, JSON.stringify(value, null, 2) + '\n');
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
}

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

/** mkdir -p mapped to E_CACHE. */
export async function ensureDir(dir: string, action: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw cacheError(e, resolve(dir, '_'), action);
  }
}
