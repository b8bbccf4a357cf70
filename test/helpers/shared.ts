/**
 * Where the tests' fixtures are. The repository's own set (test/fixtures, made by test/reference/make_fixtures.py)
 * is always there; the larger set in `../shared` beside the repository (or CLIP_IQA_SHARED) is used too when present,
 * as every developer's checkout and CI have it. A clone without it runs everything but the shared set's copies of
 * the parity tests; test/global-setup.ts says so once.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe } from 'vitest';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export { repoRoot };

/** `../shared` beside the repository (or CLIP_IQA_SHARED), which may be absent. */
export const SHARED = resolve(process.env.CLIP_IQA_SHARED ?? join(repoRoot, '..', 'shared'));
export const HAS_SHARED = existsSync(join(SHARED, 'fixtures', 'tiny-rn', 'expected.json'));
/** A path under `../shared`; only for tests that run when `HAS_SHARED`. */
export const shared = (...parts: string[]): string => join(SHARED, ...parts);

/** The repository's fixture set. */
export const FIXTURES = join(repoRoot, 'test', 'fixtures');
export const fixture = (...parts: string[]): string => join(FIXTURES, ...parts);
/** The repository's photographs (public domain / CC0, credited in test/fixtures/photos/CREDITS.md). */
export const PHOTOS = join(FIXTURES, 'photos');
export const photo = (name: 'rocket.jpg' | 'chelsea.png' | 'camera.png'): string => join(PHOTOS, name);
/** The BPE vocabulary the package ships. */
export const VOCAB = join(repoRoot, 'assets', 'bpe_simple_vocab_16e6.txt.gz');

export const MODELS = ['tiny-rn', 'tiny-vit'] as const;
export type FixtureModel = (typeof MODELS)[number];

/**
 * One set of parity fixtures, laid out as shared/README.md describes: `tokenizer.json`, `images/`, and per model
 * `expected.json` / `expected.safetensors` beside its checkpoints (which differ: `has()` says what is there).
 */
export interface FixtureSet {
  /** `repo` or `shared`, for test names. */
  readonly name: 'repo' | 'shared';
  readonly root: string;
  readonly models: readonly FixtureModel[];
  path(...parts: string[]): string;
  has(...parts: string[]): boolean;
}

function fixtureSet(name: FixtureSet['name'], root: string): FixtureSet {
  return {
    name,
    root,
    models: MODELS,
    path: (...parts) => join(root, ...parts),
    has: (...parts) => existsSync(join(root, ...parts)),
  };
}

export const REPO_SET = fixtureSet('repo', FIXTURES);
/** Every fixture set available here: the repository's, then `../shared`'s when present. */
export const FIXTURE_SETS: readonly FixtureSet[] = HAS_SHARED ? [REPO_SET, fixtureSet('shared', join(SHARED, 'fixtures'))] : [REPO_SET];

/** `describe(<set name>, …)` once for every available fixture set: the way to run a test over all of them. */
export function describeEachFixtureSet(body: (set: FixtureSet) => void): void {
  for (const set of FIXTURE_SETS) describe(`${set.name} fixtures`, () => body(set));
}

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
