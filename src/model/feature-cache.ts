/**
 * Results derived from a checkpoint that are worth keeping between runs, on disk under the model cache:
 *
 *   <cache root>/features/<model identity>/text-<precision>.json   text features, one row per token sequence
 *   <cache root>/features/<model identity>/<name>.json             other derived data (int8 calibration ranges)
 *
 * A CLIP-IQA run scores a few dozen fixed prompts; their features depend only on the weights and the tokens, so
 * after the first run the text tower is never built again (a cold start saves its graph build and session, and
 * the tower itself). The model identity is the SHA-256 the hub verified for downloaded files, or a content
 * fingerprint of a local file (its size and 18 samples of 64 KiB), or the SHA-256 of checkpoint bytes. Rows are
 * keyed by the SHA-256 of their token ids (or, for learned CLIP-IQA+ prompts, of their embeddings), so a different
 * vocabulary or prompt text can never hit a stale row. Files are replaced atomically (temporary file + rename);
 * concurrent writers may drop each other's new rows, never corrupt a file. Every failure to read or write the
 * cache is ignored: the features are then computed as if it were empty.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClipEncoder, DenseFeatures, Features, PixelBatch, PositionalMode, RawImage } from './types.js';

const VERSION = 1;
const SAMPLE = 64 * 1024;
const SAMPLES = 16;

const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** A content fingerprint of a checkpoint file: size, head, tail and 16 evenly spaced 64 KiB samples. */
export async function fileFingerprint(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const hash = createHash('sha256').update(`size:${size};`);
    const buf = Buffer.alloc(SAMPLE);
    const offsets = new Set<number>([0, Math.max(0, size - SAMPLE)]);
    for (let i = 1; i <= SAMPLES; i++) offsets.add(Math.floor(((size - SAMPLE) * i) / (SAMPLES + 1)));
    for (const offset of [...offsets].filter((o) => o >= 0).sort((a, b) => a - b)) {
      const { bytesRead } = await handle.read(buf, 0, SAMPLE, offset);
      hash.update(buf.subarray(0, bytesRead));
    }
    return `fp-${hash.digest('hex').slice(0, 40)}`;
  } finally {
    await handle.close();
  }
}

/** The identity of checkpoint bytes held in memory. */
export const bytesIdentity = (bytes: Uint8Array): string => `sha256-${sha256(bytes).slice(0, 40)}`;

/** The identity of a file whose SHA-256 is known (verified downloads). */
export const sha256Identity = (hex: string): string => `sha256-${hex.slice(0, 40)}`;

/**
 * The identity of a checkpoint for the cache: the verified SHA-256 when the hub knows it, else a fingerprint of
 * the file or the hash of the bytes; undefined when there is nothing to go by (a StateDict built in memory) or
 * the file cannot be read.
 */
export async function modelIdentity(source: { sha256?: string | null; path?: string; bytes?: Uint8Array }): Promise<string | undefined> {
  if (source.sha256) return sha256Identity(source.sha256);
  if (source.bytes) return bytesIdentity(source.bytes);
  if (source.path) return fileFingerprint(source.path).catch(() => undefined);
  return undefined;
}

/** The derived-data directory of one model under the cache root. */
export class FeatureStore {
  readonly dir: string;

  constructor(root: string, identity: string) {
    this.dir = join(root, 'features', identity.replace(/[^A-Za-z0-9._-]/g, '_'));
  }

  async readJson<T>(name: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, `${name}.json`), 'utf8')) as T;
    } catch {
      return undefined;
    }
  }

  /** Writes by temporary file + rename; returns false (and leaves no temporary file) when the cache cannot be written. */
  async writeJson(name: string, value: unknown): Promise<boolean> {
    const path = join(this.dir, `${name}.json`);
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`;
    try {
      await mkdir(this.dir, { recursive: true });
      await writeFile(tmp, JSON.stringify(value));
      await rename(tmp, path);
      return true;
    } catch {
      await rm(tmp, { force: true }).catch(() => undefined);
      return false;
    }
  }
}

interface TextFile {
  readonly version: number;
  readonly dim: number;
  readonly rows: Record<string, string>;
}

const toBase64 = (row: Float32Array): string => Buffer.from(row.buffer, row.byteOffset, row.byteLength).toString('base64');
function fromBase64(s: string, dim: number): Float32Array | undefined {
  const b = Buffer.from(s, 'base64');
  if (b.byteLength !== dim * 4) return undefined;
  const out = new Float32Array(dim);
  new Uint8Array(out.buffer).set(b);
  return out;
}

/** The text tower always runs in float32, whatever the image tower's precision. */
const TEXT_FILE = 'text-float32';

/**
 * Rows kept on disk per model, oldest out first. The built-in prompts are 46 rows; the bound stops a server fed
 * ever new custom pairs from growing the file (rewritten whole on each new row) without end. About 5.5 MB at RN50's
 * 1024 dimensions.
 */
export const MAX_STORED_ROWS = 1024;

/**
 * A ClipEncoder whose text features come from the disk cache when present and go into it when computed.
 * Everything else is the wrapped encoder's. Rows computed in this session are written to disk, not kept here:
 * the caller's in-memory cache (iqa/text-features.ts) holds what is in use, within its bound.
 */
export class CachedTextEncoder implements ClipEncoder {
  readonly #inner: ClipEncoder;
  readonly #store: FeatureStore;
  /** The rows on disk when this encoder first needed one. */
  #rows: Promise<Map<string, Float32Array>> | undefined;

  constructor(inner: ClipEncoder, store: FeatureStore) {
    this.#inner = inner;
    this.#store = store;
  }

  get architecture() {
    return this.#inner.architecture;
  }
  get logitScale() {
    return this.#inner.logitScale;
  }

  normalize(images: readonly RawImage[]): Promise<PixelBatch> {
    return this.#inner.normalize(images);
  }
  encodeImages(pixels: PixelBatch, mode: PositionalMode): Promise<Features> {
    return this.#inner.encodeImages(pixels, mode);
  }
  encodeDense(pixels: PixelBatch): Promise<DenseFeatures> {
    return this.#inner.encodeDense(pixels);
  }
  tokenEmbeddings(ids: readonly number[]): Float32Array {
    return this.#inner.tokenEmbeddings(ids);
  }
  dispose(): Promise<void> {
    return this.#inner.dispose();
  }

  #load(): Promise<Map<string, Float32Array>> {
    this.#rows ??= (async () => {
      const rows = new Map<string, Float32Array>();
      const file = await this.#store.readJson<TextFile>(TEXT_FILE);
      const dim = this.#inner.architecture.embedDim;
      if (file?.version === VERSION && file.dim === dim && file.rows && typeof file.rows === 'object') {
        for (const [k, v] of Object.entries(file.rows)) {
          const row = typeof v === 'string' ? fromBase64(v, dim) : undefined;
          if (row) rows.set(k, row);
        }
      }
      return rows;
    })();
    return this.#rows;
  }

  async #through(keys: readonly string[], compute: (missing: number[]) => Promise<Features>): Promise<Features> {
    const stored = await this.#load();
    const dim = this.#inner.architecture.embedDim;
    const computed = new Map<string, Float32Array>();
    const missing = [...new Set(keys.filter((k) => !stored.has(k)))];
    if (missing.length > 0) {
      const features = await compute(missing.map((k) => keys.indexOf(k)));
      missing.forEach((k, r) => computed.set(k, features.data.subarray(r * dim, (r + 1) * dim)));
      // Re-read before writing, so that rows another process stored meanwhile are kept.
      const onDisk = await this.#store.readJson<TextFile>(TEXT_FILE);
      const merged: Record<string, string> = onDisk?.version === VERSION && onDisk.dim === dim ? { ...onDisk.rows } : {};
      for (const [k, v] of [...stored, ...computed]) merged[k] = toBase64(v);
      // Object keys keep insertion order (these keys are never integer-like): the oldest rows come first.
      const keysInOrder = Object.keys(merged);
      for (const k of keysInOrder.slice(0, Math.max(0, keysInOrder.length - MAX_STORED_ROWS))) delete merged[k];
      await this.#store.writeJson(TEXT_FILE, { version: VERSION, dim, rows: merged } satisfies TextFile);
    }
    const data = new Float32Array(keys.length * dim);
    keys.forEach((k, i) => data.set(stored.get(k) ?? computed.get(k)!, i * dim));
    return { count: keys.length, dim, data };
  }

  encodeTokens(rows: readonly (readonly number[])[]): Promise<Features> {
    const keys = rows.map((ids) => `t${sha256(`ids:${ids.join(',')}`).slice(0, 32)}`);
    return this.#through(keys, (missing) => this.#inner.encodeTokens(missing.map((i) => rows[i]!)));
  }

  encodeEmbeddings(embeddings: Float32Array, count: number, eot: readonly number[]): Promise<Features> {
    if (count === 0 || embeddings.length % count !== 0) return this.#inner.encodeEmbeddings(embeddings, count, eot);
    const per = embeddings.length / count;
    const width = this.#inner.architecture.text.width;
    // Under the causal mask a row's feature depends on its embeddings up to its EOT position only.
    const keys = Array.from({ length: count }, (_, i) => {
      const used = embeddings.subarray(i * per, i * per + ((eot[i] ?? 0) + 1) * width);
      return `e${createHash('sha256').update(`eot:${eot[i]};`).update(new Uint8Array(used.buffer, used.byteOffset, used.byteLength)).digest('hex').slice(0, 32)}`;
    });
    return this.#through(keys, (missing) => {
      const sub = new Float32Array(missing.length * per);
      missing.forEach((i, r) => sub.set(embeddings.subarray(i * per, (i + 1) * per), r * per));
      return this.#inner.encodeEmbeddings(sub, missing.length, missing.map((i) => eot[i]!));
    });
  }
}
