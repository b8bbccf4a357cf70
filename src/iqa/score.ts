import type { Features } from '../model/types.js';

/** Dot product of the `dim` values at `i` in `a` and at `j` in `b`, summed in float64. */
function dot(a: Float32Array, i: number, b: Float32Array, j: number, dim: number): number {
  let s = 0;
  for (let k = 0; k < dim; k++) s += a[i + k]! * b[j + k]!;
  return s;
}

/**
 * The CLIP-IQA score of one antonym pair: the softmax over the pair of `logitScale · cosine`, probability
 * of the positive prompt. Written as a logistic of the difference, which is the same value without overflow.
 */
export function pairProbability(cosPositive: number, cosNegative: number, logitScale: number): number {
  return 1 / (1 + Math.exp(logitScale * (cosNegative - cosPositive)));
}

/**
 * Scores of every image against every pair. `text` holds 2·P rows, positive and negative of each pair
 * in turn. Returns a row-major (images, pairs) matrix.
 */
export function pairScores(images: Features, text: Features, logitScale: number): Float64Array {
  const dim = images.dim;
  const pairs = text.count / 2;
  const out = new Float64Array(images.count * pairs);
  // Each row's norm once, not once per cosine it enters.
  const textNorms = new Float64Array(text.count);
  for (let j = 0; j < text.count; j++) textNorms[j] = Math.sqrt(dot(text.data, j * dim, text.data, j * dim, dim));
  const cos = (i: number, imageNorm: number, j: number) => dot(images.data, i * dim, text.data, j * dim, dim) / (imageNorm * textNorms[j]!);
  for (let i = 0; i < images.count; i++) {
    const imageNorm = Math.sqrt(dot(images.data, i * dim, images.data, i * dim, dim));
    for (let p = 0; p < pairs; p++) out[i * pairs + p] = pairProbability(cos(i, imageNorm, 2 * p), cos(i, imageNorm, 2 * p + 1), logitScale);
  }
  return out;
}
