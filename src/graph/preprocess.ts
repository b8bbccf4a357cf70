import { type ElementType, GraphBuilder } from './builder.js';

/** CLIP's normalisation constants (RGB). */
export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

export type PixelDepth = 8 | 16;

/** Per-channel mean and standard deviation a model's pixels are normalised with (RGB). */
export interface Normalization {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/**
 * Pixel normalisation as an ONNX graph: `images` (N, H, W, 3) uint8 or uint16 RGB → `pixels` (N, 3, H, W)
 * float32 = (x / 255 − mean) / std (x / 65535 for 16 bits). The three steps are kept apart, as the
 * reference computes them, rather than fused into one multiply-add, so the result is the same to the bit.
 * The transpose runs on the integers, before widening, to move a quarter of the bytes.
 */
export function buildPreprocess(depth: PixelDepth, normalization?: Normalization): GraphBuilder {
  const type: ElementType = depth === 8 ? 'uint8' : 'uint16';
  const mean = normalization?.mean ?? CLIP_MEAN;
  const std = normalization?.std ?? CLIP_STD;
  const b = new GraphBuilder(`clip-preprocess-${type}${normalization ? `-${[...mean, ...std].join('-')}` : ''}`);
  const images = b.input('images', type, ['batch', 'height', 'width', 3]);
  const planar = b.node('Transpose', [images], { perm: [0, 3, 1, 2] });
  const wide = b.node('Cast', [planar], { to: 1 }); // 1 = FLOAT
  const unit = b.node('Div', [wide, b.floats([depth === 8 ? 255 : 65535], [])]);
  const centred = b.node('Sub', [unit, b.floats(mean, [1, 3, 1, 1])]);
  const pixels = b.node('Div', [centred, b.floats(std, [1, 3, 1, 1])]);
  b.output(b.named(pixels, 'pixels'), 'float32', ['batch', 3, 'height', 'width']);
  return b;
}
