import type { Features } from '../model/types.js';

/** Euclidean norm of row `i` of a row-major (count, dim) matrix, in float64. */
function rowNorm(data: Float32Array, offset: number, dim: number): number {
  let s = 0;
  for (let k = 0; k < dim; k++) s += data[offset + k]! * data[offset + k]!;
  return Math.sqrt(s);
}

/** Cosine similarity between row `i` of `a` and row `j` of `b`. */
export function cosine(a: Features, i: number, b: Features, j: number): number {
  const dim = a.dim;
  let dot = 0;
  for (let k = 0; k < dim; k++) dot += a.data[i * dim + k]! * b.data[j * dim + k]!;
  return dot / (rowNorm(a.data, i * dim, dim) * rowNorm(b.data, j * dim, dim));
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
  const pairs = text.count / 2;
  const out = new Float64Array(images.count * pairs);
  const textNorms = new Float64Array(text.count);
  for (let j = 0; j < text.count; j++) textNorms[j] = rowNorm(text.data, j * text.dim, text.dim);
  const dim = images.dim;
  for (let i = 0; i < images.count; i++) {
    const imageNorm = rowNorm(images.data, i * dim, dim);
    for (let p = 0; p < pairs; p++) {
      const cos = [0, 1].map((side) => {
        const j = 2 * p + side;
        let dot = 0;
        for (let k = 0; k < dim; k++) dot += images.data[i * dim + k]! * text.data[j * dim + k]!;
        return dot / (imageNorm * textNorms[j]!);
      });
      out[i * pairs + p] = pairProbability(cos[0]!, cos[1]!, logitScale);
    }
  }
  return out;
}
