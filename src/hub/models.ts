/**
 * What the CLI's `models` commands need: list the registry with what is cached, pull, verify, remove, and the
 * cache root. No printing here: each function returns data for the caller to present.
 */
import { readdir, rm, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ClipIqaError, isErrno } from '../errors.js';
import {
  checkHash,
  describeExpected,
  entryPath,
  fileSize,
  isSideFile,
  lockPath,
  manifestPath,
  partInfoPath,
  partPath,
  readManifest,
  sha256File,
  cacheError,
  type Manifest,
  type Verification,
} from './cache.js';
import { acquireLock } from './lock.js';
import { findEntry, type FileKind, type RegistryEntry } from './registry.js';
import { hubSettings, parseSource, resolveParsed, targetOf, type HubOptions, type ResolvedFile } from './resolve.js';

export interface CacheItem {
  /** Registry name, or the URL for a file fetched by URL. */
  readonly name: string;
  readonly kind: FileKind | null;
  readonly source: 'registry' | 'url';
  readonly entry: RegistryEntry | null;
  readonly fileName: string;
  /** Where the file is or would be. */
  readonly path: string;
  readonly cached: boolean;
  /** Size on disk, when cached. */
  readonly sizeBytes: number | null;
  /** From the registry; see `sizeApproximate`. */
  readonly expectedSizeBytes: number | null;
  readonly sizeApproximate: boolean;
  readonly sha256: string | null;
  readonly verification: Verification | null;
  readonly downloadedAt: string | null;
  /** Bytes of an interrupted download waiting to be resumed (0 when none). */
  readonly partialBytes: number;
}

/** Files fetched by URL: `by-hash/<sha>/<file>` and `by-url/<key>/<file>`. */
async function urlFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const top of ['by-hash', 'by-url']) {
    let keys: string[];
    try {
      keys = await readdir(join(root, top));
    } catch {
      continue;
    }
    for (const key of keys) {
      let names: string[];
      try {
        names = await readdir(join(root, top, key));
      } catch {
        continue;
      }
      for (const n of names) if (!isSideFile(n)) out.push(join(root, top, key, n));
    }
  }
  return out.sort();
}

async function itemOf(path: string, entry: RegistryEntry | null, m: Manifest | null): Promise<CacheItem> {
  const size = await fileSize(path);
  return {
    name: entry?.name ?? m?.source ?? path,
    kind: entry?.kind ?? null,
    source: entry ? 'registry' : 'url',
    entry,
    fileName: entry?.fileName ?? m?.fileName ?? path.split(/[/\\]/).pop()!,
    path,
    cached: size !== null,
    sizeBytes: size,
    expectedSizeBytes: entry?.sizeBytes ?? null,
    sizeApproximate: entry?.sizeApproximate ?? false,
    sha256: m?.sha256 ?? null,
    verification: m?.verification ?? null,
    downloadedAt: m?.createdAt ?? null,
    partialBytes: (await fileSize(partPath(path))) ?? 0,
  };
}

/** Every registry entry (of `kind`, when given) with its cache status, then every file cached from a URL. */
export async function listModels(options: HubOptions & { readonly kind?: FileKind } = {}): Promise<CacheItem[]> {
  const st = hubSettings(options);
  const items: CacheItem[] = [];
  for (const e of st.registry.entries) {
    if (options.kind && e.kind !== options.kind) continue;
    const p = entryPath(st.root, e);
    items.push(await itemOf(p, e, await readManifest(p)));
  }
  if (!options.kind) for (const p of await urlFiles(st.root)) items.push(await itemOf(p, null, await readManifest(p)));
  return items;
}

/** A registry name of any kind (or of `kind`), else a URL or path spec as a `kind` (default model). */
async function sourceOf(name: string, options: HubOptions & { readonly kind?: FileKind }) {
  const st = hubSettings(options);
  const entry = findEntry(st.registry, name, options.kind);
  const src = entry ? ({ type: 'registry', entry } as const) : await parseSource(name, options.kind ?? 'model', st.registry);
  return { st, src };
}

/**
 * Downloads a registry entry (or a URL) into the cache unless it is there. `force` downloads again even if a
 * cached copy looks fine (after `verifyCache` reported it corrupt, say).
 */
export async function pullModel(name: string, options: HubOptions & { readonly kind?: FileKind; readonly force?: boolean } = {}): Promise<ResolvedFile> {
  const { st, src } = await sourceOf(name, options);
  if (!options.force || src.type === 'path') return resolveParsed(src, st, options);
  if (st.offline) throw new ClipIqaError('E_OFFLINE', `Cannot pull ${name} again in offline mode (${st.offlineBecause})`);
  return resolveParsed(src, st, options, () => removeModel(name, options));
}

export type VerifyStatus = 'ok' | 'corrupt' | 'missing' | 'unverified';

export interface VerifyResult {
  readonly name: string;
  readonly kind: FileKind | null;
  readonly path: string;
  readonly status: VerifyStatus;
  /** What the file should hash to, in words ("sha256 …", "a sha256 starting with …", "the recorded sha256 …"). */
  readonly expected: string | null;
  readonly actual: string | null;
  readonly verification: Verification | null;
  readonly message: string;
}

/**
 * Re-hashes cached files: registry files against the registry (and, for prefix-only entries, the full hash
 * recorded at download), files without a published hash against their manifest, `by-hash/<sha>` files against
 * their directory name. Registry entries that are not cached are reported `missing`. `names` limits the check.
 */
export async function verifyCache(options: HubOptions & { readonly names?: readonly string[] } = {}): Promise<VerifyResult[]> {
  const st = hubSettings(options);
  let entries: RegistryEntry[] = [...st.registry.entries];
  let withUrls = true;
  if (options.names && options.names.length > 0) {
    entries = options.names.map((n) => {
      const e = findEntry(st.registry, n);
      if (!e) throw new ClipIqaError('E_NOT_FOUND', `Unknown registry name "${n}"; list the known ones with "models list"`);
      return e;
    });
    withUrls = false;
  }
  const results: VerifyResult[] = [];
  const check = async (path: string, entry: RegistryEntry | null): Promise<void> => {
    const m = await readManifest(path);
    const name = entry?.name ?? m?.source ?? path;
    const kind = entry?.kind ?? null;
    const base = { name, kind, path };
    if ((await fileSize(path)) === null) {
      const where = entry ? `; get it with "models pull ${entry.name}"` : '';
      results.push({ ...base, status: 'missing', expected: null, actual: null, verification: null, message: `not cached${where}` });
      return;
    }
    const { sha256 } = await sha256File(path, options.signal);
    const byHash = /[/\\]by-hash[/\\]([0-9a-f]{64})[/\\][^/\\]+$/.exec(path)?.[1] ?? null;
    const published = entry ? { sha256: entry.sha256, sha256Prefix: entry.sha256Prefix } : { sha256: byHash, sha256Prefix: null };
    let verification: Verification | null;
    let expected: string;
    if (published.sha256 === null && published.sha256Prefix === null) {
      if (!m) {
        results.push({
          ...base,
          status: 'unverified',
          expected: null,
          actual: sha256,
          verification: null,
          message: 'no published checksum and no recorded one (no manifest): cannot tell whether it is intact',
        });
        return;
      }
      expected = `the sha256 recorded at download, ${m.sha256}`;
      verification = sha256 === m.sha256 ? 'recorded' : null;
    } else {
      expected = describeExpected(published);
      verification = checkHash(published, sha256);
      // A prefix is weak evidence; the full hash recorded at download makes the check exact.
      if (verification === 'sha256-prefix' && m && m.sha256 !== sha256) verification = null;
      if (verification === 'sha256-prefix' && m) expected += ` (recorded: ${m.sha256})`;
    }
    const fix = entry ? `re-download it with "models pull --force ${entry.name}"` : 'remove it with "models rm" and fetch it again';
    results.push({
      ...base,
      status: verification ? 'ok' : 'corrupt',
      expected,
      actual: sha256,
      verification,
      message: verification ? `ok (${verification})` : `corrupt: expected ${expected}, found sha256 ${sha256}; ${fix}`,
    });
  };
  for (const e of entries) await check(entryPath(st.root, e), e);
  if (withUrls) for (const p of await urlFiles(st.root)) await check(p, null);
  return results;
}

/**
 * Removes a cached registry entry or URL file, with its manifest and any partial download. Returns the paths
 * removed (empty when nothing was cached). Refuses while another process is downloading that file.
 */
export async function removeModel(name: string, options: HubOptions & { readonly kind?: FileKind } = {}): Promise<string[]> {
  const { st, src } = await sourceOf(name, options);
  if (src.type === 'path') {
    throw new ClipIqaError('E_OPTION', `${name} is a local file, not a cached model: clip-iqa only removes files from its cache (${st.root})`);
  }
  const dest = targetOf(src, st).dest;
  const dir = dirname(dest);
  if ((await fileSize(dest)) === null && (await fileSize(partPath(dest))) === null && (await fileSize(manifestPath(dest))) === null) {
    return [];
  }
  let lock;
  try {
    lock = await acquireLock(lockPath(dest), { purpose: `removing ${src.type === 'registry' ? src.entry.fileName : dest}`, timeoutMs: 2000, signal: options.signal });
  } catch (e) {
    if (e instanceof ClipIqaError && e.code === 'E_CACHE' && /Gave up/.test(e.message)) {
      throw new ClipIqaError('E_CACHE', `Cannot remove ${name} now: ${e.message}`, { cause: e });
    }
    throw e;
  }
  const removed: string[] = [];
  try {
    for (const p of [dest, manifestPath(dest), partPath(dest), partInfoPath(dest)]) {
      if ((await fileSize(p)) === null) continue;
      try {
        await rm(p, { force: true });
        removed.push(p);
      } catch (e) {
        throw cacheError(e, p, `removing ${p}`);
      }
    }
  } finally {
    await lock.release();
  }
  // Leave no empty per-entry directory behind; a directory still in use (a new lock) stays.
  await rmdir(dir).catch((e: unknown) => {
    if (!isErrno(e, 'ENOTEMPTY', 'ENOENT', 'EEXIST', 'EBUSY')) throw cacheError(e, dir, `removing ${dir}`);
  });
  return removed;
}

/** The cache root in use (option, CLIP_IQA_HOME, or the platform cache directory). */
export function cachePath(options: HubOptions = {}): string {
  return hubSettings(options).root;
}
