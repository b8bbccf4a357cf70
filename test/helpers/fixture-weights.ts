/**
 * The safetensors models of test/fixtures, made from test/fixtures/generated.json before the tests run. The values
 * come from the same PRNG as test/reference/make_fixtures.py (32-bit integer hashing, scaled by powers of two, rounded
 * once to float32), so the bytes are the ones the Python reference computed its expected values from; each file's
 * SHA-256 in the manifest is checked before it is written.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

type Fill =
  | { readonly key: string; readonly base: number; readonly log2amp: number; readonly bits: number; readonly offset?: number; readonly transpose?: boolean }
  | { readonly value: number }
  | { readonly int: 'zeros' | 'arange' };

export interface TensorEntry {
  readonly name: string;
  readonly dtype: 'F32' | 'I64';
  readonly shape: readonly number[];
  readonly fill: Fill;
}

export interface GeneratedFile {
  readonly path: string;
  readonly metadata: Record<string, string> | null;
  readonly bytes: number;
  readonly sha256: string;
  readonly tensors: readonly TensorEntry[];
}

export interface Manifest {
  readonly seed: number;
  readonly prng_check: { readonly stream: string; readonly first: readonly number[] };
  readonly files: readonly GeneratedFile[];
}

/** Wellons' lowbias32: a 32-bit integer hash. */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The key of stream `name`: FNV-1a over its UTF-8 bytes, mixed with the seed. */
export function keyOf(name: string, seed: number): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(name)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return mix32((h ^ seed) >>> 0);
}

/** Element `i` of stream `key`: its top `bits` bits. */
export function streamAt(key: number, i: number, bits = 24): number {
  return mix32((mix32(i) ^ key) >>> 0) >>> (32 - bits);
}

/** 2^k, exactly (no pow, whose last bit an engine may choose). */
function pow2(k: number): number {
  let v = 1;
  for (; k > 0; k--) v *= 2;
  for (; k < 0; k++) v /= 2;
  return v;
}

function uniform(fill: Extract<Fill, { key: string }>, seed: number, count: number, offset: number): Float32Array {
  const key = keyOf(fill.key, seed);
  const half = pow2(fill.bits - 1);
  const step = pow2(fill.log2amp - fill.bits + 1);
  const out = new Float32Array(count);
  // base + s·step is exact in float64; the Float32Array store rounds it once, to nearest even, as numpy does.
  for (let i = 0; i < count; i++) out[i] = fill.base + (streamAt(key, offset + i, fill.bits) - half) * step;
  return out;
}

/** The bytes of one manifest tensor, little-endian. */
export function materialize(entry: TensorEntry, seed: number): Uint8Array {
  const count = entry.shape.reduce((a, b) => a * b, 1);
  const fill = entry.fill;
  let data: Float32Array | BigInt64Array;
  if ('int' in fill) {
    data = new BigInt64Array(count);
    if (fill.int === 'arange') for (let i = 0; i < count; i++) data[i] = BigInt(i);
  } else if ('value' in fill) {
    data = new Float32Array(count).fill(fill.value);
  } else if (fill.transpose) {
    const [rows, cols] = entry.shape as [number, number];
    const source = uniform(fill, seed, count, 0); // laid out as the (cols, rows) original
    data = new Float32Array(count);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[r * cols + c] = source[c * rows + r]!;
  } else {
    data = uniform(fill, seed, count, fill.offset ?? 0);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** safetensors as make_fixtures.py writes it: compact JSON header in entry order, space-padded to 8 bytes. */
export function safetensorsBytes(tensors: readonly { name: string; dtype: string; shape: readonly number[]; bytes: Uint8Array }[], metadata?: Record<string, string> | null): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let at = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.bytes.length] };
    at += t.bytes.length;
  }
  let head = Buffer.from(JSON.stringify(header), 'utf8');
  head = Buffer.concat([head, Buffer.alloc(-head.length & 7, ' ')]);
  const out = new Uint8Array(8 + head.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let p = 8 + head.length;
  for (const t of tensors) {
    out.set(t.bytes, p);
    p += t.bytes.length;
  }
  return out;
}

export function readManifest(fixtures: string): Manifest {
  return JSON.parse(readFileSync(join(fixtures, 'generated.json'), 'utf8')) as Manifest;
}

export function generateFile(file: GeneratedFile, seed: number): Uint8Array {
  return safetensorsBytes(
    file.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: materialize(t, seed) })),
    file.metadata,
  );
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/**
 * Writes every generated model of the fixture set at `fixtures` that is missing or stale (temporary name, then
 * rename). Throws when a generated file differs from the one the Python reference described: the two PRNGs, or
 * the two writers, have drifted apart. Returns the paths written.
 */
export function ensureGeneratedFixtures(fixtures: string): string[] {
  const manifest = readManifest(fixtures);
  const written: string[] = [];
  for (const file of manifest.files) {
    const path = join(fixtures, file.path);
    if (existsSync(path) && sha256(readFileSync(path)) === file.sha256) continue;
    const bytes = generateFile(file, manifest.seed);
    const got = sha256(bytes);
    if (got !== file.sha256) {
      throw new Error(
        `${file.path}: generated ${bytes.length} bytes with sha256 ${got}, but make_fixtures.py wrote ${file.bytes} bytes with sha256 ${file.sha256}. ` +
          'test/helpers/fixture-weights.ts and test/reference/make_fixtures.py no longer agree.',
      );
    }
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
    written.push(path);
  }
  return written;
}
