/**
 * Parity of the checkpoint layouts found on the Hugging Face hub (open_clip with QuickGELU and with exact GELU,
 * transformers' CLIPModel) with the PyTorch reference: every weights file of every model folder, loaded by path,
 * as a folder, and as `hf:fixture/NAME` from a loopback hub; image features in every positional mode, text
 * features, attribute, ensemble and CLIP-IQA+ scores. Float32, tolerances of shared/README.md; int8 on the GELU
 * model. Model folders are read from FORMAT_SETS, a list, so that another fixture set can be added beside.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqa, type ClipIqaOptions, PLUS } from '../src/api.js';
import type { HubOptions } from '../src/hub/index.js';
import { ENSEMBLE_PAIRS, findAttribute } from '../src/iqa/prompts.js';
import { WEIGHT_FILES } from '../src/weights/files.js';
import { loadSafetensors } from '../src/weights/safetensors.js';
import type { StateDict } from '../src/weights/state-dict.js';
import { startHfHub, type HfHub } from './helpers/hf-hub.js';
import { FIXTURE_SETS, VOCAB, deviation } from './helpers/shared.js';

/** Folders of model folders, each with expected.json / expected.safetensors (variant fp32). */
const FORMAT_SETS = FIXTURE_SETS.map((set) => ({ set: set.name, root: set.path('formats'), images: set.path('images') }));

interface Expected {
  config: { act: 'quick_gelu' | 'gelu'; layout: string; kind: 'rn' | 'vit' };
  images: string[];
  variants: {
    fp32: {
      logit_scale: number;
      attribute_names: string[];
      scores: Record<string, Record<'none' | 'interpolate', { attributes: Record<string, number>; ensemble_mean: number }>>;
      'clipiqa+': Record<string, number>;
    };
  };
}

const MODELS = FORMAT_SETS.flatMap(({ set, root, images }) =>
  readdirSync(root)
    .filter((n) => existsSync(join(root, n, 'expected.json')))
    .sort()
    .map((folder) => ({
      // Unique across sets: it is also the loopback hub's repository name.
      name: `${set}-${folder}`,
      folder,
      dir: join(root, folder),
      image: (name: string) => join(images, name),
      expected: JSON.parse(readFileSync(join(root, folder, 'expected.json'), 'utf8')) as Expected,
      weights: WEIGHT_FILES.filter((f) => existsSync(join(root, folder, f))),
    })),
);

/** Worst deviations per group, printed at the end. */
const worst = new Map<string, { rel: number; cos: number; score: number }>();
function note(group: string, rel: number, cos: number, score: number): void {
  const w = worst.get(group) ?? { rel: 0, cos: 1, score: 0 };
  worst.set(group, { rel: Math.max(w.rel, rel), cos: Math.min(w.cos, cos), score: Math.max(w.score, score) });
}
afterAll(() => {
  const lines = [...worst].map(([g, w]) => `${g.padEnd(58)} max|Δ|/max|e| ${w.rel.toExponential(2)}  min cosine ${w.cos.toFixed(9)}  max score Δ ${w.score.toExponential(2)}`);
  console.log(['format parity (worst per load):', ...lines].join('\n'));
});

function expectClose(group: string, what: string, actual: Float32Array, expected: Float32Array): void {
  expect(actual.length, what).toBe(expected.length);
  const { maxDiff, maxRef, cosine } = deviation(actual, expected);
  note(group, maxDiff / maxRef, cosine, 0);
  expect(maxDiff / maxRef, `${what}: max |Δ| / max |expected|`).toBeLessThanOrEqual(2e-4);
  expect(cosine, `${what}: cosine`).toBeGreaterThanOrEqual(0.99999);
}

const pairTexts = (names: readonly string[]): string[] => names.flatMap((n) => {
  const a = findAttribute(n)!;
  return [a.positive, a.negative];
});

/** Every check of one loaded model against the reference. */
async function checkParity(group: string, iqa: ClipIqa, model: (typeof MODELS)[number], tensors: StateDict): Promise<void> {
  const want = model.expected.variants.fp32;
  expect(iqa.logitScale).toBeCloseTo(want.logit_scale, 5);
  // The activation is part of the architecture, and of what describe() says.
  const act = model.expected.config.act;
  expect(iqa.architecture.text.activation).toBe(act);
  if (iqa.architecture.vision.family === 'vit') expect(iqa.architecture.vision.activation).toBe(act);
  expect(iqa.describe()).toMatch(act === 'gelu' ? /, GELU$/ : /, QuickGELU$/);

  const texts = await iqa.embedText(pairTexts(want.attribute_names));
  const attributes = tensors.float32('fp32/text/attributes');
  const d = texts[0]!.length;
  texts.forEach((row, i) => expectClose(group, `text ${i}`, row, attributes.subarray(i * d, (i + 1) * d)));
  const ensemble = await iqa.embedText(ENSEMBLE_PAIRS.flatMap((p) => [p.positive, p.negative]));
  const ens = tensors.float32('fp32/text/ensemble');
  ensemble.forEach((row, i) => expectClose(group, `ensemble text ${i}`, row, ens.subarray(i * d, (i + 1) * d)));

  for (const image of model.expected.images) {
    const path = model.image(image);
    for (const mode of ['none', 'interpolate', 'fixed'] as const) {
      const key = `fp32/image/${image}/${mode}`;
      if (!tensors.has(key)) continue;
      expectClose(group, `${image} ${mode}`, await iqa.embedImage(path, { positional: mode }), tensors.float32(key));
    }
    for (const mode of ['none', 'interpolate'] as const) {
      const r = await iqa.score(path, { attributes: 'all', ensemble: true, positional: mode });
      const ref = want.scores[image]![mode];
      let delta = Math.abs(r.scores.ensemble! - ref.ensemble_mean);
      for (const name of want.attribute_names) delta = Math.max(delta, Math.abs(r.scores[name]! - ref.attributes[name]!));
      delta = Math.max(delta, Math.abs(r.scores[PLUS]! - want['clipiqa+'][image]!));
      note(group, 0, 1, delta);
      expect(delta, `${image} ${mode}: largest score difference`).toBeLessThanOrEqual(1e-4);
    }
  }
}

let hub: HfHub;
let cacheDir: string;
const hubOptions = (): HubOptions => ({ cacheDir, hfEndpoint: hub.endpoint, hfCacheDir: null, env: {}, quiet: true });

beforeAll(async () => {
  const repos = Object.fromEntries(
    MODELS.map((m) => [`fixture/${m.name}`, { files: Object.fromEntries(readdirSync(m.dir).filter((f) => !f.startsWith('expected')).map((f) => [f, readFileSync(join(m.dir, f))])) }]),
  );
  hub = await startHfHub(repos);
  cacheDir = await mkdtemp(join(tmpdir(), 'formats-parity-'));
});
afterAll(async () => {
  await hub?.close();
  await rm(cacheDir, { recursive: true, force: true });
});

for (const model of MODELS) {
  describe(`${model.name} (${model.expected.config.layout}, ${model.expected.config.act})`, () => {
    let tensors: StateDict;
    beforeAll(async () => {
      tensors = await loadSafetensors(join(model.dir, 'expected.safetensors'));
    });

    const loads: { how: string; options: () => ClipIqaOptions }[] = [
      ...model.weights.map((file) => ({ how: `by path ${file}`, options: () => ({ model: join(model.dir, file), plus: join(model.dir, 'clipiqa+-ctx.pth') }) })),
      { how: 'as a folder', options: () => ({ model: model.dir, plus: join(model.dir, 'clipiqa+-ctx.pth') }) },
      {
        how: `as hf:fixture/${model.name}`,
        options: () => ({ model: `hf:fixture/${model.name}`, plus: `hf:fixture/${model.name}/clipiqa+-ctx.pth`, hub: hubOptions() }),
      },
      ...model.weights.slice(1).map((file) => ({
        how: `as hf:fixture/${model.name}/${file}`,
        options: () => ({ model: `hf:fixture/${model.name}/${file}`, plus: `hf:fixture/${model.name}/clipiqa+-ctx.pth`, hub: hubOptions() }),
      })),
    ];
    for (const { how, options } of loads) {
      it(`matches the reference loaded ${how}`, async () => {
        const iqa = await ClipIqa.load({ vocab: VOCAB, featureCache: false, ...options() });
        try {
          await checkParity(`${model.name} ${how}`, iqa, model, tensors);
        } finally {
          await iqa.dispose();
        }
      });
    }

    if (model.expected.config.act === 'gelu' && model.expected.config.kind === 'vit') {
      it('runs in int8, close to the float32 reference', async () => {
        const iqa = await ClipIqa.load({ model: model.dir, vocab: VOCAB, featureCache: false, precision: 'int8' });
        try {
          let cos = 1;
          let score = 0;
          for (const image of model.expected.images) {
            const f = await iqa.embedImage(model.image(image));
            cos = Math.min(cos, deviation(f, tensors.float32(`fp32/image/${image}/none`)).cosine);
            const { scores } = await iqa.score(model.image(image), { attributes: 'all' });
            const ref = model.expected.variants.fp32.scores[image]!.none.attributes;
            for (const [k, v] of Object.entries(ref)) score = Math.max(score, Math.abs(scores[k]! - v));
          }
          note(`${model.name} int8`, 0, cos, score);
          // As tiny-vit in int8.test.ts: int8 products, activations quantised on the fly.
          expect(cos).toBeGreaterThanOrEqual(0.999);
          expect(cos).toBeLessThan(0.9999999);
          expect(score).toBeLessThanOrEqual(0.01);
        } finally {
          await iqa.dispose();
        }
      });
    }
  });
}

it('reads every format folder listed', () => {
  for (const { set } of FORMAT_SETS) {
    expect(MODELS.map((m) => m.name)).toEqual(expect.arrayContaining(['hf-vit', 'openclip-rn', 'openclip-vit-gelu'].map((f) => `${set}-${f}`)));
  }
  expect(MODELS.every((m) => m.weights.length > 0)).toBe(true);
  expect(FORMAT_SETS.every((s) => basename(s.root) === 'formats')).toBe(true);
});
