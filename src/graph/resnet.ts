import type { ResNetVision } from '../weights/architecture.js';
import type { StateDict } from '../weights/state-dict.js';
import { GraphBuilder } from './builder.js';
import { linear } from './layers.js';
import { type ActivationQuant, type ActivationRange, WEIGHT_LIMIT, activationQuant, fakeQuant, quantizedConv } from './quantize.js';

/** BatchNorm epsilon of OpenAI's ResNets. */
const BN_EPS = 1e-5;

export interface ResNetGraphOptions {
  /**
   * `pooled`: the attention-pool image embedding (N, D).
   * `dense`: every final-map location through the pool's v_proj and c_proj alone (N, h, w, D), as MaskCLIP does.
   * `taps`: the trunk alone, every activation the int8 trunk quantises as an output `tap:<key>` (for calibration).
   * onnxruntime runs every node of a graph whatever outputs are fetched, so these are separate graphs.
   */
  readonly output: 'pooled' | 'dense' | 'taps';
  /** Whether the pooled graph takes a `positions` (tokens, width) input to add before attention. */
  readonly positions: boolean;
  /**
   * An int8 trunk: the range of every tapped activation (from calibration, keyed as the `taps` graph names
   * them). Convolutions, residual additions and average pools then run on uint8 activations and int8 weights;
   * the attention pool or dense head stays float32.
   */
  readonly ranges?: ReadonlyMap<string, ActivationRange>;
}

/** The tap keys of a `taps` graph are its output names minus this prefix. */
export const TAP_PREFIX = 'tap:';

/**
 * Eval-mode BatchNorm folded into the preceding convolution: w' = w·γ/√(σ²+ε), b' = β − μ·γ/√(σ²+ε).
 * The scale is formed in float64 and each product rounded once to float32, so the folded weights are as close
 * to the two-step arithmetic as float32 allows.
 */
function foldBn(sd: StateDict, conv: string, bn: string): { weights: Float32Array; bias: Float32Array; dims: [number, number, number, number] } {
  const dims = sd.shape(`${conv}.weight`) as [number, number, number, number];
  const [cout, cin, kh, kw] = dims;
  const w = sd.float32(`${conv}.weight`);
  const gamma = sd.float32(`${bn}.weight`);
  const beta = sd.float32(`${bn}.bias`);
  const mean = sd.float32(`${bn}.running_mean`);
  const variance = sd.float32(`${bn}.running_var`);
  const weights = new Float32Array(w.length);
  const bias = new Float32Array(cout);
  const per = cin * kh * kw;
  for (let o = 0; o < cout; o++) {
    const scale = gamma[o]! / Math.sqrt(variance[o]! + BN_EPS);
    for (let i = o * per; i < (o + 1) * per; i++) weights[i] = w[i]! * scale;
    bias[o] = beta[o]! - mean[o]! * scale;
  }
  return { weights, bias, dims };
}

/**
 * Builds the stem and the four stages, in float32, or with every activation exposed (`taps`), or in int8
 * (`ranges`). Each quantisable activation passes through `tap(x, key)`, which is the identity in float32,
 * adds a graph output for calibration, or quantises and dequantises for the int8 kernels.
 */
class Trunk {
  readonly #b: GraphBuilder;
  readonly #sd: StateDict;
  readonly #taps: boolean;
  readonly #ranges: ReadonlyMap<string, ActivationRange> | undefined;
  /** The quantisation of each dequantised value, so that its consumers can run in int8. */
  readonly #quant = new Map<string, ActivationQuant>();

  constructor(b: GraphBuilder, sd: StateDict, taps: boolean, ranges: ReadonlyMap<string, ActivationRange> | undefined) {
    this.#b = b;
    this.#sd = sd;
    this.#taps = taps;
    this.#ranges = ranges;
  }

  tap(x: string, key: string): string {
    if (this.#taps) {
      this.#b.output(this.#b.named(x, `${TAP_PREFIX}${key}`), 'float32', ['batch', `${key}.c`, `${key}.h`, `${key}.w`]);
      return `${TAP_PREFIX}${key}`;
    }
    if (!this.#ranges) return x;
    const range = this.#ranges.get(key);
    if (!range) throw new Error(`int8 ResNet: no calibrated range for "${key}"`);
    return this.#fakeQuant(x, activationQuant(range));
  }

  #fakeQuant(x: string, q: ActivationQuant): string {
    const y = fakeQuant(this.#b, x, q);
    this.#quant.set(y, q);
    return y;
  }

  /** A convolution with BatchNorm folded in; int8 when its input is quantised. */
  convBn(x: string, conv: string, bn: string, stride = 1, pad = 0): string {
    const b = this.#b;
    const { weights, bias, dims } = foldBn(this.#sd, conv, bn);
    const attrs = { kernel_shape: [dims[2], dims[3]], strides: [stride, stride], pads: [pad, pad, pad, pad] };
    const input = this.#quant.get(x);
    if (input) return quantizedConv(b, x, input, weights, bias, dims, attrs, `${conv}+${bn}`);
    const wName = b.initializer(weights, dims, `${conv}.weight+${bn}`);
    const bName = b.initializer(bias, [dims[0]], `${conv}.bias+${bn}`);
    return b.node('Conv', [x, wName, bName], attrs);
  }

  relu(x: string): string {
    return this.#b.node('Relu', [x]);
  }

  /**
   * PyTorch's avg_pool2d(x, k): no padding, floor of odd sizes. A quantised input keeps its scale, and the pool
   * runs as a depthwise k×k convolution of weight 1/k² (int8 L at scale 1/(L·k²), L = WEIGHT_LIMIT), for which
   * MLAS has an NHWC uint8 kernel: onnxruntime's uint8 AveragePool is a generic loop that took 13% of the int8
   * RN50 at 1024×768 (the depthwise form: 249 → 225 ms per image).
   */
  avgPool(x: string, k: number, channels: number): string {
    const b = this.#b;
    const attrs = { kernel_shape: [k, k], strides: [k, k] };
    const q = this.#quant.get(x);
    if (!q) return b.node('AveragePool', [x], { ...attrs, ceil_mode: 0 });
    const wq = b.initializer(new Int8Array(channels * k * k).fill(WEIGHT_LIMIT), [channels, 1, k, k]);
    const ws = b.initializer(new Float32Array(channels).fill(Math.fround(1 / (WEIGHT_LIMIT * k * k))), [channels]);
    const w = b.node('DequantizeLinear', [wq, ws, b.initializer(new Int8Array(channels), [channels])], { axis: 0 });
    return this.#fakeQuant(b.node('Conv', [x, w], { ...attrs, group: channels }), q);
  }

  add(x: string, y: string): string {
    return this.#b.node('Add', [x, y]);
  }
}

function bottleneck(t: Trunk, x: string, sd: StateDict, p: string, stride: number): string {
  let out = t.tap(t.relu(t.convBn(x, `${p}.conv1`, `${p}.bn1`)), `${p}.conv1`);
  out = t.tap(t.relu(t.convBn(out, `${p}.conv2`, `${p}.bn2`, 1, 1)), `${p}.conv2`);
  // The modified ResNet downsamples by average pooling, never by strided convolution.
  if (stride > 1) out = t.avgPool(out, stride, sd.shape(`${p}.conv2.weight`)[0]!);
  out = t.tap(t.convBn(out, `${p}.conv3`, `${p}.bn3`), `${p}.conv3`);
  let identity = x;
  if (sd.has(`${p}.downsample.0.weight`)) {
    if (stride > 1) identity = t.avgPool(identity, stride, sd.shape(`${p}.downsample.0.weight`)[1]!);
    identity = t.tap(t.convBn(identity, `${p}.downsample.0`, `${p}.downsample.1`), `${p}.downsample`);
  }
  return t.tap(t.relu(t.add(out, identity)), `${p}.out`);
}

/** Stem and four stages: pixels (N, 3, H, W) → final map (N, 32·width, h, w). */
function trunk(b: GraphBuilder, pixels: string, sd: StateDict, arch: ResNetVision, options: ResNetGraphOptions): string {
  const t = new Trunk(b, sd, options.output === 'taps', options.ranges);
  let x = t.tap(pixels, 'pixels');
  x = t.tap(t.relu(t.convBn(x, 'visual.conv1', 'visual.bn1', 2, 1)), 'stem.1');
  x = t.tap(t.relu(t.convBn(x, 'visual.conv2', 'visual.bn2', 1, 1)), 'stem.2');
  x = t.tap(t.relu(t.convBn(x, 'visual.conv3', 'visual.bn3', 1, 1)), 'stem.3');
  x = t.avgPool(x, 2, sd.shape('visual.conv3.weight')[0]!);
  arch.layers.forEach((count, s) => {
    for (let i = 0; i < count; i++) x = bottleneck(t, x, sd, `visual.layer${s + 1}.${i}`, s > 0 && i === 0 ? 2 : 1);
  });
  return x;
}

/** A PyTorch (out, in) weight split into per-head blocks: (heads, headSize, in), or transposed (heads, in, headSize). */
function headBlocks(w: Float32Array, heads: number, headSize: number, width: number, transpose: boolean): Float32Array {
  if (!transpose) return w; // (heads·headSize, in) row-major is already (heads, headSize, in)
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < headSize; j++) {
      const row = (h * headSize + j) * width;
      for (let c = 0; c < width; c++) out[(h * width + c) * headSize + j] = w[row + c]!;
    }
  }
  return out;
}

/**
 * The attention pool: the map's h·w tokens with their mean prepended as token 0, plus the positional
 * table when given, then one attention step in which only token 0 queries; its c_proj output is the embedding.
 *
 * Only one query attends, so the key and value projections of every token are never formed. Per head h with
 * query q_h (already divided by √d): q_h·(W_k,h x_t + b_k,h) = (W_k,hᵀ q_h)·x_t + const, and the constant
 * q_h·b_k,h is the same for every token, which softmax ignores; and Σ_t a_t (W_v,h x_t + b_v,h) =
 * W_v,h (Σ_t a_t x_t) + b_v,h since the weights a_t sum to 1. So the scores are one (heads, C)·(C, L) product and
 * the values one (heads, L)·(L, C) product, instead of two (L, C)·(C, C) projections: at 1024×768 (769 tokens,
 * C = 2048) that is 0.1 instead of 6.5 GMAC, 7% of RN50's work. Equal to the reference in exact arithmetic.
 */
function attentionPool(b: GraphBuilder, fmap: string, sd: StateDict, arch: ResNetVision, positions: boolean): string {
  const p = 'visual.attnpool';
  const width = arch.poolWidth;
  const heads = arch.heads;
  const headSize = width / heads;
  const columns = b.node('Reshape', [fmap, b.ints([0, 0, -1])]); // (N, C, hw): the tokens as columns
  const mean = b.node('ReduceMean', [columns], { axes: [2], keepdims: 1 }); // (N, C, 1)
  let xt = b.node('Concat', [mean, columns], { axis: 2 }); // (N, C, L) = Xᵀ
  if (positions) {
    const table = b.input('positions', 'float32', ['tokens', width]); // (L, C)
    xt = b.node('Add', [xt, b.node('Transpose', [table], { perm: [1, 0] })]);
  }
  const first = b.node('Transpose', [b.node('Slice', [xt, b.ints([0]), b.ints([1]), b.ints([2])])], { perm: [0, 2, 1] }); // (N, 1, C)
  const q = b.node('Div', [linear(b, first, sd, `${p}.q_proj`), b.floats([Math.sqrt(headSize)], [])]);
  const qh = b.node('Reshape', [q, b.ints([0, heads, 1, headSize])]); // (N, H, 1, d)
  const wk = b.initializer(headBlocks(sd.float32(`${p}.k_proj.weight`), heads, headSize, width, false), [heads, headSize, width], `${p}.k_proj.weight`);
  const u = b.node('MatMul', [qh, wk]); // (N, H, 1, C): W_k,hᵀ q_h
  const x4 = b.node('Unsqueeze', [xt, b.ints([1])]); // (N, 1, C, L)
  const attn = b.node('Softmax', [b.node('MatMul', [u, x4])], { axis: -1 }); // (N, H, 1, L)
  const mixed = b.node('MatMul', [attn, b.node('Transpose', [x4], { perm: [0, 1, 3, 2] })]); // (N, H, 1, C)
  const wv = b.initializer(headBlocks(sd.float32(`${p}.v_proj.weight`), heads, headSize, width, true), [heads, width, headSize], `${p}.v_proj.weight`);
  let v = b.node('MatMul', [mixed, wv]); // (N, H, 1, d)
  if (sd.has(`${p}.v_proj.bias`)) v = b.node('Add', [v, b.initializer(sd.float32(`${p}.v_proj.bias`), [heads, 1, headSize], `${p}.v_proj.bias`)]);
  const merged = b.node('Reshape', [v, b.ints([0, width])]); // (N, C)
  return linear(b, merged, sd, `${p}.c_proj`); // (N, D)
}

/** MaskCLIP-style per-location features: v_proj then c_proj on every map location, no attention mixing. */
function denseHead(b: GraphBuilder, fmap: string, sd: StateDict): string {
  const p = 'visual.attnpool';
  const locations = b.node('Transpose', [fmap], { perm: [0, 2, 3, 1] }); // (N, h, w, C)
  return linear(b, linear(b, locations, sd, `${p}.v_proj`), sd, `${p}.c_proj`);
}

/**
 * The modified-ResNet image tower as an ONNX graph: input `pixels` (N, 3, H, W), output `features`, `dense`, or
 * the calibration taps.
 */
export function buildResNet(sd: StateDict, arch: ResNetVision, embedDim: number, options: ResNetGraphOptions): GraphBuilder {
  const int8 = options.ranges ? '-int8' : '';
  const b = new GraphBuilder(`clip-resnet-${options.output}${options.positions ? '-positions' : ''}${int8}`);
  const pixels = b.input('pixels', 'float32', ['batch', 3, 'height', 'width']);
  const fmap = trunk(b, pixels, sd, arch, options);
  if (options.output === 'taps') return b;
  if (options.output === 'dense') {
    b.output(b.named(denseHead(b, fmap, sd), 'dense'), 'float32', ['batch', 'grid_height', 'grid_width', embedDim]);
  } else {
    b.output(b.named(attentionPool(b, fmap, sd, arch, options.positions), 'features'), 'float32', ['batch', embedDim]);
  }
  return b;
}
