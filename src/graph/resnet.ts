import type { ResNetVision } from '../weights/architecture.js';
import type { StateDict } from '../weights/state-dict.js';
import { GraphBuilder } from './builder.js';
import { attention, linear, withPositions } from './layers.js';

/** BatchNorm epsilon of OpenAI's ResNets. */
const BN_EPS = 1e-5;

export interface ResNetGraphOptions {
  /**
   * `pooled`: the attention-pool image embedding (N, D).
   * `dense`: every final-map location through the pool's v_proj and c_proj alone (N, h, w, D), as MaskCLIP does.
   * onnxruntime runs every node of a graph whatever outputs are fetched, so the two are separate graphs.
   */
  readonly output: 'pooled' | 'dense';
  /** Whether the pooled graph takes a `positions` (tokens, width) input to add before attention. */
  readonly positions: boolean;
}

/**
 * A convolution followed by eval-mode BatchNorm, folded into one convolution:
 * w' = w·γ/√(σ²+ε), b' = β − μ·γ/√(σ²+ε). The scale is formed in float64 and each product rounded
 * once to float32, so the folded weights are as close to the two-step arithmetic as float32 allows.
 */
function convBn(b: GraphBuilder, x: string, sd: StateDict, conv: string, bn: string, stride = 1, pad = 0): string {
  const shape = sd.shape(`${conv}.weight`);
  const [cout, cin, kh, kw] = shape as [number, number, number, number];
  const w = sd.float32(`${conv}.weight`);
  const gamma = sd.float32(`${bn}.weight`);
  const beta = sd.float32(`${bn}.bias`);
  const mean = sd.float32(`${bn}.running_mean`);
  const variance = sd.float32(`${bn}.running_var`);
  const folded = new Float32Array(w.length);
  const bias = new Float32Array(cout);
  const per = cin * kh * kw;
  for (let o = 0; o < cout; o++) {
    const scale = gamma[o]! / Math.sqrt(variance[o]! + BN_EPS);
    for (let i = o * per; i < (o + 1) * per; i++) folded[i] = w[i]! * scale;
    bias[o] = beta[o]! - mean[o]! * scale;
  }
  const wName = b.initializer(folded, [cout, cin, kh, kw], `${conv}.weight+${bn}`);
  const bName = b.initializer(bias, [cout], `${conv}.bias+${bn}`);
  return b.node('Conv', [x, wName, bName], { kernel_shape: [kh, kw], strides: [stride, stride], pads: [pad, pad, pad, pad] });
}

const relu = (b: GraphBuilder, x: string): string => b.node('Relu', [x]);

/** PyTorch's avg_pool2d(x, k): no padding, floor of odd sizes. */
const avgPool = (b: GraphBuilder, x: string, k: number): string =>
  b.node('AveragePool', [x], { kernel_shape: [k, k], strides: [k, k], ceil_mode: 0 });

function bottleneck(b: GraphBuilder, x: string, sd: StateDict, p: string, stride: number): string {
  let out = relu(b, convBn(b, x, sd, `${p}.conv1`, `${p}.bn1`));
  out = relu(b, convBn(b, out, sd, `${p}.conv2`, `${p}.bn2`, 1, 1));
  // The modified ResNet downsamples by average pooling, never by strided convolution.
  if (stride > 1) out = avgPool(b, out, stride);
  out = convBn(b, out, sd, `${p}.conv3`, `${p}.bn3`);
  let identity = x;
  if (sd.has(`${p}.downsample.0.weight`)) {
    if (stride > 1) identity = avgPool(b, identity, stride);
    identity = convBn(b, identity, sd, `${p}.downsample.0`, `${p}.downsample.1`);
  }
  return relu(b, b.node('Add', [out, identity]));
}

/** Stem and four stages: pixels (N, 3, H, W) → final map (N, 32·width, h, w). */
function trunk(b: GraphBuilder, pixels: string, sd: StateDict, arch: ResNetVision): string {
  let x = relu(b, convBn(b, pixels, sd, 'visual.conv1', 'visual.bn1', 2, 1));
  x = relu(b, convBn(b, x, sd, 'visual.conv2', 'visual.bn2', 1, 1));
  x = relu(b, convBn(b, x, sd, 'visual.conv3', 'visual.bn3', 1, 1));
  x = avgPool(b, x, 2);
  arch.layers.forEach((count, s) => {
    for (let i = 0; i < count; i++) x = bottleneck(b, x, sd, `visual.layer${s + 1}.${i}`, s > 0 && i === 0 ? 2 : 1);
  });
  return x;
}

/**
 * The attention pool: the map's h·w tokens with their mean prepended as token 0, plus the positional
 * table when given, then one attention step in which only token 0 queries; its c_proj output is the embedding.
 */
function attentionPool(b: GraphBuilder, fmap: string, sd: StateDict, arch: ResNetVision, positions: boolean): string {
  const p = 'visual.attnpool';
  const tokens = b.node('Transpose', [b.node('Reshape', [fmap, b.ints([0, 0, -1])])], { perm: [0, 2, 1] }); // (N, hw, C)
  const mean = b.node('ReduceMean', [tokens], { axes: [1], keepdims: 1 });
  const x = withPositions(b, b.node('Concat', [mean, tokens], { axis: 1 }), arch.poolWidth, positions);
  const first = b.node('Slice', [x, b.ints([0]), b.ints([1]), b.ints([1])]); // token 0 only: (N, 1, C)
  const q = linear(b, first, sd, `${p}.q_proj`);
  const k = linear(b, x, sd, `${p}.k_proj`);
  const v = linear(b, x, sd, `${p}.v_proj`);
  const pooled = linear(b, attention(b, q, k, v, { heads: arch.heads, width: arch.poolWidth }), sd, `${p}.c_proj`);
  return b.node('Squeeze', [pooled, b.ints([1])]);
}

/** MaskCLIP-style per-location features: v_proj then c_proj on every map location, no attention mixing. */
function denseHead(b: GraphBuilder, fmap: string, sd: StateDict): string {
  const p = 'visual.attnpool';
  const locations = b.node('Transpose', [fmap], { perm: [0, 2, 3, 1] }); // (N, h, w, C)
  return linear(b, linear(b, locations, sd, `${p}.v_proj`), sd, `${p}.c_proj`);
}

/** The modified-ResNet image tower as an ONNX graph: input `pixels` (N, 3, H, W), output `features` or `dense`. */
export function buildResNet(sd: StateDict, arch: ResNetVision, embedDim: number, options: ResNetGraphOptions): GraphBuilder {
  const b = new GraphBuilder(`clip-resnet-${options.output}${options.positions ? '-positions' : ''}`);
  const pixels = b.input('pixels', 'float32', ['batch', 3, 'height', 'width']);
  const fmap = trunk(b, pixels, sd, arch);
  if (options.output === 'dense') {
    b.output(b.named(denseHead(b, fmap, sd), 'dense'), 'float32', ['batch', 'grid_height', 'grid_width', embedDim]);
  } else {
    b.output(b.named(attentionPool(b, fmap, sd, arch, options.positions), 'features'), 'float32', ['batch', embedDim]);
  }
  return b;
}
