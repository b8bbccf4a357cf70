/**
 * Fetching one file into the cache: streamed to `<dest>.part`, hashed while it streams, resumed with HTTP
 * Range after an interruption, checked against its expected SHA-256 and only then renamed to `<dest>`, all under
 * a lock so that concurrent processes do one download.
 *
 * Transport is Node's own `http`/`https` (redirects, timeouts and Range handled here, so that each is explicit)
 * plus `file:` URLs for mirrors on a shared drive. No proxy support: Node's built-in clients ignore HTTP(S)_PROXY;
 * use a mirror (CLIP_IQA_MIRROR) on networks that need one.
 *
 * What a server cannot make it do: write more than the file's known size (or the configured maximum), follow a
 * redirect to anything but http(s) (never `file:`, so no local file is read or hashed for a remote server), go
 * from https to http, send a bearer token to any host but the one it is meant for, or write through a link planted
 * at the partial file's name. An interruption (Ctrl-C, SIGTERM, an abort) removes the partial file and the lock.
 */
import { createHash } from 'node:crypto';
import { constants as fsConstants, createReadStream, rmSync } from 'node:fs';
import { lstat, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { basename, dirname } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ClipIqaError, errCode, isErrno } from '../errors.js';
import {
  cacheError,
  CACHE_ERRNOS,
  cachedManifest,
  checkHash,
  describeExpected,
  ensureDir,
  gitBlobSha1,
  hashFileInto,
  lockPath,
  manifestPath,
  partInfoPath,
  partPath,
  writeJsonAtomic,
  writeManifest,
  type ExpectedHash,
  type Manifest,
  type Verification,
} from './cache.js';
import { acquireLock, type Lock } from './lock.js';
import { ProgressMeter, type ProgressCallback } from './progress.js';
import type { FileKind } from './registry.js';

/** How the hub reports what it does: `info` for progress notes, `warn` for what a user should know. */
export type HubLogger = (level: 'info' | 'warn', message: string) => void;

export interface DownloadJob {
  /** File name, for messages and progress. */
  readonly fileName: string;
  /** Final path in the cache. */
  readonly dest: string;
  /** Locations tried in order; the next one is used when one fails for good. */
  readonly urls: readonly string[];
  readonly expected: ExpectedHash;
  /** For the disk-full message. */
  readonly sizeHint?: number | null;
  /** Recorded in the manifest. */
  readonly kind: FileKind | null;
  readonly name: string | null;
  readonly source: string;
  /** More to record in the manifest (a hub file's repository, revision, commit). */
  readonly manifest?: Pick<Manifest, 'repo' | 'revision' | 'commit' | 'config'>;
  /** The file's exact size when it is known (registry, the hub's X-Linked-Size): more bytes, or fewer, fail. */
  readonly exactSize?: number | null;
  /** The most bytes this download may write (the hub's or registry's size, else the configured maximum). */
  readonly maxBytes?: number | null;
  /** An `authorization` header value, sent to `host` only (the hub), never to a host it redirects to. */
  readonly auth?: { readonly host: string; readonly header: string } | null;
}

export interface DownloadOptions {
  readonly onProgress?: ProgressCallback;
  readonly log?: HubLogger;
  readonly signal?: AbortSignal;
  /** Connect and wait for response headers, ms. Default 30 s. */
  readonly connectTimeoutMs?: number;
  /** Longest gap between two chunks of the body before the transfer counts as stalled, ms. Default 60 s. */
  readonly stallTimeoutMs?: number;
  /** Retries of a URL after transient failures that made no progress (5xx, resets, timeouts). Default 4. */
  readonly retries?: number;
  /** First backoff delay, ms, doubling per retry (with jitter, capped at 30 s). Default 1000. */
  readonly retryDelayMs?: number;
  /** Default 10. */
  readonly maxRedirects?: number;
  /** How long to wait for another process downloading the same file, without it making progress. Default 5 min. */
  readonly lockTimeoutMs?: number;
  /** A lock untouched this long is abandoned. Default 60 s. */
  readonly lockStaleMs?: number;
  /** Minimum interval between progress events, ms. Default 100. */
  readonly progressIntervalMs?: number;
}

export interface DownloadResult {
  readonly path: string;
  readonly sha256: string;
  readonly size: number;
  readonly verification: Verification;
  /** The URL the bytes came from (before redirects); null when another process fetched it while we waited. */
  readonly url: string | null;
  /** False when another process finished the same download while we waited for its lock. */
  readonly downloaded: boolean;
}

const USER_AGENT = 'clip-iqa (https://www.npmjs.com/package/clip-iqa)';

/** A failure worth retrying: the same request may well succeed later. */
class TransientError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A failure of this URL that retrying will not fix (404, 403, a bad redirect, DNS failure). */
class PermanentError extends Error {}

/** The server sent something inconsistent with the partial file: start again from byte 0, at once. */
class RestartError extends Error {}

export interface Response {
  readonly status: number;
  readonly statusText: string;
  readonly url: string;
  header(name: string): string | undefined;
  readonly body: Readable;
}

const TRANSIENT_ERRNOS = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

/** 300 → "0.3 s", 30000 → "30 s". */
function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

function isAbort(e: unknown): boolean {
  return (e as Error | null)?.name === 'AbortError';
}

/** Network errors as transient or permanent, with a sentence a user can act on. */
function classifyNetworkError(e: unknown, url: string): Error {
  if (e instanceof TransientError || e instanceof PermanentError || e instanceof RestartError || isAbort(e)) return e as Error;
  const code = errCode(e);
  const msg = e instanceof Error ? e.message : String(e);
  if (code === 'ENOTFOUND') {
    return new PermanentError(
      `cannot resolve the host of ${url} (${code}); without network access use a pre-filled cache with CLIP_IQA_OFFLINE=1, ` +
        'or a reachable mirror with CLIP_IQA_MIRROR',
      { cause: e },
    );
  }
  if (code !== undefined && TRANSIENT_ERRNOS.has(code)) return new TransientError(`${msg} (${code})`, null, { cause: e });
  if (code?.startsWith('ERR_TLS') || code?.startsWith('CERT_') || code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE') {
    return new PermanentError(`TLS failure for ${url}: ${msg} (${code})`, { cause: e });
  }
  // Unknown socket-level errors are more often passing than not: let the retry budget decide.
  return new TransientError(code ? `${msg} (${code})` : msg, null, { cause: e });
}

function retryAfter(value: string | undefined): number | null {
  if (!value) return null;
  const secs = Number(value);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : null;
}

function httpStatusError(res: Response): Error {
  const what = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''} from ${res.url}`;
  if (res.status === 408 || res.status === 425 || res.status === 429 || res.status >= 500) {
    return new TransientError(what, retryAfter(res.header('retry-after')));
  }
  return new PermanentError(what);
}

function headerOf(headers: IncomingHttpHeaders): (name: string) => string | undefined {
  return (name) => {
    const v = headers[name.toLowerCase()];
    return Array.isArray(v) ? v.join(', ') : v;
  };
}

/** One HTTP(S) request, no redirect followed; the body is left to the caller (drain or destroy it). */
export function requestHttp(url: URL, headers: Record<string, string>, connectTimeoutMs: number, signal?: AbortSignal, method: 'GET' | 'HEAD' = 'GET'): Promise<Response> {
  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    // agent: false, one connection per request: nothing pooled outlives a download or keeps a process alive.
    const req = client.request(url, { method, headers, agent: false, signal }, (res) => {
      clearTimeout(timer);
      // Until the body is piped, an error (connection cut) must not be an uncaught 'error' event; the pipeline
      // still sees it, since the stream stays errored.
      res.on('error', () => undefined);
      resolve({
        status: res.statusCode ?? 0,
        statusText: res.statusMessage ?? '',
        url: url.href,
        header: headerOf(res.headers),
        body: res,
      });
    });
    const timer = setTimeout(() => {
      req.destroy(new TransientError(`no response from ${url.host} within ${seconds(connectTimeoutMs)}`));
    }, connectTimeoutMs);
    // A persistent listener: errors after the response arrived reach the response stream too, and must not crash.
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end();
  });
}

/** `file:` URLs behave as a server that honours Range, so mirrors on a shared drive take the same path. */
async function requestFile(url: URL, headers: Record<string, string>): Promise<Response> {
  const path = fileURLToPath(url);
  const empty = (status: number, statusText: string, extra: Record<string, string> = {}): Response => ({
    status,
    statusText,
    url: url.href,
    header: (n) => extra[n.toLowerCase()],
    body: Readable.from([]),
  });
  let size: number;
  try {
    const st = await lstat(path);
    if (!st.isFile()) return empty(404, 'Not a file');
    size = st.size;
  } catch (e) {
    if (isErrno(e, 'ENOENT', 'ENOTDIR')) return empty(404, 'Not Found');
    if (isErrno(e, 'EACCES', 'EPERM')) return empty(403, 'Permission denied');
    throw e;
  }
  const range = /^bytes=(\d+)-$/.exec(headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  if (start > 0 && start >= size) return empty(416, 'Range Not Satisfiable', { 'content-range': `bytes */${size}` });
  const h: Record<string, string> = { 'content-length': String(size - start) };
  if (start > 0) h['content-range'] = `bytes ${start}-${size - 1}/${size}`;
  return {
    status: start > 0 ? 206 : 200,
    statusText: start > 0 ? 'Partial Content' : 'OK',
    url: url.href,
    header: (n) => h[n.toLowerCase()],
    body: createReadStream(path, { start }).on('error', () => undefined),
  };
}

interface Settings {
  readonly connectTimeoutMs: number;
  readonly stallTimeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly maxRedirects: number;
}

function settings(o: DownloadOptions): Settings {
  return {
    connectTimeoutMs: o.connectTimeoutMs ?? 30_000,
    stallTimeoutMs: o.stallTimeoutMs ?? 60_000,
    retries: o.retries ?? 4,
    retryDelayMs: o.retryDelayMs ?? 1000,
    maxRedirects: o.maxRedirects ?? 10,
  };
}

export const REDIRECTS = [301, 302, 303, 307, 308];

/**
 * Where a redirect may lead: http(s) only (a server must never make clip-iqa read a local `file:` and report its
 * hash or its first bytes), and never from https down to http. An upgrade from http to https is followed.
 */
export function redirectTarget(current: URL, location: string): URL {
  let next: URL;
  try {
    next = new URL(location, current);
  } catch {
    throw new PermanentError(`${current.href} redirects to "${location}", which is not a URL`);
  }
  if (next.protocol !== 'http:' && next.protocol !== 'https:') {
    throw new PermanentError(`${current.href} redirects to a ${next.protocol} URL, refused: redirects may only lead to http(s)`);
  }
  if (current.protocol === 'https:' && next.protocol === 'http:') {
    throw new PermanentError(`${current.href} redirects to plain http (${next.href}), refused: https never falls back to http`);
  }
  return next;
}

/** The request headers for one hop: the bearer token goes to its own host only. */
function hopHeaders(headers: Record<string, string>, url: URL, auth: DownloadJob['auth']): Record<string, string> {
  return auth && url.host === auth.host ? { ...headers, authorization: auth.header } : headers;
}

/** GET with redirects followed by hand: a limit, relative Location, http(s) only, no https → http. */
async function get(url: string, headers: Record<string, string>, job: DownloadJob, s: Settings, signal?: AbortSignal): Promise<Response> {
  let current = new URL(url);
  // A file: URL is a mirror the user configured; it is only ever a starting point, never a redirect's target.
  if (current.protocol === 'file:') return requestFile(current, headers);
  for (let hop = 0; ; hop++) {
    if (current.protocol !== 'http:' && current.protocol !== 'https:') {
      throw new PermanentError(`unsupported URL scheme "${current.protocol}" in ${current.href} (http, https and file are supported)`);
    }
    let res: Response;
    try {
      res = await requestHttp(current, hopHeaders(headers, current, job.auth), s.connectTimeoutMs, signal);
    } catch (e) {
      throw classifyNetworkError(e, current.href);
    }
    if (!REDIRECTS.includes(res.status)) return res;
    res.body.resume(); // drain and drop the redirect's body
    const location = res.header('location');
    if (!location) throw new PermanentError(`HTTP ${res.status} redirect without a Location header from ${current.href}`);
    if (hop >= s.maxRedirects) throw new PermanentError(`more than ${s.maxRedirects} redirects, starting at ${url} (last: ${current.href})`);
    current = redirectTarget(current, location);
  }
}

/** What the partial file is a prefix of. */
interface PartInfo {
  readonly identity: string;
  readonly url: string;
  readonly etag: string | null;
  readonly lastModified: string | null;
  readonly total: number | null;
}

/**
 * A partial file may be resumed only if it is a prefix of the same file: with a full expected hash, any URL
 * serves the same bytes; otherwise only the same URL does.
 */
function identityOf(job: DownloadJob, url: string): string {
  if (job.expected.sha256 !== null) return `sha256:${job.expected.sha256}`;
  return `url:${url}|prefix:${job.expected.sha256Prefix ?? ''}`;
}

async function readPartInfo(file: string): Promise<PartInfo | null> {
  try {
    return JSON.parse(await readFile(partInfoPath(file), 'utf8')) as PartInfo;
  } catch {
    return null;
  }
}

/** Size of a partial file: 0 when absent or not a regular file (a link there is never followed). */
async function sizeOf(path: string): Promise<number> {
  try {
    const st = await lstat(path);
    return st.isFile() ? st.size : 0;
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return 0;
    throw e;
  }
}

/**
 * Opens the partial file for writing without following a link planted at its name: a fresh one with O_EXCL (after
 * removing whatever was there: a link is removed, not its target), a resumed one with O_NOFOLLOW and its size
 * checked against what was hashed.
 */
async function openPart(part: string, append: number): Promise<FileHandle> {
  const { O_WRONLY, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW } = fsConstants;
  if (append === 0) {
    await rm(part, { force: true });
    return open(part, O_WRONLY | O_CREAT | O_EXCL | (O_NOFOLLOW ?? 0), 0o600);
  }
  const fh = await open(part, O_WRONLY | O_APPEND | (O_NOFOLLOW ?? 0));
  if ((await fh.stat()).size !== append) {
    await fh.close();
    throw new RestartError(`the partial ${part} changed while it was being resumed`);
  }
  return fh;
}

/** `bytes a-b/total` → numbers; null when malformed. `total` null for `*`. */
export function parseContentRange(value: string | undefined): { start: number; end: number; total: number | null } | null {
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(value ?? '');
  if (!m) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === '*' ? null : Number(m[3]);
  if (end < start || (total !== null && end >= total)) return null;
  return { start, end, total };
}

/** Marks errors of the file being written, so that a full disk is not mistaken for a network failure. */
class DiskError extends Error {
  constructor(readonly original: unknown) {
    super(original instanceof Error ? original.message : String(original), { cause: original });
  }
}

/** A server sent more than the file's size or the limit: retrying the same server will not help. */
class TooLargeError extends PermanentError {}

/**
 * Counts, hashes and watches the body: a gap longer than `stallMs` between chunks fails the transfer, and so does
 * a byte beyond `room` (what the cap leaves after the part already on disk).
 */
function meterStream(
  hash: ReturnType<typeof createHash>,
  meter: ProgressMeter,
  stallMs: number,
  onStall: () => void,
  room: number,
  tooLarge: () => Error,
): Transform & { bytes: number } {
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(onStall, stallMs);
  };
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      arm();
      if (t.bytes + chunk.length > room) {
        cb(tooLarge());
        return;
      }
      hash.update(chunk);
      t.bytes += chunk.length;
      meter.add(chunk.length);
      cb(null, chunk);
    },
    flush(cb) {
      clearTimeout(timer);
      cb();
    },
    destroy(err, cb) {
      clearTimeout(timer);
      cb(err);
    },
  }) as Transform & { bytes: number };
  t.bytes = 0;
  arm();
  return t;
}

interface Transfer {
  readonly url: string;
  readonly sha256: string;
  readonly size: number;
  /** Bytes that came from an earlier attempt (0 for a download from scratch). */
  readonly resumedFrom: number;
}

/** One request: resumes the partial file if it can, and leaves it complete (returns) or partial (throws). */
async function attempt(job: DownloadJob, url: string, s: Settings, o: DownloadOptions): Promise<Transfer> {
  const part = partPath(job.dest);
  if (await lstat(part).then((st) => !st.isFile(), () => false)) {
    o.log?.('warn', `${part} is not a file clip-iqa wrote (a link or a special file): it is removed, never followed`);
    await rm(part, { force: true });
  }
  const identity = identityOf(job, url);
  const info = await readPartInfo(job.dest);
  let offset = await sizeOf(part);
  if (offset > 0 && info?.identity !== identity) {
    o.log?.('info', `discarding a partial ${job.fileName} that belongs to another download`);
    offset = 0;
  }

  const headers: Record<string, string> = { 'user-agent': USER_AGENT, 'accept-encoding': 'identity', accept: '*/*' };
  if (offset > 0 && info) {
    headers.range = `bytes=${offset}-`;
    // If-Range: if the file changed on the server since the partial was written, it answers 200 with all of it.
    const validator = info.etag && !info.etag.startsWith('W/') ? info.etag : info.lastModified;
    if (validator) headers['if-range'] = validator;
  }
  const res = await get(url, headers, job, s, o.signal);
  const cap = job.exactSize ?? job.maxBytes ?? Infinity;
  const limitWords = (): string =>
    job.exactSize != null ? `its known size of ${job.exactSize} bytes` : `the download limit of ${cap} bytes (raise it with CLIP_IQA_MAX_DOWNLOAD)`;

  let start: number;
  let total: number | null;
  if (res.status === 206) {
    const cr = parseContentRange(res.header('content-range'));
    if (!cr || cr.start !== offset || (info?.total != null && cr.total !== null && cr.total !== info.total)) {
      res.body.destroy();
      await rm(part, { force: true });
      throw new RestartError(`the server answered a range request for ${job.fileName} with Content-Range "${res.header('content-range') ?? ''}"`);
    }
    start = offset;
    total = cr.total;
  } else if (res.status === 200) {
    if (offset > 0) o.log?.('info', `${res.url} does not resume downloads (it sent the whole file); starting ${job.fileName} again`);
    start = 0;
    const len = Number(res.header('content-length'));
    total = res.header('content-length') !== undefined && Number.isSafeInteger(len) ? len : null;
  } else if (res.status === 416) {
    res.body.resume();
    const cr = /bytes\s+\*\/(\d+)/i.exec(res.header('content-range') ?? '');
    if (offset > 0 && cr && Number(cr[1]) === offset) {
      // The partial file already holds every byte: an earlier attempt ended just before its rename.
      const hash = createHash('sha256');
      await hashFileInto(hash, part, offset, o.signal);
      new ProgressMeter(job.fileName, url, offset, offset, o.onProgress, o.progressIntervalMs).finish();
      return { url, sha256: hash.digest('hex'), size: offset, resumedFrom: offset };
    }
    await rm(part, { force: true });
    if (offset > 0) throw new RestartError(`the server refused to resume ${job.fileName} at byte ${offset} (HTTP 416)`);
    throw httpStatusError(res);
  } else {
    res.body.resume();
    throw httpStatusError(res);
  }
  if (total !== null && total > cap) {
    res.body.destroy();
    throw new TooLargeError(`${res.url} announces ${total} bytes for ${job.fileName}, more than ${limitWords()}; nothing was written`);
  }

  const partInfo: PartInfo = {
    identity,
    url,
    etag: res.header('etag') ?? null,
    lastModified: res.header('last-modified') ?? null,
    total,
  };
  try {
    await writeJsonAtomic(partInfoPath(job.dest), partInfo);
  } catch (e) {
    res.body.destroy();
    throw new DiskError(e);
  }

  const hash = createHash('sha256');
  if (start > 0) {
    try {
      await hashFileInto(hash, part, start, o.signal);
    } catch (e) {
      // Re-reading a large prefix takes seconds; an abort then must not leave the response's socket open.
      res.body.destroy();
      throw e;
    }
  }
  const meter = new ProgressMeter(job.fileName, url, start, total, o.onProgress, o.progressIntervalMs);
  const counter = meterStream(
    hash,
    meter,
    s.stallTimeoutMs,
    () => counter.destroy(new TransientError(`no data from ${res.url} for ${seconds(s.stallTimeoutMs)} (stalled)`)),
    cap - start,
    () => new TooLargeError(`${res.url} sent more than ${limitWords()} for ${job.fileName}; the download was stopped and discarded`),
  );
  let fh: FileHandle;
  try {
    fh = await openPart(part, start);
  } catch (e) {
    res.body.destroy();
    if (e instanceof RestartError) throw e;
    throw new DiskError(e);
  }
  const out = fh.createWriteStream();
  let diskError: unknown = null;
  out.once('error', (e) => (diskError = e));
  try {
    await pipeline(res.body, counter, out, { signal: o.signal });
  } catch (e) {
    if (diskError) throw new DiskError(diskError);
    throw classifyNetworkError(e, url);
  } finally {
    // The stream closes its handle when it ends or fails; this only covers a pipeline that never started it.
    await fh.close().catch(() => undefined);
  }
  const size = start + counter.bytes;
  if (total !== null && size !== total) {
    throw new TransientError(`the connection to ${res.url} closed after ${size} of ${total} bytes`);
  }
  // Too few bytes of a file with a checksum fail that check, which says more; without one, the size decides.
  if (job.exactSize != null && size !== job.exactSize && job.expected.sha256 === null) {
    throw new PermanentError(`${res.url} sent ${size} bytes for ${job.fileName}, whose size is ${job.exactSize}`);
  }
  meter.finish();
  return { url, sha256: hash.digest('hex'), size, resumedFrom: start };
}

function backoff(s: Settings, failures: number, hint: number | null): number {
  if (hint !== null) return Math.min(hint, 60_000);
  const base = Math.min(s.retryDelayMs * 2 ** (failures - 1), 30_000);
  return base / 2 + (Math.random() * base) / 2;
}

/** A URL, retried while failures are transient; progress between failures renews the retry budget. */
async function transferFrom(job: DownloadJob, url: string, s: Settings, o: DownloadOptions): Promise<Transfer> {
  const part = partPath(job.dest);
  let failures = 0;
  let restarts = 0;
  let attempts = 0;
  for (;;) {
    const before = await sizeOf(part);
    try {
      attempts++;
      return await attempt(job, url, s, o);
    } catch (e) {
      if (e instanceof RestartError) {
        // One restart is a server quirk; repeated ones mean it cannot serve this file consistently.
        if (++restarts > 2) throw new PermanentError(`${e.message}, again after restarting from the beginning`);
        o.log?.('info', `${e.message}; starting again from the beginning`);
        continue;
      }
      if (!(e instanceof TransientError)) throw e;
      const after = await sizeOf(part);
      if (after > before) failures = 0;
      else failures++;
      // Cap even progressing attempts, so a server that drops every connection after a few bytes ends somewhere.
      if (failures > s.retries || attempts > s.retries + 50) {
        throw new TransientError(`${e.message} (gave up after ${attempts} attempt${attempts === 1 ? '' : 's'})`);
      }
      const wait = backoff(s, Math.max(1, failures), e.retryAfterMs);
      o.log?.('info', `${job.fileName}: ${e.message}; retrying in ${(wait / 1000).toFixed(1)} s${after > 0 ? ` from byte ${after}` : ''}`);
      await sleep(wait, undefined, { signal: o.signal });
    }
  }
}

/** E_DOWNLOAD errors after which the partial file is worth keeping for the next run to resume. */
const resumable = new WeakSet<Error>();
/** Each URL tried and why it failed, for a message that lists every source of a file. */
const failuresByError = new WeakMap<Error, readonly { url: string; message: string }[]>();

/** The URLs a download error tried and why each failed; undefined for other errors. */
export function downloadFailures(e: unknown): readonly { url: string; message: string }[] | undefined {
  return e instanceof Error ? failuresByError.get(e) : undefined;
}

/** Whether a download error leaves a partial file to resume (a network failure). */
export const isResumable = (e: unknown): boolean => e instanceof Error && resumable.has(e);

function downloadError(job: DownloadJob, failures: readonly { url: string; error: Error }[]): ClipIqaError {
  const lines = failures.map((f) => `  ${f.url}: ${f.error.message}`).join('\n');
  const hints: string[] = [];
  if (failures.some((f) => / 404 /.test(f.error.message))) {
    hints.push(`A 404 means the file is not at that address: check the URL, or that the mirror (CLIP_IQA_MIRROR) holds ${job.fileName}.`);
  }
  const retryable = failures.some((f) => f.error instanceof TransientError);
  if (retryable) {
    hints.push('Check the network (behind a proxy, use CLIP_IQA_MIRROR), then run the command again: any partial download is kept and resumed.');
  }
  const hint = hints.join(' ');
  const error = new ClipIqaError(
    'E_DOWNLOAD',
    `Could not download ${job.fileName} (${job.name ?? job.source}):\n${lines}${hint ? `\n${hint}` : ''}`,
    { cause: failures[failures.length - 1]?.error },
  );
  if (retryable) resumable.add(error);
  failuresByError.set(
    error,
    failures.map((f) => ({ url: f.url, message: f.error.message })),
  );
  return error;
}

/** Downloads to `<dest>.part` from the first URL that works; returns the complete transfer. */
async function transferAny(job: DownloadJob, s: Settings, o: DownloadOptions): Promise<Transfer> {
  const failures: { url: string; error: Error }[] = [];
  for (const url of job.urls) {
    try {
      return await transferFrom(job, url, s, o);
    } catch (e) {
      if (e instanceof DiskError) throw cacheError(e.original, partPath(job.dest), `writing ${job.fileName}`, job.sizeHint);
      if (!(e instanceof TransientError || e instanceof PermanentError)) throw e;
      failures.push({ url, error: e });
      if (job.urls.length > 1 && url !== job.urls[job.urls.length - 1]) o.log?.('warn', `${job.fileName}: ${url} failed (${e.message}); trying the next source`);
    }
  }
  throw downloadError(job, failures);
}

async function removePartial(dest: string): Promise<void> {
  await rm(partPath(dest), { force: true }).catch(() => undefined);
  await rm(partInfoPath(dest), { force: true }).catch(() => undefined);
}

/** fsync then rename: after a crash the cache holds the whole verified file or none of it. */
async function commit(part: string, dest: string): Promise<void> {
  const fh = await open(part, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(part, dest);
}

/** A download in progress, as the signal handlers see it. */
interface Active {
  readonly dest: string;
  readonly abort: AbortController;
  readonly lock: Lock;
}

const active = new Set<Active>();
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * Ctrl-C or SIGTERM during a download: the partial file and the lock go at once (synchronously: the process is about
 * to end), then the signal takes its course. When the program has its own handler for it (a server's graceful
 * shutdown), that handler decides what happens next; otherwise the process ends as the signal would have ended it.
 */
function onSignal(signal: NodeJS.Signals): void {
  for (const d of active) {
    d.abort.abort(new Error(`interrupted by ${signal}`));
    for (const p of [partPath(d.dest), partInfoPath(d.dest)]) rmSync(p, { force: true });
    d.lock.releaseSync();
  }
  active.clear();
  watchSignals(false);
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function watchSignals(on: boolean): void {
  for (const sig of SIGNALS) {
    if (on) process.on(sig, onSignal);
    else process.off(sig, onSignal);
  }
}

/**
 * Fetches `job` into the cache and returns the verified file. Holds `<dest>.lock` throughout; if another process
 * completes the file while we wait for the lock, its result is used and nothing is downloaded. The partial file
 * is kept for the next run only after a network failure; an interruption (abort, SIGINT, SIGTERM) removes it.
 */
export async function download(job: DownloadJob, options: DownloadOptions = {}): Promise<DownloadResult> {
  const s = settings(options);
  const log = options.log;
  await ensureDir(dirname(job.dest), `creating the directory for ${job.fileName}`);
  const lock = await acquireLock(lockPath(job.dest), {
    purpose: `downloading ${job.fileName}`,
    timeoutMs: options.lockTimeoutMs,
    staleMs: options.lockStaleMs,
    signal: options.signal,
    activity: () => sizeOf(partPath(job.dest)),
    onWait: (owner) =>
      log?.('info', `waiting for ${owner ? `process ${owner.pid}` : 'another process'}, which is downloading ${job.fileName} into ${dirname(job.dest)}`),
    onStale: (owner) => log?.('warn', `removing an abandoned lock on ${job.fileName}${owner ? ` (process ${owner.pid})` : ''}`),
  });
  const me: Active = { dest: job.dest, abort: new AbortController(), lock };
  if (active.size === 0) watchSignals(true);
  active.add(me);
  const signal = options.signal ? AbortSignal.any([options.signal, me.abort.signal]) : me.abort.signal;
  const o: DownloadOptions = { ...options, signal };
  let keepPartial = false;
  try {
    const done = await cachedManifest(job.dest, job.expected);
    if (done) {
      return { path: job.dest, sha256: done.sha256, size: done.size, verification: done.verification, url: null, downloaded: false };
    }
    let retriedFresh = false;
    for (;;) {
      let t: Transfer;
      try {
        t = await transferAny(job, s, o);
      } catch (e) {
        // A network failure leaves a partial worth resuming; anything else (4xx, disk, too large, abort) does not.
        keepPartial = e instanceof Error && resumable.has(e) && !signal.aborted;
        throw e;
      }
      let verification = checkHash(job.expected, t.sha256);
      if (verification !== null && job.expected.gitSha1) {
        const blob = await gitBlobSha1(partPath(job.dest), t.size, signal);
        if (blob !== job.expected.gitSha1) verification = null;
      }
      if (verification === null) {
        await removePartial(job.dest);
        // A resumed prefix may come from an older copy of the file: one clean download decides.
        if (t.resumedFrom > 0 && !retriedFresh) {
          retriedFresh = true;
          log?.('warn', `${job.fileName}: the resumed download does not match its checksum; downloading it again from the start`);
          continue;
        }
        throw new ClipIqaError(
          'E_CHECKSUM',
          `Checksum mismatch for ${job.fileName} downloaded from ${t.url}: expected ${describeExpected(job.expected)}, got sha256 ${t.sha256} ` +
            `(${t.size} bytes). The file was discarded and nothing was cached. The server, a proxy or a mirror served other bytes ` +
            'than the published file: try again later, or check the mirror (CLIP_IQA_MIRROR) or the checksum you gave.',
        );
      }
      const manifest: Manifest = {
        version: 1,
        fileName: basename(job.dest),
        kind: job.kind,
        name: job.name,
        source: job.source,
        url: t.url,
        sha256: t.sha256,
        size: t.size,
        verification,
        origin: 'download',
        createdAt: new Date().toISOString(),
        ...job.manifest,
      };
      try {
        // The record first: the file never sits in the cache without the hash and commit it was verified against.
        await writeManifest(job.dest, manifest);
        await commit(partPath(job.dest), job.dest);
      } catch (e) {
        if (isErrno(e, ...CACHE_ERRNOS)) throw cacheError(e, manifestPath(job.dest), `saving ${job.fileName}`, job.sizeHint);
        throw e;
      }
      return { path: job.dest, sha256: t.sha256, size: t.size, verification, url: t.url, downloaded: true };
    }
  } finally {
    active.delete(me);
    if (active.size === 0) watchSignals(false);
    if (!keepPartial) await removePartial(job.dest);
    await lock.release();
  }
}
