import type { GraphBuilder } from './builder.js';
import { int8WeightLimit } from './cpu.js';

/**
 * int8 pieces of the towers, in the QDQ form onnxruntime's CPU provider turns into its integer kernels:
 * DequantizeLinear → Conv → [Relu →] QuantizeLinear becomes QLinearConv (MLAS's symmetric-weight "ConvSym"
 * kernels, AVX-512 VNNI where the CPU has it), DQ → Add → Q becomes QLinearAdd; the NHWC transformer then keeps
 * the whole trunk channels-last in uint8 (measured on RN50: 62 QLinearConv, 16 QLinearAdd, one QuantizeLinear
 * at the input, no float operator left in the trunk).
 *
 * Weights are quantised here, in TypeScript, when the graph is built: int8, symmetric (zero point 0, the
 * range ±127, or ±63 where the CPU lacks VNNI: see WEIGHT_LIMIT), one scale per output channel. Activations
 * are uint8 with one scale per tensor, taken from a calibration run (see model/calibration.ts); after a ReLU
 * the zero point is 0.
 */

/** Per-tensor affine uint8 quantisation of an activation: real = scale · (q − zeroPoint). */
export interface ActivationQuant {
  readonly scale: number;
  readonly zeroPoint: number;
}

/** The observed range of an activation (after outlier clipping), from calibration. */
export interface ActivationRange {
  readonly min: number;
  readonly max: number;
}

/** The uint8 parameters covering `range` (always including 0, so that zero padding is exact). */
export function activationQuant({ min, max }: ActivationRange): ActivationQuant {
  const lo = Math.min(0, min);
  const hi = Math.max(0, max);
  if (!(hi > lo)) return { scale: 1, zeroPoint: 0 };
  const scale = Math.fround((hi - lo) / 255);
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zeroPoint };
}

export interface QuantizedWeights {
  readonly data: Int8Array;
  /** One scale per output channel (axis 0). */
  readonly scales: Float32Array;
}

/**
 * The largest int8 weight magnitude: 127, or 63 (7 bits) on x86-64 CPUs without VNNI. There MLAS multiplies
 * uint8 activations by int8 weights with vpmaddubsw, which adds pairs of products in saturating int16
 * (255·127·2 > 32767); seven-bit weights keep every pair in range, as onnxruntime's own quantiser does with
 * `reduce_range`. With AVX-512 VNNI or AVX-VNNI (vpdpbusd, int32 sums) and on ARM, the full range is used.
 */
export const WEIGHT_LIMIT: number = int8WeightLimit();

/** Symmetric per-output-channel int8 quantisation of a (out, …) weight tensor. */
export function quantizeRows(w: Float32Array, rows: number, limit = WEIGHT_LIMIT): QuantizedWeights {
  const per = w.length / rows;
  const data = new Int8Array(w.length);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const start = r * per;
    const end = start + per;
    let m = 0;
    for (let i = start; i < end; i++) {
      const v = w[i]!;
      if (v > m) m = v;
      else if (-v > m) m = -v;
    }
    const s = m > 0 ? Math.fround(m / limit) : 1;
    scales[r] = s;
    // |w / s| ≤ limit (to rounding) by the choice of s, so no clamping is needed; Int8Array stores the integers.
    const inv = 1 / s;
    for (let i = start; i < end; i++) data[i] = Math.round(w[i]! * inv);
  }
  return { data, scales };
}

/** Symmetric per-column int8 quantisation of an (in, out) matrix, for MatMul's right-hand side. */
export function quantizeColumns(w: Float32Array, rows: number, cols: number, limit = WEIGHT_LIMIT): QuantizedWeights {
  const data = new Int8Array(w.length);
  const scales = new Float32Array(cols);
  for (let c = 0; c < cols; c++) {
    let m = 0;
    for (let r = 0; r < rows; r++) m = Math.max(m, Math.abs(w[r * cols + c]!));
    scales[c] = m > 0 ? Math.fround(m / limit) : 1;
  }
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      data[i] = Math.max(-limit, Math.min(limit, Math.round(w[i]! / scales[c]!)));
    }
  }
  return { data, scales };
}

/** QuantizeLinear then DequantizeLinear: the value as the integer kernels will see it. */
export function fakeQuant(b: GraphBuilder, x: string, q: ActivationQuant): string {
  const scale = b.floats([q.scale], []);
  const zero = b.initializer(Uint8Array.of(q.zeroPoint), []);
  return b.node('DequantizeLinear', [b.node('QuantizeLinear', [x, scale, zero]), scale, zero]);
}

/**
 * A convolution on a quantised input (the output of `fakeQuant` with parameters `input`): int8 per-channel
 * weights and an int32 bias at scale input·weight, both through DequantizeLinear, as QLinearConv wants them.
 */
export function quantizedConv(
  b: GraphBuilder,
  x: string,
  input: ActivationQuant,
  weights: Float32Array,
  bias: Float32Array,
  dims: readonly [number, number, number, number],
  attrs: Record<string, number | readonly number[]>,
  name: string,
): string {
  const cout = dims[0];
  const { data, scales } = quantizeRows(weights, cout);
  const wq = b.initializer(data, dims, `${name}.int8`);
  const ws = b.initializer(scales, [cout], `${name}.scale`);
  const wz = b.initializer(new Int8Array(cout), [cout]);
  const w = b.node('DequantizeLinear', [wq, ws, wz], { axis: 0 });
  const biasScales = scales.map((s) => Math.fround(s * input.scale));
  const bq = Int32Array.from(bias, (v, i) => Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, Math.round(v / biasScales[i]!))));
  const bDq = b.node('DequantizeLinear', [b.initializer(bq, [cout], `${name}.bias.int32`), b.initializer(biasScales, [cout]), b.initializer(new Int32Array(cout), [cout])], { axis: 0 });
  return b.node('Conv', [x, w, bDq], attrs);
}

/**
 * x @ W + bias with W (in, out) in int8 per column and the activation quantised on the fly, per tensor, by
 * onnxruntime's DynamicQuantizeMatMul (com.microsoft): no calibration, MLAS's u8·s8 GEMM.
 */
export function dynamicQuantizedMatMul(b: GraphBuilder, x: string, w: Float32Array, rows: number, cols: number, bias: Float32Array | undefined, name: string): string {
  const { data, scales } = quantizeColumns(w, rows, cols);
  const inputs = [x, b.initializer(data, [rows, cols], `${name}.int8`), b.initializer(scales, [cols], `${name}.scale`), b.initializer(new Int8Array(cols), [cols])];
  if (bias) inputs.push(b.initializer(bias, [cols], `${name}.bias`));
  return b.node('DynamicQuantizeMatMul', inputs, {}, 'com.microsoft');
}
