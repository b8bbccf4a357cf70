import { ClipIqaError } from './errors.js';

/** Element types that checkpoints carry. Reduced-precision floats keep their raw bits in a Uint16Array. */
export type DType =
  | 'float64'
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint8'
  | 'bool';

export type TensorData =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

/** A dense, row-major (C-contiguous) tensor. */
export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

export const BYTES_PER_ELEMENT: Record<DType, number> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

interface TensorArrayConstructor {
  new (length: number): TensorData;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TensorData;
}

const ARRAY_TYPES: Record<DType, TensorArrayConstructor> = {
  float64: Float64Array,
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  int16: Int16Array,
  int8: Int8Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

/** `count` zeroed elements of `dtype`. */
export function allocateTensorData(dtype: DType, count: number): TensorData {
  return new ARRAY_TYPES[dtype](count);
}

/**
 * A typed view of `count` elements of `dtype` starting at `byteOffset` of `bytes`.
 * Copies when the offset is not aligned for the element size, since typed arrays demand alignment.
 * Every checkpoint format we read is little-endian, as are the hosts Node runs on.
 */
export function typedView(dtype: DType, bytes: Uint8Array, byteOffset: number, count: number): TensorData {
  const size = BYTES_PER_ELEMENT[dtype];
  const start = bytes.byteOffset + byteOffset;
  let buffer = bytes.buffer;
  let offset = start;
  if (start % size !== 0) {
    const copy = new Uint8Array(count * size);
    copy.set(bytes.subarray(byteOffset, byteOffset + count * size));
    buffer = copy.buffer;
    offset = 0;
  }
  return new ARRAY_TYPES[dtype](buffer, offset, count);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bits to a float32 value, exactly (every half is representable in single precision). */
export function halfToFloat(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0) {
    if (mant === 0) {
      u32[0] = sign;
      return f32[0]!;
    }
    // Subnormal half: normalise into a float32 exponent.
    let e = -1;
    do {
      mant <<= 1;
      e++;
    } while ((mant & 0x400) === 0);
    u32[0] = sign | ((127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
    return f32[0]!;
  }
  if (exp === 0x1f) {
    u32[0] = sign | 0x7f800000 | (mant << 13);
    return f32[0]!;
  }
  u32[0] = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  return f32[0]!;
}

/** float32 value to IEEE binary16 bits, rounding to nearest even. */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}

let halves: Float32Array | undefined;

/** Every float16 value, indexed by its bits: widening a checkpoint becomes one lookup per weight. */
function halfTable(): Float32Array {
  if (!halves) {
    halves = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halves[h] = halfToFloat(h);
  }
  return halves;
}

/** The tensor's values widened (or narrowed) to float32; a float32 tensor is returned as it is. */
export function toFloat32(t: Tensor): Float32Array {
  const d = t.data;
  if (t.dtype === 'float32') return d as Float32Array;
  const out = new Float32Array(d.length);
  switch (t.dtype) {
    case 'float16': {
      const h = d as Uint16Array;
      const table = halfTable();
      for (let i = 0; i < h.length; i++) out[i] = table[h[i]!]!;
      return out;
    }
    case 'bfloat16': {
      const b = d as Uint16Array;
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < b.length; i++) bits[i] = b[i]! << 16;
      return out;
    }
    case 'int64': {
      const b = d as BigInt64Array;
      for (let i = 0; i < b.length; i++) out[i] = Number(b[i]!);
      return out;
    }
    default: {
      const n = d as Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array;
      for (let i = 0; i < n.length; i++) out[i] = n[i]!;
      return out;
    }
  }
}

export function float32Tensor(shape: readonly number[], data: Float32Array): Tensor {
  if (numel(shape) !== data.length) {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `tensor shape [${shape.join(', ')}] needs ${numel(shape)} values, got ${data.length}`);
  }
  return { dtype: 'float32', shape: [...shape], data };
}

/** A scalar tensor's value as a number (for `logit_scale`, `input_resolution`, …). */
export function scalarValue(t: Tensor): number {
  if (t.data.length !== 1) throw new ClipIqaError('E_WEIGHTS_FORMAT', `expected a scalar, got shape [${t.shape.join(', ')}]`);
  const v = t.data[0]!;
  if (typeof v === 'bigint') return Number(v);
  return t.dtype === 'float16' ? halfToFloat(v) : t.dtype === 'bfloat16' ? toFloat32(t)[0]! : v;
}
