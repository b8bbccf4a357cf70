/**
 * What the CLI's `models` commands need: list the registry with its sources and what is cached, pull, verify,
 * remove, and the cache root. No printing here: each function returns data for the caller to present.
 */
import { readdir, rm, rmdir } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { ClipIqaError, isErrno } from '../errors.js';
import { WEIGHT_FILES } from '../weights/files.js';
import {
  cacheError,
  checkHash,
  describeExpected,
  fileSize,
  hfPath,
  isSideFile,
  lockPath,
  manifestPath,
  partInfoPath,
  partPath,
  readManifest,
  refCommit,
  repoFolder,
  sha256File,
  type Manifest,
  type Verification,
} from './cache.js';
import { formatHfId } from './hf.js';
import { cachedCommit, cachedFile } from './hf-cache.js';
import { acquireLock } from './lock.js';
import { findEntry, type FileKind, type RegistryEntry } from './registry.js';
import { parseSource, publisherTarget, resolveParsed, sourcesOf, type ResolvedFile, type SourceSpec } from './resolve.js';
import { hubSettings, type HubOptions, type HubSettings } from './settings.js';

export interface CacheItem {
  /** Registry name, the URL for a file fetched by URL, `hf:ORG/NAME@commit/FILE` for a hub file fetched by id. */
  readonly name: string;
  readonly kind: FileKind | null;
  readonly source: 'registry' | 'url' | 'hf';
  readonly entry: RegistryEntry | null;
  readonly fileName: string;
  /** Where the file is (or, for a registry entry not cached, where its publisher's file would be). */
  readonly path: string;
  readonly cached: boolean;
  /** Size on disk, when cached. */
  readonly sizeBytes: number | null;
  /** From the registry; see `sizeApproximate`. */
  readonly expectedSizeBytes: number | null;
  readonly sizeApproximate: boolean;
  readonly sha256: string | null;
  readonly verification: Verification | null;
  /** What the verification means, in words ("pinned sha256", "hub sha256, trust on first use", …). */
  readonly verified: string | null;
  readonly downloadedAt: string | null;
  /** Bytes of an interrupted download waiting to be resumed (0 when none). */
  readonly partialBytes: number;
  /** Where the file can come from, in the order they are tried. */
  readonly sources: readonly string[];
  /** The hub repository and commit the cached file came from, when it did. */
  readonly repo: { readonly id: string; readonly commit: string } | null;
}

/** A verification state in words, as `models list` shows it. */
export function describeVerification(v: Verification | null, m?: Pick<Manifest, 'commit'> | null): string | null {
  switch (v) {
    case null:
      return null;
    case 'sha256':
      return 'pinned sha256';
    case 'hub':
      return `hub sha256, trust on first use${m?.commit ? ` (commit ${m.commit.slice(0, 12)})` : ''}`;
    case 'git-sha1':
      return `hub git blob id${m?.commit ? ` (commit ${m.commit.slice(0, 12)})` : ''}`;
    case 'sha256-prefix':
      return 'sha256 prefix';
    case 'recorded':
      return 'not published: recorded on first download';
    case 'hf-cache':
      return 'huggingface_hub cache (blob sha256)';
  }
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

/** Every file under `hf/<repo>/<commit>/` that has a manifest. */
async function hubFiles(root: string): Promise<string[]> {
  const base = join(root, 'hf');
  let entries;
  try {
    entries = await readdir(base, { recursive: true, withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.meta.json'))
    .map((e) => join(e.parentPath, e.name.slice(0, -'.meta.json'.length)))
    .sort();
}

function labelsOf(src: SourceSpec, st: HubSettings): string[] {
  return sourcesOf(src, src.type === 'registry' ? src.entry.kind : 'model', st).map((s) => s.label);
}

async function itemOf(path: string, entry: RegistryEntry | null, m: Manifest | null, st: HubSettings, over: Partial<CacheItem> = {}): Promise<CacheItem> {
  const size = await fileSize(path);
  const name = entry?.name ?? (m?.repo ? formatHfId({ repo: m.repo, revision: m.commit, file: m.fileName }) : (m?.source ?? path));
  return {
    name,
    kind: entry?.kind ?? m?.kind ?? null,
    source: entry ? 'registry' : m?.repo ? 'hf' : 'url',
    entry,
    fileName: entry?.fileName ?? m?.fileName ?? path.split(/[/\\]/).pop()!,
    path,
    cached: size !== null,
    sizeBytes: size,
    expectedSizeBytes: entry?.sizeBytes ?? null,
    sizeApproximate: entry?.sizeApproximate ?? false,
    sha256: m?.sha256 ?? null,
    verification: size !== null ? (m?.verification ?? null) : null,
    verified: size !== null ? describeVerification(m?.verification ?? null, m) : null,
    downloadedAt: m?.createdAt ?? null,
    partialBytes: (await fileSize(partPath(path))) ?? 0,
    sources: entry ? labelsOf({ type: 'registry', entry }, st) : [m?.url ?? m?.source ?? path],
    repo: m?.repo && m.commit ? { id: m.repo, commit: m.commit } : null,
    ...over,
  };
}

/** Where a registry entry's file is cached, if it is: a hub copy in clip-iqa's cache or huggingface_hub's, or the publisher's file. */
async function registryItem(e: RegistryEntry, st: HubSettings): Promise<CacheItem> {
  for (const h of e.hub ?? []) {
    const commit = await refCommit(st.root, h.repo, h.revision ?? 'main');
    if (!commit) continue;
    const p = hfPath(st.root, h.repo, commit, h.file);
    if ((await fileSize(p)) !== null) return itemOf(p, e, await readManifest(p), st);
  }
  if (st.hfCache) {
    for (const h of e.hub ?? []) {
      const commit = await cachedCommit(st.hfCache, h.repo, h.revision ?? 'main');
      const f = commit && (await cachedFile(st.hfCache, h.repo, commit, h.file));
      if (f && (!h.sha256 || !f.sha256 || f.sha256 === h.sha256)) {
        return itemOf(f.path, e, null, st, { sha256: f.sha256, verification: 'hf-cache', verified: describeVerification('hf-cache'), repo: { id: h.repo, commit } });
      }
    }
  }
  // Not cached: where the publisher's file would be, or the hub repository's folder (its commit is not known yet).
  const t = publisherTarget({ type: 'registry', entry: e }, st);
  const p = t?.dest ?? join(st.root, 'hf', repoFolder(e.hub![0]!.repo));
  return itemOf(p, e, t ? await readManifest(p) : null, st);
}

/**
 * Every registry entry (of `kind`, when given) with its sources and cache status, then every file cached from a
 * URL or a Hugging Face id.
 */
export async function listModels(options: HubOptions & { readonly kind?: FileKind } = {}): Promise<CacheItem[]> {
  const st = hubSettings(options);
  const items: CacheItem[] = [];
  for (const e of st.registry.entries) {
    if (options.kind && e.kind !== options.kind) continue;
    items.push(await registryItem(e, st));
  }
  if (options.kind) return items;
  for (const p of await urlFiles(st.root)) items.push(await itemOf(p, null, await readManifest(p), st));
  // A registry entry's hub copy is listed under its name above; a model's config goes with its weights.
  const shown = new Set(items.filter((i) => i.cached).map((i) => i.path));
  const hub = await Promise.all((await hubFiles(st.root)).map(async (p) => ({ p, m: await readManifest(p) })));
  for (const { p, m } of hub) if (m?.config) shown.add(join(dirname(p), m.config));
  for (const { p, m } of hub) if (m && !shown.has(p)) items.push(await itemOf(p, null, m, st));
  return items;
}

/** A registry name of any kind (or of `kind`), else a URL, hf: id or path spec as a `kind` (default model). */
async function sourceOf(name: string, options: HubOptions & { readonly kind?: FileKind }) {
  const st = hubSettings(options);
  const entry = findEntry(st.registry, name, options.kind);
  const src: SourceSpec = entry ? { type: 'registry', entry } : await parseSource(name, options.kind ?? 'model', st.registry);
  return { st, src };
}

/**
 * Downloads a registry entry (or a URL, or an hf: id) into the cache unless it is there. `force` downloads again
 * even if a cached copy looks fine (after `verifyCache` reported it corrupt, say), and asks the hub again which
 * commit a branch names.
 */
export async function pullModel(name: string, options: HubOptions & { readonly kind?: FileKind; readonly force?: boolean } = {}): Promise<ResolvedFile> {
  const { st, src } = await sourceOf(name, options);
  const kind = src.type === 'registry' ? src.entry.kind : (options.kind ?? 'model');
  if (!options.force || src.type === 'path') return resolveParsed(src, kind, st, options);
  if (st.offline) throw new ClipIqaError('E_OFFLINE', `Cannot pull ${name} again in offline mode (${st.offlineBecause})`);
  return resolveParsed(src, kind, st, options, () => removeModel(name, options));
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
 * recorded at download), hub files and files without a published hash against their manifest, `by-hash/<sha>`
 * files against their directory name. Registry entries that are not cached are reported `missing`. `names` limits
 * the check. Files in the huggingface_hub cache are not clip-iqa's and are not re-hashed.
 */
export async function verifyCache(options: HubOptions & { readonly names?: readonly string[] } = {}): Promise<VerifyResult[]> {
  const st = hubSettings(options);
  let entries: RegistryEntry[] = [...st.registry.entries];
  let others = true;
  if (options.names && options.names.length > 0) {
    entries = options.names.map((n) => {
      const e = findEntry(st.registry, n);
      if (!e) throw new ClipIqaError('E_NOT_FOUND', `Unknown registry name "${n}"; list the known ones with "models list"`);
      return e;
    });
    others = false;
  }
  const results: VerifyResult[] = [];
  const check = async (path: string, entry: RegistryEntry | null, pinned: { sha256: string | null; sha256Prefix: string | null } | null): Promise<void> => {
    const m = await readManifest(path);
    const name = entry?.name ?? (m?.repo ? formatHfId({ repo: m.repo, revision: m.commit, file: m.fileName }) : (m?.source ?? path));
    const kind = entry?.kind ?? null;
    const base = { name, kind, path };
    if ((await fileSize(path)) === null) {
      const where = entry ? `; get it with "models pull ${entry.name}"` : '';
      results.push({ ...base, status: 'missing', expected: null, actual: null, verification: null, message: `not cached${where}` });
      return;
    }
    const { sha256 } = await sha256File(path, options.signal);
    const byHash = /[/\\]by-hash[/\\]([0-9a-f]{64})[/\\][^/\\]+$/.exec(path)?.[1] ?? null;
    const published = pinned ?? { sha256: byHash, sha256Prefix: null };
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
      verification = sha256 === m.sha256 ? m.verification : null;
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
  const checked = new Set<string>();
  for (const e of entries) {
    const item = await registryItem(e, st);
    checked.add(item.path);
    if (item.verification === 'hf-cache') {
      results.push({ name: e.name, kind: e.kind, path: item.path, status: 'ok', expected: null, actual: item.sha256, verification: 'hf-cache', message: 'ok (in the huggingface_hub cache, not re-hashed)' });
      continue;
    }
    // A hub copy is checked against its pin or the entry's prefix (and the record); the publisher's file against the entry.
    const fromHub = item.repo !== null || (item.path.includes(`${sep}hf${sep}`) && !item.cached);
    const hubPin = (e.hub ?? []).find((h) => item.path.endsWith(h.file))?.sha256 ?? null;
    const pinned = fromHub ? { sha256: hubPin, sha256Prefix: e.sha256Prefix } : { sha256: e.sha256, sha256Prefix: e.sha256Prefix };
    await check(item.path, e, pinned.sha256 === null && pinned.sha256Prefix === null ? null : pinned);
  }
  if (others) {
    for (const p of await urlFiles(st.root)) await check(p, null, null);
    for (const p of await hubFiles(st.root)) if (!checked.has(p)) await check(p, null, null);
  }
  return results;
}

async function removeFiles(dest: string, purpose: string, name: string, signal?: AbortSignal): Promise<string[]> {
  if ((await fileSize(dest)) === null && (await fileSize(partPath(dest))) === null && (await fileSize(manifestPath(dest))) === null) return [];
  let lock;
  try {
    lock = await acquireLock(lockPath(dest), { purpose, timeoutMs: 2000, signal });
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
  const dir = dirname(dest);
  await rmdir(dir).catch((e: unknown) => {
    if (!isErrno(e, 'ENOTEMPTY', 'ENOENT', 'EEXIST', 'EBUSY')) throw cacheError(e, dir, `removing ${dir}`);
  });
  return removed;
}

/**
 * Removes a cached registry entry, URL file or Hugging Face file (with its manifest, its config and any partial
 * download). Returns the paths removed (empty when nothing was cached). Refuses while another process is
 * downloading that file. Files in the huggingface_hub cache are never removed.
 */
export async function removeModel(name: string, options: HubOptions & { readonly kind?: FileKind } = {}): Promise<string[]> {
  const { st, src } = await sourceOf(name, options);
  if (src.type === 'path') {
    throw new ClipIqaError('E_OPTION', `${name} is a local file, not a cached model: clip-iqa only removes files from its cache (${st.root})`);
  }
  const dests: string[] = [];
  const t = publisherTarget(src, st);
  if (t) dests.push(t.dest);
  const repoFiles =
    src.type === 'registry'
      ? (src.entry.hub ?? []).map((h) => ({ repo: h.repo, revision: h.revision ?? 'main', files: [h.file] }))
      : src.type === 'hf'
        ? [{ repo: src.repo, revision: src.revision, files: src.file ? [src.file] : WEIGHT_FILES }]
        : [];
  for (const r of repoFiles) {
    const commit = await refCommit(st.root, r.repo, r.revision);
    if (!commit) continue;
    for (const f of r.files) {
      const p = hfPath(st.root, r.repo, commit, f);
      const m = await readManifest(p);
      dests.push(p);
      if (m?.config) dests.push(hfPath(st.root, r.repo, commit, m.config));
    }
  }
  const removed: string[] = [];
  for (const d of dests) removed.push(...(await removeFiles(d, `removing ${d}`, name, options.signal)));
  return removed;
}

/** The cache root in use (option, CLIP_IQA_HOME, or the platform cache directory). */
export function cachePath(options: HubOptions = {}): string {
  return hubSettings(options).root;
}
