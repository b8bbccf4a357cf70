import { type Activation, DEFAULT_LAYER_NORM_EPS } from '../weights/architecture.js';
import type { StateDict } from '../weights/state-dict.js';
import { type GraphBuilder, float } from './builder.js';
import { dynamicQuantizedMatMul } from './quantize.js';

/**
 * Graph pieces shared by the towers, each mirroring one step of the reference (`Clip` in ref/clipref.py):
 * linear layers, LayerNorm, multi-head attention and the pre-norm residual attention block.
 * Weights come from the state dict through `float32()`, so float16 checkpoints are widened exactly.
 */

/** QuickGELU: x·sigmoid(1.702·x), OpenAI CLIP's activation. */
const QUICK_GELU = 1.702;

/** A row-major (rows, cols) matrix transposed, for PyTorch (out, in) weights that MatMul wants as (in, out). */
export function transposed(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  }
  return out;
}

function shape2(sd: StateDict, name: string): [number, number] {
  const s = sd.shape(name);
  if (s.length !== 2) throw new Error(`${sd.source}: "${name}" should be a matrix, has shape [${s.join(', ')}]`);
  return [s[0]!, s[1]!];
}

/** x @ matrix (+ bias), where `matrix` is the state-dict tensor `name` already laid out (in, out), e.g. `visual.proj`. */
export function project(b: GraphBuilder, x: string, sd: StateDict, name: string): string {
  const dims = shape2(sd, name);
  return b.node('MatMul', [x, b.initializer(sd.float32(name), dims, name)]);
}

/**
 * x @ Wᵀ + bias for a PyTorch (out, in) weight; the bias is optional, as in F.linear. With `int8`, W is int8 per
 * output column and x is quantised on the fly (DynamicQuantizeMatMul).
 */
export function linearOf(b: GraphBuilder, x: string, sd: StateDict, weightName: string, biasName: string, int8 = false): string {
  const [out, inp] = shape2(sd, weightName);
  const w = transposed(sd.float32(weightName), out, inp);
  if (int8) return dynamicQuantizedMatMul(b, x, w, inp, out, sd.has(biasName) ? sd.float32(biasName) : undefined, weightName);
  const y = b.node('MatMul', [x, b.initializer(w, [inp, out], weightName)]);
  return sd.has(biasName) ? b.node('Add', [y, b.initializer(sd.float32(biasName), [out], biasName)]) : y;
}

/** F.linear with `prefix.weight` and `prefix.bias`. */
export const linear = (b: GraphBuilder, x: string, sd: StateDict, prefix: string, int8 = false): string =>
  linearOf(b, x, sd, `${prefix}.weight`, `${prefix}.bias`, int8);

/** LayerNorm over the last axis with `prefix.weight` and `prefix.bias`. */
export function layerNorm(b: GraphBuilder, x: string, sd: StateDict, prefix: string, eps = DEFAULT_LAYER_NORM_EPS): string {
  const width = sd.shape(`${prefix}.weight`)[0]!;
  const scale = b.initializer(sd.float32(`${prefix}.weight`), [width], `${prefix}.weight`);
  const bias = b.initializer(sd.float32(`${prefix}.bias`), [width], `${prefix}.bias`);
  return b.node('LayerNormalization', [x, scale, bias], { axis: -1, epsilon: float(eps) });
}

/**
 * The MLP's activation: QuickGELU, x·sigmoid(1.702·x), or exact GELU, x·½(1 + erf(x/√2)) as torch.nn.GELU()
 * computes it (opset 17 has no Gelu operator; onnxruntime fuses this pattern into its own).
 */
export function activate(b: GraphBuilder, x: string, activation: Activation): string {
  if (activation === 'quick_gelu') return b.node('Mul', [x, b.node('Sigmoid', [b.node('Mul', [x, b.floats([QUICK_GELU], [])])])]);
  const erf = b.node('Erf', [b.node('Div', [x, b.floats([Math.SQRT2], [])])]);
  return b.node('Mul', [b.node('Mul', [x, b.floats([0.5], [])]), b.node('Add', [erf, b.floats([1], [])])]);
}

export interface AttentionShape {
  readonly heads: number;
  readonly width: number;
  /** Additive (Lq, Lk) mask, e.g. the text tower's causal −inf triangle. */
  readonly mask?: string;
}

/**
 * Multi-head scaled dot-product attention: q (N, Lq, width), k and v (N, Lk, width) → (N, Lq, width).
 * q is divided by √(head size) before the product, as the reference does.
 */
export function attention(b: GraphBuilder, q: string, k: string, v: string, { heads, width, mask }: AttentionShape): string {
  const headSize = width / heads;
  const split = b.ints([0, 0, heads, headSize]); // 0 keeps N and L from the input
  const scaled = b.node('Div', [q, b.floats([Math.sqrt(headSize)], [])]);
  const qh = b.node('Transpose', [b.node('Reshape', [scaled, split])], { perm: [0, 2, 1, 3] }); // (N, H, Lq, hs)
  const kt = b.node('Transpose', [b.node('Reshape', [k, split])], { perm: [0, 2, 3, 1] }); // (N, H, hs, Lk)
  const vh = b.node('Transpose', [b.node('Reshape', [v, split])], { perm: [0, 2, 1, 3] }); // (N, H, Lk, hs)
  let scores = b.node('MatMul', [qh, kt]); // (N, H, Lq, Lk)
  if (mask) scores = b.node('Add', [scores, mask]);
  const mixed = b.node('MatMul', [b.node('Softmax', [scores], { axis: -1 }), vh]); // (N, H, Lq, hs)
  const merged = b.node('Transpose', [mixed], { perm: [0, 2, 1, 3] });
  return b.node('Reshape', [merged, b.ints([0, 0, width])]);
}

/** What a transformer tower's residual blocks share: attention heads and mask, the activation, LayerNorm epsilon. */
export interface BlockShape extends AttentionShape {
  readonly activation: Activation;
  readonly layerNormEps?: number;
}

/**
 * CLIP's residual attention block: x + out_proj(attn(ln_1(x))), then x + c_proj(act(c_fc(ln_2(x)))),
 * with the packed q|k|v input projection split after one product. With `int8` the four projections run as
 * int8 products (the attention itself, LayerNorm and the activation stay float32).
 */
export function residualBlock(b: GraphBuilder, x: string, sd: StateDict, prefix: string, shape: BlockShape, int8 = false): string {
  const eps = shape.layerNormEps;
  const h = layerNorm(b, x, sd, `${prefix}.ln_1`, eps);
  const qkv = linearOf(b, h, sd, `${prefix}.attn.in_proj_weight`, `${prefix}.attn.in_proj_bias`, int8);
  const [q, k, v] = b.nodeN('Split', [qkv], 3, { axis: -1 }) as [string, string, string];
  const attended = linear(b, attention(b, q, k, v, shape), sd, `${prefix}.attn.out_proj`, int8);
  const x1 = b.node('Add', [x, attended]);
  const fc = linear(b, layerNorm(b, x1, sd, `${prefix}.ln_2`, eps), sd, `${prefix}.mlp.c_fc`, int8);
  return b.node('Add', [x1, linear(b, activate(b, fc, shape.activation), sd, `${prefix}.mlp.c_proj`, int8)]);
}

/** Adds the positional table fed as graph input `positions` (L, width) when the tower is built with one. */
export function withPositions(b: GraphBuilder, x: string, width: number, positions: boolean): string {
  if (!positions) return x;
  return b.node('Add', [x, b.input('positions', 'float32', ['tokens', width])]);
}
