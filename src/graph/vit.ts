import type { VitVision } from '../weights/architecture.js';
import type { StateDict } from '../weights/state-dict.js';
import { GraphBuilder } from './builder.js';
import { layerNorm, project, residualBlock, withPositions } from './layers.js';

export interface VitGraphOptions {
  /** Whether the graph takes a `positions` (tokens, width) input added after the class token is prepended. */
  readonly positions: boolean;
  /** int8 products in the residual blocks (weights int8 per column, activations quantised on the fly). */
  readonly int8?: boolean;
}

/**
 * The ViT image tower as an ONNX graph: input `pixels` (N, 3, H, W), output `features` (N, D).
 * Patches come from a stride-`patch` convolution without bias (floor(H/p)·floor(W/p) of them); the class
 * embedding is prepended, then ln_pre, the residual blocks, ln_post on token 0 and `visual.proj`.
 */
export function buildVit(sd: StateDict, arch: VitVision, embedDim: number, options: VitGraphOptions): GraphBuilder {
  const { width, patch } = arch;
  const b = new GraphBuilder(`clip-vit${options.positions ? '-positions' : ''}${options.int8 ? '-int8' : ''}-${arch.activation}`);
  const eps = arch.layerNormEps;
  const pixels = b.input('pixels', 'float32', ['batch', 3, 'height', 'width']);
  const kernel = b.initializer(sd.float32('visual.conv1.weight'), [width, 3, patch, patch], 'visual.conv1.weight');
  const patches = b.node('Conv', [pixels, kernel], { kernel_shape: [patch, patch], strides: [patch, patch] });
  const tokens = b.node('Transpose', [b.node('Reshape', [patches, b.ints([0, 0, -1])])], { perm: [0, 2, 1] }); // (N, g, W)

  // The class embedding broadcast to (N, 1, W): Expand needs the batch size, read from the tokens' shape.
  const batch = b.node('Slice', [b.node('Shape', [tokens]), b.ints([0]), b.ints([1])]);
  const classShape = b.node('Concat', [batch, b.ints([1, width])], { axis: 0 });
  const classToken = b.initializer(sd.float32('visual.class_embedding'), [1, 1, width], 'visual.class_embedding');
  let x = b.node('Concat', [b.node('Expand', [classToken, classShape]), tokens], { axis: 1 });

  x = layerNorm(b, withPositions(b, x, width, options.positions), sd, 'visual.ln_pre', eps);
  const block = { heads: arch.heads, width, activation: arch.activation, layerNormEps: eps };
  for (let i = 0; i < arch.layers; i++) x = residualBlock(b, x, sd, `visual.transformer.resblocks.${i}`, block, options.int8 === true);
  const cls = b.node('Gather', [x, b.ints([0], [])], { axis: 1 }); // (N, W)
  const features = project(b, layerNorm(b, cls, sd, 'visual.ln_post', eps), sd, 'visual.proj');
  b.output(b.named(features, 'features'), 'float32', ['batch', embedDim]);
  return b;
}
