/**
 * int8 precision: the quantised image towers run, stay close to the float32 reference on the parity fixtures,
 * and leave float32 untouched.
 *
 * Tolerances, from measurements (onnxruntime-node 1.30, AVX-512 VNNI CPU) with headroom for other CPUs' integer
 * kernels: tiny-rn (static uint8 activations calibrated on the embedded photographs, int8 weights per channel)
 * measured a worst feature cosine of 0.9975 and a worst score change of 0.028 (its logit scale is 10; real CLIP's
 * is 100, which magnifies score changes); tiny-vit (int8 products, activations quantised on the fly) 0.99987 and
 * 0.004. The README's Performance section has the figures for RN50- and ViT-B/32-shaped models.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { loadSafetensors } from '../src/weights/safetensors.js';
import type { StateDict } from '../src/weights/state-dict.js';
import { MODELS, VOCAB, deviation, fixture } from './helpers/shared.js';

const TOLERANCE = {
  'tiny-rn': { cosine: 0.99, score: 0.06 },
  'tiny-vit': { cosine: 0.999, score: 0.01 },
} as const;

const cosine = (a: Float32Array, b: Float32Array): number => deviation(a, b).cosine;

interface Expected {
  images: string[];
  variants: { fp32: { attribute_names: string[]; scores: Record<string, Record<'none' | 'interpolate', { attributes: Record<string, number> }>> } };
}

for (const model of MODELS) {
  describe(`${model} in int8`, () => {
    const expected = JSON.parse(readFileSync(fixture(model, 'expected.json'), 'utf8')) as Expected;
    let int8: ClipIqa;
    let float32: ClipIqa;
    let tensors: StateDict;
    beforeAll(async () => {
      const common = { model: fixture(model, 'model.safetensors'), vocab: VOCAB, featureCache: false };
      [int8, float32, tensors] = await Promise.all([
        ClipIqa.load({ ...common, precision: 'int8' }),
        ClipIqa.load({ ...common, precision: 'float32' }),
        loadSafetensors(fixture(model, 'expected.safetensors')),
      ]);
    });
    afterAll(async () => {
      await int8.dispose();
      await float32.dispose();
    });

    it(`keeps image features within cosine ${TOLERANCE[model].cosine} and scores within ${TOLERANCE[model].score} of the reference`, async () => {
      let worstCosine = 1;
      let worstScore = 0;
      for (const image of expected.images) {
        for (const mode of ['none', 'interpolate'] as const) {
          const features = await int8.embedImage(fixture('images', image), { positional: mode });
          worstCosine = Math.min(worstCosine, cosine(features, tensors.float32(`fp32/image/${image}/${mode}`)));
          const { scores } = await int8.score(fixture('images', image), { attributes: 'all', positional: mode });
          const ref = expected.variants.fp32.scores[image]![mode].attributes;
          for (const name of expected.variants.fp32.attribute_names) worstScore = Math.max(worstScore, Math.abs(scores[name]! - ref[name]!));
        }
      }
      expect(worstCosine).toBeGreaterThanOrEqual(TOLERANCE[model].cosine);
      expect(worstScore).toBeLessThanOrEqual(TOLERANCE[model].score);
      // The integer path really ran: int8 features are not float32's.
      expect(worstCosine).toBeLessThan(0.9999999);
    });

    it('leaves float32 as it was: precision float32 gives the reference features', async () => {
      for (const image of expected.images.slice(0, 2)) {
        const features = await float32.embedImage(fixture('images', image));
        expect(cosine(features, tensors.float32(`fp32/image/${image}/none`))).toBeGreaterThanOrEqual(0.99999);
      }
    });

    if (model === 'tiny-rn') {
      it('gives per-region score maps close to float32', async () => {
        const image = fixture('images', expected.images[1]!);
        const [a] = await int8.scoreMaps(image, ['quality']);
        const [b] = await float32.scoreMaps(image, ['quality']);
        expect([a!.height, a!.width]).toEqual([b!.height, b!.width]);
        for (let i = 0; i < a!.scores.length; i++) expect(Math.abs(a!.scores[i]! - b!.scores[i]!)).toBeLessThanOrEqual(TOLERANCE[model].score);
      });
    }

    it('computes text features in float32 whatever the image precision', async () => {
      const [a, b] = await Promise.all([int8.embedText(['Good photo.', 'Bad photo.']), float32.embedText(['Good photo.', 'Bad photo.'])]);
      expect(a).toEqual(b);
    });
  });
}

describe('precision option', () => {
  it('rejects an unknown precision', async () => {
    await expect(ClipIqa.load({ model: fixture('tiny-rn', 'model.safetensors'), vocab: VOCAB, precision: 'int4' as 'int8' })).rejects.toMatchObject({
      code: 'E_OPTION',
      message: expect.stringContaining('float32, int8'),
    });
  });
});
