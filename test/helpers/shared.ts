import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `../shared` beside the repository: fixtures, the BPE vocabulary and sample images live there, never in the project. */
export const SHARED = resolve(process.env.CLIP_IQA_SHARED ?? join(repoRoot, '..', 'shared'));

if (!existsSync(join(SHARED, 'fixtures'))) {
  throw new Error(
    `The shared fixtures are missing: expected ${SHARED}/fixtures. ` +
      'Tests read parity fixtures, the BPE vocabulary and images from ../shared beside the repository ' +
      '(or from CLIP_IQA_SHARED). Check out ../shared next to this repository.',
  );
}

export const shared = (...parts: string[]): string => join(SHARED, ...parts);
export const FIXTURES = join(SHARED, 'fixtures');
export const VOCAB = join(SHARED, 'clip', 'bpe_simple_vocab_16e6.txt.gz');
export const MODELS = ['tiny-rn', 'tiny-vit'] as const;
export type FixtureModel = (typeof MODELS)[number];
export const fixture = (...parts: string[]): string => join(FIXTURES, ...parts);
export { repoRoot };

/** How far `actual` is from `expected`: the largest difference, the largest reference magnitude, and the cosine. */
export function deviation(actual: Float32Array, expected: Float32Array): { maxDiff: number; maxRef: number; cosine: number } {
  let maxDiff = 0;
  let maxRef = 0;
  let dot = 0;
  let na = 0;
  let ne = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    maxDiff = Math.max(maxDiff, Math.abs(a - e));
    maxRef = Math.max(maxRef, Math.abs(e));
    dot += a * e;
    na += a * a;
    ne += e * e;
  }
  return { maxDiff, maxRef, cosine: dot / Math.sqrt(na * ne) };
}
