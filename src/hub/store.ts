/**
 * The one cache and verification layer every source goes through: a file that is (or will be) at `dest` in
 * clip-iqa's cache, what its bytes must hash to, and where to fetch it. `lookup` answers from the cache alone
 * (trusting a manifest that agrees, hashing a file placed by hand once); `fetch` downloads under the lock,
 * verifies, and records the manifest. Nothing else reads or writes cached files.
 */
import { rm } from 'node:fs/promises';
import { ClipIqaError, isErrno } from '../errors.js';
import {
  cacheError,
  cachedManifest,
  checkHash,
  describeExpected,
  fileSize,
  manifestPath,
  readManifest,
  sha256File,
  writeManifest,
  type ExpectedHash,
  type Manifest,
  type Verification,
} from './cache.js';
import { download, type DownloadJob } from './download.js';
import { createProgressBar } from './progress.js';
import type { FileKind, RegistryEntry } from './registry.js';
import type { HubOptions, HubSettings } from './settings.js';

/** A file the cache holds or will hold. */
export interface CacheTarget {
  readonly dest: string;
  readonly fileName: string;
  readonly expected: ExpectedHash;
  /** Where to fetch from, in order (all the same bytes). */
  readonly urls: readonly string[];
  /** What the user asked for (the registry's primary URL, the URL given, the hub's resolve URL): for messages. */
  readonly publicUrl: string;
  /** "model RN50", for messages. */
  readonly label: string;
  readonly entry: RegistryEntry | null;
  readonly kind: FileKind | null;
  readonly sizeHint: number | null;
  readonly exactSize?: number | null;
  /** A cap below the configured maximum (an approximate registry size with some room). */
  readonly maxBytes?: number | null;
  readonly auth?: DownloadJob['auth'];
  readonly manifest?: DownloadJob['manifest'];
}

/** A file in the cache, verified. */
export interface StoredFile {
  readonly path: string;
  readonly sha256: string;
  readonly verification: Verification;
  readonly downloaded: boolean;
  /** Where its bytes came from; null when placed by hand or fetched by another process. */
  readonly url: string | null;
  readonly manifest: Manifest | null;
}

/** Whether nothing was published for a target: it is verified only against the hash recorded on first download. */
export function unpublished(t: CacheTarget): boolean {
  return t.expected.sha256 === null && t.expected.sha256Prefix === null && !t.expected.gitSha1;
}

export function unverifiedWarning(t: CacheTarget, sha256: string): string {
  if (t.entry) {
    return (
      `${t.fileName} has no published checksum, so it was not verified against its publisher. ` +
      `Its SHA-256 ${sha256} is now recorded in ${manifestPath(t.dest)} and checked by "models verify" from now on.`
    );
  }
  return (
    `${t.publicUrl} was given without a checksum, so its content was not verified. SHA-256 of what was downloaded: ${sha256}. ` +
    `Pin it with ${t.publicUrl}#sha256=${sha256}`
  );
}

/**
 * A file already in the cache: trusted when its manifest agrees (size and hash as expected); hashed once when it
 * has no manifest (copied there by hand). Returns null when absent, or when damaged and the network may repair it
 * (the damaged copy is removed). A link at `dest` is refused: the cache never holds one of its own.
 */
export async function lookup(t: CacheTarget, st: HubSettings, signal?: AbortSignal): Promise<StoredFile | null> {
  const m = await cachedManifest(t.dest, t.expected);
  if (m) return { path: t.dest, sha256: m.sha256, verification: m.verification, downloaded: false, url: m.url, manifest: m };
  if ((await fileSize(t.dest)) === null) return null;

  const old = await readManifest(t.dest);
  st.log('info', `checking ${t.dest}`);
  const { sha256, size } = await sha256File(t.dest, signal);
  // Without a published hash, the one recorded on first download is the reference (trust on first use).
  const expected: ExpectedHash = unpublished(t) && old ? { sha256: old.sha256, sha256Prefix: null } : t.expected;
  const verification = checkHash(expected, sha256);
  if (verification !== null) {
    const v: Verification = unpublished(t) ? (old?.verification ?? 'recorded') : verification;
    if (!old) st.log('warn', v === 'recorded' ? unverifiedWarning(t, sha256) : `adopting ${t.dest}, placed in the cache by hand (checksum ok)`);
    const manifest: Manifest = {
      version: 1,
      fileName: t.fileName,
      kind: t.kind,
      name: t.entry?.name ?? null,
      source: t.publicUrl,
      url: old?.url ?? null,
      sha256,
      size,
      verification: v,
      origin: old?.origin ?? 'placed',
      createdAt: old?.createdAt ?? new Date().toISOString(),
      ...t.manifest,
    };
    try {
      await writeManifest(t.dest, manifest);
    } catch (e) {
      // A read-only, pre-filled cache is fine: the file is good, it just gets hashed again next time.
      if (!isErrno(e, 'EACCES', 'EPERM', 'EROFS')) throw e;
    }
    return { path: t.dest, sha256, verification: v, downloaded: false, url: old?.url ?? null, manifest };
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

/** Downloads a target (under its lock), verifies it and records it; the progress bar is drawn here. */
export async function fetch(t: CacheTarget, st: HubSettings, options: HubOptions): Promise<StoredFile> {
  const job: DownloadJob = {
    fileName: t.fileName,
    dest: t.dest,
    urls: t.urls,
    expected: t.expected,
    sizeHint: t.sizeHint,
    kind: t.kind,
    name: t.entry?.name ?? null,
    source: t.publicUrl,
    manifest: t.manifest,
    exactSize: t.exactSize ?? null,
    maxBytes: Math.min(st.maxDownloadBytes, t.maxBytes ?? Infinity),
    auth: t.auth ?? null,
  };
  const bar = options.onProgress ? null : createProgressBar({ quiet: options.quiet });
  try {
    const r = await download(job, { ...options, onProgress: options.onProgress ?? (bar?.active ? bar.update : undefined), log: st.log });
    if (r.downloaded && r.verification === 'recorded') st.log('warn', unverifiedWarning(t, r.sha256));
    return { path: r.path, sha256: r.sha256, verification: r.verification, downloaded: r.downloaded, url: r.url, manifest: await readManifest(r.path) };
  } finally {
    bar?.end();
  }
}
