import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ClipIqaError } from '../src/errors.js';
import { OnnxClipEncoder } from '../src/model/clip-encoder.js';
import type { PixelBatch, PositionalMode } from '../src/model/types.js';
import { loadCheckpoint } from '../src/weights/load.js';
import { loadSafetensors } from '../src/weights/safetensors.js';
import type { StateDict } from '../src/weights/state-dict.js';
import { type FixtureModel, type FixtureSet, describeEachFixtureSet, deviation } from './helpers/shared.js';

// Parity of the ONNX towers with the PyTorch reference (test/reference/clip_reference.py) on the tiny fixtures of
// every fixture set. Tolerances from shared/README.md: max |Δ| ≤ 2e-4·max|expected| and cosine ≥ 0.99999.

/** Each checkpoint file (where the set has it) and the variant of expected.safetensors it must reproduce. */
const CHECKPOINTS: { model: FixtureModel; file: string; variant: 'fp32' | 'jit-fp16' }[] = [
  { model: 'tiny-rn', file: 'model.safetensors', variant: 'fp32' },
  { model: 'tiny-rn', file: 'model.pt', variant: 'fp32' },
  { model: 'tiny-rn', file: 'model-jit-fp16.pt', variant: 'jit-fp16' },
  { model: 'tiny-vit', file: 'model.safetensors', variant: 'fp32' },
  { model: 'tiny-vit', file: 'model-jit-fp16.pt', variant: 'jit-fp16' },
];

interface Deviation {
  /** What kind of check, e.g. "tiny-rn image interpolate"; the worst of each group is printed at the end. */
  readonly group: string;
  readonly relMax: number;
  readonly cosine: number;
}
const deviations: Deviation[] = [];

function expectClose(group: string, item: string, actual: Float32Array, expected: Float32Array): void {
  const check = `${group} ${item}`;
  expect(actual.length, check).toBe(expected.length);
  const { maxDiff, maxRef, cosine } = deviation(actual, expected);
  const relMax = maxDiff / maxRef;
  deviations.push({ group, relMax, cosine });
  expect(relMax, `${check}: max |Δ| / max |expected|`).toBeLessThanOrEqual(2e-4);
  expect(cosine, `${check}: cosine`).toBeGreaterThanOrEqual(0.99999);
}

/** Row-wise comparison of a (count, D) result with the (count, D) expectation. */
function expectRows(group: string, actual: Float32Array, expected: Float32Array, count: number): void {
  const d = expected.length / count;
  for (let r = 0; r < count; r++) expectClose(group, `row ${r}`, actual.subarray(r * d, (r + 1) * d), expected.subarray(r * d, (r + 1) * d));
}

async function rejection(p: Promise<unknown>): Promise<ClipIqaError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ClipIqaError);
  return e as ClipIqaError;
}


// ref/make_fixtures.py: PAPER_PAIRS + EXTRA_PAIRS (expected.json's attribute_names order) and ENSEMBLE_PAIRS.
const ATTRIBUTE_PAIRS: [string, string][] = [
  ['Good photo.', 'Bad photo.'],
  ['Bright photo.', 'Dark photo.'],
  ['Sharp photo.', 'Blurry photo.'],
  ['Noisy photo.', 'Clean photo.'],
  ['Colorful photo.', 'Dull photo.'],
  ['High contrast photo.', 'Low contrast photo.'],
  ['Aesthetic photo.', 'Not aesthetic photo.'],
  ['Happy photo.', 'Sad photo.'],
  ['Natural photo.', 'Synthetic photo.'],
  ['New photo.', 'Old photo.'],
  ['Scary photo.', 'Peaceful photo.'],
  ['Complex photo.', 'Simple photo.'],
  ['Warm photo.', 'Cold photo.'],
  ['Real photo.', 'Abstract photo.'],
  ['Beautiful photo.', 'Ugly photo.'],
  ['Lonely photo.', 'Sociable photo.'],
  ['Relaxing photo.', 'Stressful photo.'],
];
const ENSEMBLE_PAIRS: [string, string][] = [
  ['Good image', 'bad image'],
  ['Sharp image', 'blurry image'],
  ['sharp edges', 'blurry edges'],
  ['High resolution image', 'low resolution image'],
  ['Noise-free image', 'noisy image'],
];

afterAll(() => {
  const lines = [...new Set(deviations.map((d) => d.group))].map((group) => {
    const ds = deviations.filter((d) => d.group === group);
    const rel = Math.max(...ds.map((d) => d.relMax));
    const cos = Math.min(...ds.map((d) => d.cosine));
    return `${group.padEnd(48)} n=${String(ds.length).padStart(3)}  max|Δ|/max|e| ${rel.toExponential(2)}  min cosine ${cos.toFixed(9)}`;
  });
  console.log(['parity deviations (worst per group):', ...lines].join('\n'));
});

interface ExpectedJson {
  images: string[];
  config: { resolution: number; patch?: number };
  variants: Record<string, { logit_scale: number }>;
}

describeEachFixtureSet((set: FixtureSet) => {
  const fixture = set.path;
  const tokenizer = JSON.parse(readFileSync(fixture('tokenizer.json'), 'utf8')) as { cases: { text: string; ids: number[] }[] };
  const idsOf = (text: string): number[] => {
    const found = tokenizer.cases.find((c) => c.text === text);
    if (!found) throw new Error(`tokenizer.json has no case for ${JSON.stringify(text)}`);
    return found.ids;
  };

  let pixels: StateDict;
  beforeAll(async () => {
    pixels = await loadSafetensors(fixture('images', 'pixels.safetensors'));
  });

  const batchOf = (name: string): PixelBatch => {
    const [, height, width] = pixels.shape(name) as [number, number, number];
    return { batch: 1, height, width, data: pixels.float32(name) };
  };

  describe.each(CHECKPOINTS.filter((c) => set.has(c.model, c.file)))('$model $file → $variant', ({ model, file, variant }) => {
    let encoder: OnnxClipEncoder;
    let expected: StateDict;
    let meta: ExpectedJson;
    const want = (name: string): Float32Array => expected.float32(`${variant}/${name}`);
    const group = (what: string): string => `${set.name} ${model} ${file} ${what}`;

    beforeAll(async () => {
      // The tiny towers' weights are all under the default 1 MiB external-data threshold; the float16 runs
      // send every weight of 4 KiB or more as in-memory external data, so both paths are checked end to end.
      const externalMinBytes = variant === 'jit-fp16' ? 4096 : undefined;
      encoder = OnnxClipEncoder.create(await loadCheckpoint(fixture(model, file)), { threads: 1, externalMinBytes });
      expected = await loadSafetensors(fixture(model, 'expected.safetensors'));
      meta = JSON.parse(readFileSync(fixture(model, 'expected.json'), 'utf8')) as ExpectedJson;
    });
    afterAll(async () => {
      await encoder?.dispose();
    });

    test('logit scale is exp(logit_scale) from the weights', () => {
      expect(encoder.logitScale).toBeCloseTo(meta.variants[variant]!.logit_scale, 6);
    });

    test('image features for every image and positional mode', async () => {
      for (const image of meta.images) {
        const modes: PositionalMode[] = ['none', 'interpolate'];
        if (expected.has(`${variant}/image/${image}/fixed`)) modes.push('fixed');
        for (const mode of modes) {
          const features = await encoder.encodeImages(batchOf(image), mode);
          expect(features.count).toBe(1);
          expectClose(group(`image ${mode}`), image, features.data, want(`image/${image}/${mode}`));
        }
      }
      // The native-size image is among the fixtures, so `fixed` was checked at least once.
      expect(meta.images.some((i) => expected.has(`${variant}/image/${i}/fixed`))).toBe(true);
    });

    test('a batch of same-size images equals the images one by one', async () => {
      const a = batchOf('img4-64x48-rgba.png');
      // A second 64×48 image: the top 48 rows of the 64×64 one (rows are contiguous within each channel plane).
      const square = batchOf('img0-64x64-rgb.png');
      const crop = new Float32Array(3 * 48 * 64);
      for (let c = 0; c < 3; c++) crop.set(square.data.subarray(c * 64 * 64, c * 64 * 64 + 48 * 64), c * 48 * 64);
      const both = new Float32Array(2 * crop.length);
      both.set(a.data);
      both.set(crop, crop.length);
      for (const mode of ['none', 'interpolate'] as const) {
        const batched = await encoder.encodeImages({ batch: 2, height: 48, width: 64, data: both }, mode);
        const first = await encoder.encodeImages(a, mode);
        const second = await encoder.encodeImages({ batch: 1, height: 48, width: 64, data: crop }, mode);
        expect(batched.count).toBe(2);
        const d = batched.dim;
        expectClose(group(`batch-vs-single ${mode}`), '0', batched.data.subarray(0, d), first.data);
        expectClose(group(`batch-vs-single ${mode}`), '1', batched.data.subarray(d), second.data);
        expectClose(group(`batch-vs-reference ${mode}`), '0', batched.data.subarray(0, d), want(`image/img4-64x48-rgba.png/${mode}`));
      }
    });

    test('text features of the 17 attribute pairs and the 5-pair ensemble', async () => {
      for (const [name, pairs] of [
        ['attributes', ATTRIBUTE_PAIRS],
        ['ensemble', ENSEMBLE_PAIRS],
      ] as const) {
        const rows = pairs.flat().map(idsOf);
        const features = await encoder.encodeTokens(rows);
        expect(features.count).toBe(rows.length);
        expectRows(group(`text ${name}`), features.data, want(`text/${name}`), rows.length);
      }
    });

    test('CLIP-IQA+ text features from learned-context embedding sequences', async () => {
      const eot = idsOf('X X X X X X X X X X X X X X X X Good photo..').indexOf(49407);
      expect(eot).toBe(20);
      const good = want('clipiqa+/embeddings/Good photo.');
      const bad = want('clipiqa+/embeddings/Bad photo.');
      const both = new Float32Array(good.length * 2);
      both.set(good);
      both.set(bad, good.length);
      const features = await encoder.encodeEmbeddings(both, 2, [eot, eot]);
      expectRows(group('text clipiqa+'), features.data, want('clipiqa+/text'), 2);
      // Rows after the last EOT are cut before the run; with an EOT at the last position nothing is cut.
      const uncut = await encoder.encodeEmbeddings(both, 2, [eot, 76]);
      expectClose(group('text uncut-vs-cut'), '0', uncut.data.subarray(0, uncut.dim), features.data.subarray(0, features.dim));
    });

    test.runIf(model === 'tiny-rn')('dense features: each final-map location through v_proj and c_proj', async () => {
      for (const image of meta.images) {
        const dense = await encoder.encodeDense(batchOf(image));
        const [h, w, d] = expected.shape(`${variant}/dense/${image}`) as [number, number, number];
        expect([dense.batch, dense.height, dense.width, dense.dim]).toEqual([1, h, w, d]);
        expectClose(group('dense'), image, dense.data, want(`dense/${image}`));
      }
    });
  });

  describe.each(['tiny-rn', 'tiny-vit'] as const)('%s: errors', (model) => {
    let encoder: OnnxClipEncoder;
    const { resolution, patch } = (JSON.parse(readFileSync(fixture(model, 'expected.json'), 'utf8')) as ExpectedJson).config;

    beforeAll(async () => {
      encoder = OnnxClipEncoder.create(await loadSafetensors(fixture(model, 'model.safetensors')), { threads: 1 });
    });
    afterAll(async () => {
      await encoder?.dispose();
    });

    test("'fixed' on a non-native size is a clear E_OPTION error", async () => {
      const e = await rejection(encoder.encodeImages(batchOf('img1-96x80-rgb.png'), 'fixed'));
      expect(e.code).toBe('E_OPTION');
      expect(e.message).toContain('96×80');
      expect(e.message).toContain(`${resolution}×${resolution}`);
      expect(e.message).toMatch(/'none' or 'interpolate'/);
    });

    test('an image too small for a feature map is E_IMAGE_TOO_SMALL, checked before running', async () => {
      const min = model === 'tiny-rn' ? 31 : patch!;
      const tooSmall = { batch: 1, height: min - 1, width: 200, data: new Float32Array(3 * (min - 1) * 200) };
      const e = await rejection(encoder.encodeImages(tooSmall, 'none'));
      expect(e.code).toBe('E_IMAGE_TOO_SMALL');
      expect(e.message).toContain(`at least ${min} pixels`);
      if (model === 'tiny-rn') expect((await rejection(encoder.encodeDense(tooSmall))).code).toBe('E_IMAGE_TOO_SMALL');
      const justEnough = await encoder.encodeImages({ batch: 1, height: min, width: min, data: new Float32Array(3 * min * min) }, 'interpolate');
      expect(justEnough.data.every(Number.isFinite)).toBe(true);
    });

    test('a pixel batch whose data does not match its shape is E_OPTION', async () => {
      const e = await rejection(encoder.encodeImages({ batch: 2, height: 64, width: 64, data: new Float32Array(3 * 64 * 64) }, 'none'));
      expect(e.code).toBe('E_OPTION');
    });

    test('token embeddings are rows of token_embedding.weight; bad ids and rows are E_OPTION', async () => {
      const sd = await loadSafetensors(fixture(model, 'model.safetensors'));
      const table = sd.float32('token_embedding.weight');
      const w = encoder.architecture.text.width;
      const rows = encoder.tokenEmbeddings([49406, 3]);
      expect(rows.subarray(0, w)).toEqual(table.subarray(49406 * w, 49407 * w));
      expect(rows.subarray(w)).toEqual(table.subarray(3 * w, 4 * w));
      expect(() => encoder.tokenEmbeddings([49408])).toThrow(/outside the vocabulary/);
      expect((await rejection(encoder.encodeTokens([[49406, 49407]]))).code).toBe('E_OPTION');
      expect((await rejection(encoder.encodeEmbeddings(new Float32Array(77 * w), 1, [77]))).code).toBe('E_OPTION');
      expect(await encoder.encodeTokens([])).toMatchObject({ count: 0 });
    });

    test.runIf(model === 'tiny-vit')('dense features of a ViT are a clear E_OPTION error', async () => {
      const e = await rejection(encoder.encodeDense(batchOf('img0-64x64-rgb.png')));
      expect(e.code).toBe('E_OPTION');
      expect(e.message).toMatch(/ViT/);
    });
  });
});
