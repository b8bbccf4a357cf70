/**
 * The browser build's file source: a model, vocabulary or context given as a URL, bytes or a File/Blob, read into
 * memory. URLs are fetched with progress and kept in Cache Storage (`clip-iqa-files-v1`), so that a second visit
 * reads them from the browser's disk and makes no request. A Cache Storage entry is written whole or not at all
 * (`cache.put` of a complete body), so an interrupted download leaves nothing behind.
 */
import { ClipIqaError, errorMessage } from '../errors.js';

/** A file: a URL (absolute, or relative to the page), its bytes, or a Blob/File (e.g. from an `<input type=file>`). */
export type FileSpec = string | URL | ArrayBuffer | ArrayBufferView | Blob;

export const CACHE_NAME = 'clip-iqa-files-v1';

export interface LoadProgress {
  /** Which file: `model`, `config`, `vocab` or `plus`. */
  readonly kind: 'model' | 'config' | 'vocab' | 'plus';
  /** The URL or file name. */
  readonly file: string;
  /** Bytes read so far. */
  readonly loaded: number;
  /** Bytes in all, when known (the Content-Length of a download). */
  readonly total: number | undefined;
  /** Read from the browser's cache (no network). */
  readonly cached: boolean;
  /** The file is read completely. */
  readonly done: boolean;
}

export interface ReadOptions {
  readonly kind: LoadProgress['kind'];
  /** Keep downloads in Cache Storage and read them from there (default true). */
  readonly cache: boolean;
  readonly onProgress?: (p: LoadProgress) => void;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface ReadFile {
  readonly bytes: Uint8Array;
  /** The URL or file name, for messages and results. */
  readonly name: string;
}

const isBlob = (v: unknown): v is Blob => typeof Blob !== 'undefined' && v instanceof Blob;

/** Whether `v` is something `readFileSpec` takes (not a file map). */
export function isFileSpec(v: unknown): v is FileSpec {
  return typeof v === 'string' || v instanceof URL || v instanceof ArrayBuffer || ArrayBuffer.isView(v) || isBlob(v);
}

/** Resolves a URL against the page (in a worker, against the worker's script). */
export function absoluteUrl(spec: string | URL): string {
  const base = typeof document !== 'undefined' ? document.baseURI : globalThis.location?.href;
  try {
    return new URL(spec, base).href;
  } catch (e) {
    throw new ClipIqaError('E_OPTION', `${String(spec)}: not a URL (${errorMessage(e)})`, { cause: e });
  }
}

async function openCache(): Promise<Cache | undefined> {
  // Cache Storage exists in secure contexts only (https, localhost); elsewhere files are simply downloaded.
  if (typeof caches === 'undefined') return undefined;
  try {
    return await caches.open(CACHE_NAME);
  } catch {
    return undefined;
  }
}

async function readBody(response: Response, report: (loaded: number, total: number | undefined) => void): Promise<Uint8Array> {
  const header = response.headers.get('content-length');
  // A compressed transfer's Content-Length is of the compressed bytes: progress only, never a check.
  const total = header !== null && /^\d+$/.test(header) ? Number(header) : undefined;
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    report(bytes.length, total);
    return bytes;
  }
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  report(0, total);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    report(loaded, total);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return bytes;
}

/** Downloads (or reads from the cache) a URL. */
async function readUrl(url: string, options: ReadOptions): Promise<ReadFile> {
  const { kind, onProgress } = options;
  const report = (cached: boolean, done: boolean) => (loaded: number, total: number | undefined) =>
    onProgress?.({ kind, file: url, loaded, total, cached, done });
  const cache = options.cache ? await openCache() : undefined;
  const hit = await cache?.match(url).catch(() => undefined);
  if (hit) {
    const bytes = await readBody(hit, report(true, false));
    report(true, true)(bytes.length, bytes.length);
    return { bytes, name: url };
  }
  let response: Response;
  try {
    response = await fetch(url, options.headers ? { headers: options.headers } : undefined);
  } catch (e) {
    throw new ClipIqaError('E_DOWNLOAD', `${url}: the ${kind} could not be fetched (${errorMessage(e)}); check the URL, the network, and CORS headers if it is on another origin.`, { cause: e });
  }
  if (!response.ok) {
    throw new ClipIqaError('E_DOWNLOAD', `${url}: the server answered ${response.status} ${response.statusText} for the ${kind}; check the URL.`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await readBody(response, report(false, false));
  } catch (e) {
    throw new ClipIqaError('E_DOWNLOAD', `${url}: the download of the ${kind} broke off (${errorMessage(e)}); try again.`, { cause: e });
  }
  report(false, true)(bytes.length, bytes.length);
  if (cache) {
    const headers = { 'content-type': response.headers.get('content-type') ?? 'application/octet-stream', 'content-length': String(bytes.length) };
    // A full cache (quota) only costs the next visit a download.
    await cache.put(url, new Response(bytes.slice().buffer, { headers })).catch(() => undefined);
  }
  return { bytes, name: url };
}

/** A file's bytes, whatever form it was given in; `fallbackName` names bytes in messages. */
export async function readFileSpec(spec: FileSpec, fallbackName: string, options: ReadOptions): Promise<ReadFile> {
  if (typeof spec === 'string' || spec instanceof URL) return readUrl(absoluteUrl(spec), options);
  if (spec instanceof ArrayBuffer) return { bytes: new Uint8Array(spec), name: fallbackName };
  if (ArrayBuffer.isView(spec)) return { bytes: new Uint8Array(spec.buffer, spec.byteOffset, spec.byteLength), name: fallbackName };
  if (isBlob(spec)) {
    const name = typeof File !== 'undefined' && spec instanceof File ? spec.name : fallbackName;
    try {
      const bytes = new Uint8Array(await spec.arrayBuffer());
      options.onProgress?.({ kind: options.kind, file: name, loaded: bytes.length, total: bytes.length, cached: false, done: true });
      return { bytes, name };
    } catch (e) {
      throw new ClipIqaError('E_NOT_FOUND', `${name}: the ${options.kind} file could not be read (${errorMessage(e)}).`, { cause: e });
    }
  }
  throw new ClipIqaError('E_OPTION', `the ${options.kind} must be a URL, an ArrayBuffer/Uint8Array or a File/Blob, got ${describe(spec)}`);
}

export const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? (v.constructor?.name ?? 'an object') : typeof v);

/** Removes every file this library keeps in Cache Storage. */
export async function clearCache(): Promise<boolean> {
  return typeof caches === 'undefined' ? false : caches.delete(CACHE_NAME);
}
