import type { TextTower } from '../weights/architecture.js';
import type { StateDict } from '../weights/state-dict.js';
import { GraphBuilder } from './builder.js';
import { layerNorm, project, residualBlock } from './layers.js';

/** The causal mask: −inf above the diagonal, so each token attends to itself and those before it. */
function causalMask(length: number): Float32Array {
  const mask = new Float32Array(length * length);
  for (let r = 0; r < length; r++) mask.fill(-Infinity, r * length + r + 1, (r + 1) * length);
  return mask;
}

/**
 * The text tower as an ONNX graph. Inputs: `embeddings` (N, L, W) token embeddings (looked up outside the
 * graph, so that learned CLIP-IQA+ contexts enter the same way) and `eot` (N) int64 positions to pool.
 * Output: `features` (N, D).
 *
 * L may be anything up to the context length: the positional table and the causal mask are cut to L in the
 * graph. Under the causal mask the row at the EOT position depends on no later row, so a caller may drop
 * everything after the last EOT and get the same features for a fraction of the work.
 * ln_final is applied to the pooled rows only; it acts on each row alone, so this equals the reference's
 * normalise-then-gather.
 */
export function buildText(sd: StateDict, text: TextTower, embedDim: number): GraphBuilder {
  const { width, contextLength } = text;
  const b = new GraphBuilder(`clip-text-${text.activation}`);
  const embeddings = b.input('embeddings', 'float32', ['batch', 'tokens', width]);
  const eot = b.input('eot', 'int64', ['batch']);
  const length = b.node('Slice', [b.node('Shape', [embeddings]), b.ints([1]), b.ints([2])]); // [L]
  const zero = b.ints([0]);
  const table = b.initializer(sd.float32('positional_embedding'), [contextLength, width], 'positional_embedding');
  const positions = b.node('Slice', [table, zero, length, zero]); // rows 0..L
  const fullMask = b.initializer(causalMask(contextLength), [contextLength, contextLength], 'causal_mask');
  const mask = b.node('Slice', [fullMask, b.ints([0, 0]), b.node('Concat', [length, length], { axis: 0 }), b.ints([0, 1])]);
  let x = b.node('Add', [embeddings, positions]);
  const block = { heads: text.heads, width, mask, activation: text.activation, layerNormEps: text.layerNormEps };
  for (let i = 0; i < text.layers; i++) x = residualBlock(b, x, sd, `transformer.resblocks.${i}`, block);
  const index = b.node('Unsqueeze', [eot, b.ints([1])]); // (N, 1)
  const pooled = b.node('GatherND', [x, index], { batch_dims: 1 }); // (N, W)
  const features = project(b, layerNorm(b, pooled, sd, 'ln_final', text.layerNormEps), sd, 'text_projection');
  b.output(b.named(features, 'features'), 'float32', ['batch', embedDim]);
  return b;
}
