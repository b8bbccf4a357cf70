/**
 * End to end through the public API: every fixture model in every weights format, every fixture image and
 * positional mode, against the scores the PyTorch reference computed.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqa, PLUS } from '../src/api.js';
import { denseScoreMaps } from '../src/iqa/dense.js';
import { loadSafetensors } from '../src/weights/safetensors.js';
import type { StateDict } from '../src/weights/state-dict.js';
import { VOCAB, describeEachFixtureSet, deviation } from './helpers/shared.js';

interface Expected {
  images: string[];
  variants: Record<
    string,
    {
      logit_scale: number;
      attribute_names: string[];
      scores: Record<string, Record<'none' | 'interpolate', { attributes: Record<string, number>; ensemble_mean: number }>>;
      'clipiqa+': Record<string, number>;
    }
  >;
}

const FORMATS = [
  { file: 'model.safetensors', variant: 'fp32' },
  { file: 'model.pt', variant: 'fp32' },
  { file: 'model-jit-fp16.pt', variant: 'jit-fp16' },
] as const;

function expectClose(actual: Float32Array, expected: Float32Array) {
  expect(actual.length).toBe(expected.length);
  const { maxDiff, maxRef, cosine } = deviation(actual, expected);
  expect(maxDiff).toBeLessThanOrEqual(2e-4 * maxRef);
  expect(cosine).toBeGreaterThanOrEqual(0.99999);
}

describeEachFixtureSet(({ models, path: fixture, has }) => {
  for (const model of models) {
    const expected = JSON.parse(readFileSync(fixture(model, 'expected.json'), 'utf8')) as Expected;
    for (const { file, variant } of FORMATS) {
      if (!has(model, file)) continue;
      describe(`${model} ${file} through the API`, () => {
        let iqa: ClipIqa;
        let tensors: StateDict;
        const want = expected.variants[variant]!;
        beforeAll(async () => {
          iqa = await ClipIqa.load({ model: fixture(model, file), vocab: VOCAB, plus: fixture(model, 'clipiqa+-ctx.pth') });
          tensors = await loadSafetensors(fixture(model, 'expected.safetensors'));
        });
        afterAll(() => iqa.dispose());

        it('reads logit_scale from the weights', () => {
          expect(iqa.logitScale).toBeCloseTo(want.logit_scale, 5);
        });

        for (const image of expected.images) {
          it(`${image}: attribute scores, ensemble and CLIP-IQA+ in both positional modes`, async () => {
            for (const mode of ['none', 'interpolate'] as const) {
              const r = await iqa.score(fixture('images', image), { attributes: 'all', ensemble: true, positional: mode });
              const ref = want.scores[image]![mode];
              expect(Object.keys(r.scores)).toEqual([...want.attribute_names, 'ensemble', PLUS]);
              for (const name of want.attribute_names) expect(Math.abs(r.scores[name]! - ref.attributes[name]!)).toBeLessThanOrEqual(1e-4);
              expect(Math.abs(r.scores.ensemble! - ref.ensemble_mean)).toBeLessThanOrEqual(1e-4);
              // CLIP-IQA+ is scored with positional mode none whatever the call's mode, as it was trained.
              expect(Math.abs(r.scores[PLUS]! - want['clipiqa+'][image]!)).toBeLessThanOrEqual(1e-4);
            }
          });

          it(`${image}: image features`, async () => {
            for (const mode of ['none', 'interpolate'] as const) {
              expectClose(await iqa.embedImage(fixture('images', image), { positional: mode }), tensors.float32(`${variant}/image/${image}/${mode}`));
            }
            if (tensors.has(`${variant}/image/${image}/fixed`)) {
              expectClose(await iqa.embedImage(fixture('images', image), { positional: 'fixed' }), tensors.float32(`${variant}/image/${image}/fixed`));
            } else {
              // As in the reference, the table is added as is whenever the token count fits it (a 70×66 image gives
              // the 64×64 grid); then it equals the interpolate mode, which leaves a fitting table unchanged.
              const fixed = iqa.embedImage(fixture('images', image), { positional: 'fixed' });
              const width = Number(/-(\d+)x/.exec(image)![1]);
              if (width === 70) expectClose(await fixed, tensors.float32(`${variant}/image/${image}/interpolate`));
              else await expect(fixed).rejects.toThrowError(/native size is 64×64/);
            }
          });
        }

        it('text features of the attribute prompts', async () => {
          const texts = [
            ...'Good photo.|Bad photo.|Bright photo.|Dark photo.|Sharp photo.|Blurry photo.|Noisy photo.|Clean photo.'.split('|'),
          ];
          const got = await iqa.embedText(texts);
          const all = tensors.float32(`${variant}/text/attributes`);
          const dim = got[0]!.length;
          got.forEach((row, i) => expectClose(row, all.subarray(i * dim, (i + 1) * dim)));
        });

        if (model === 'tiny-rn') {
          it('per-region score maps agree with the reference dense features', async () => {
            const image = expected.images[1]!;
            const [map] = await iqa.scoreMaps(fixture('images', image), ['quality']);
            const dense = tensors.get(`${variant}/dense/${image}`);
            const [h, w, d] = dense.shape as [number, number, number];
            const text = tensors.float32(`${variant}/text/attributes`).subarray(0, 2 * d);
            const [ref] = denseScoreMaps(
              { batch: 1, height: h, width: w, dim: d, data: tensors.float32(`${variant}/dense/${image}`) },
              { count: 2, dim: d, data: text },
              ['quality'],
              iqa.logitScale,
            );
            expect([map!.height, map!.width]).toEqual([h, w]);
            for (let i = 0; i < h * w; i++) expect(Math.abs(map!.scores[i]! - ref!.scores[i]!)).toBeLessThanOrEqual(1e-4);
          });
        }
      });
    }
  }
});
