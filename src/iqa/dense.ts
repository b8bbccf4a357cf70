import type { DenseFeatures, Features } from '../model/types.js';
import { pairScores } from './score.js';

/** A per-region score map over the final feature map of a ResNet image tower (row-major, height × width). */
export interface ScoreMap {
  readonly name: string;
  readonly width: number;
  readonly height: number;
  readonly scores: Float32Array;
}

/**
 * Scores every location of a dense feature map against each antonym pair, as MaskCLIP-style region
 * quality. `text` holds positive and negative rows of each pair in turn; returns one map per pair
 * for image `index` of the batch.
 */
export function denseScoreMaps(
  dense: DenseFeatures,
  text: Features,
  names: readonly string[],
  logitScale: number,
  index = 0,
): ScoreMap[] {
  const cells = dense.height * dense.width;
  const locations: Features = {
    count: cells,
    dim: dense.dim,
    data: dense.data.subarray(index * cells * dense.dim, (index + 1) * cells * dense.dim),
  };
  const scores = pairScores(locations, text, logitScale);
  return names.map((name, p) => {
    const map = new Float32Array(cells);
    for (let c = 0; c < cells; c++) map[c] = scores[c * names.length + p]!;
    return { name, width: dense.width, height: dense.height, scores: map };
  });
}
