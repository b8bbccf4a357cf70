import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ClipIqaError } from '../src/errors.js';
import { OnnxClipEncoder } from '../src/model/clip-encoder.js';
import type { RawImage } from '../src/model/types.js';
import { loadSafetensors } from '../src/weights/safetensors.js';
import type { StateDict } from '../src/weights/state-dict.js';
import { FIXTURE_SETS, fixture } from './helpers/shared.js';

// The preprocessing graph against fixtures/images/pixels.safetensors (PIL decode, /255, CLIP mean/std).

const IMAGES = ['img0-64x64-rgb.png', 'img1-96x80-rgb.png', 'img2-53x37-rgb.png', 'img3-70x66-l.png', 'img4-64x48-rgba.png'];

/** Test-only decoding (production decoding lives elsewhere): 8-bit sRGB, grey spread to three channels, alpha dropped. */
async function decode(name: string, path = fixture('images', name)): Promise<RawImage> {
  const { data, info } = await sharp(path).toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(3);
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

let encoder: OnnxClipEncoder;
const pixels = new Map<string, StateDict>();
beforeAll(async () => {
  encoder = OnnxClipEncoder.create(await loadSafetensors(fixture('tiny-rn', 'model.safetensors')), { threads: 1 });
  for (const set of FIXTURE_SETS) pixels.set(set.name, await loadSafetensors(set.path('images', 'pixels.safetensors')));
});
afterAll(async () => {
  await encoder.dispose();
});

describe('normalize', () => {
  const cases = FIXTURE_SETS.flatMap((set) => IMAGES.map((name) => [set.name, name, set.path('images', name)] as const));
  test.each(cases)('%s %s matches pixels.safetensors to 1e-6', async (set, name, path) => {
    const image = await decode(name, path);
    const batch = await encoder.normalize([image]);
    const want = pixels.get(set)!;
    expect([batch.batch, 3, batch.height, batch.width]).toEqual([1, ...want.shape(name)]);
    const diff = maxAbsDiff(batch.data, want.float32(name));
    console.log(`normalize ${set} ${name}: max |Δ| = ${diff.toExponential(2)}`);
    expect(diff).toBeLessThanOrEqual(1e-6);
  });

  test('16-bit samples are divided by 65535: x·257 gives exactly the 8-bit result', async () => {
    const image = await decode('img2-53x37-rgb.png');
    const wide: RawImage = { width: image.width, height: image.height, data: Uint16Array.from(image.data, (v) => v * 257) };
    const [a, b] = await Promise.all([encoder.normalize([image]), encoder.normalize([wide])]);
    expect(maxAbsDiff(a.data, b.data)).toBe(0);
  });

  test('a batch of same-size images equals the images one by one', async () => {
    const image = await decode('img0-64x64-rgb.png');
    const flipped: RawImage = { ...image, data: image.data.slice().reverse() };
    const batch = await encoder.normalize([image, flipped]);
    const one = await encoder.normalize([flipped]);
    expect(batch.batch).toBe(2);
    expect(maxAbsDiff(batch.data.subarray(batch.data.length / 2), one.data)).toBe(0);
  });

  test('images of different sizes are an E_OPTION error', async () => {
    const [a, b] = await Promise.all([decode('img0-64x64-rgb.png'), decode('img4-64x48-rgba.png')]);
    const e = await encoder.normalize([a, b]).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ClipIqaError);
    expect((e as ClipIqaError).code).toBe('E_OPTION');
    expect((e as ClipIqaError).message).toContain('64×48');
  });

  test('data of the wrong length is an E_IMAGE error; no images is E_OPTION', async () => {
    const e = await encoder.normalize([{ width: 4, height: 4, data: new Uint8Array(47) }]).catch((err: unknown) => err);
    expect((e as ClipIqaError).code).toBe('E_IMAGE');
    const none = await encoder.normalize([]).catch((err: unknown) => err);
    expect((none as ClipIqaError).code).toBe('E_OPTION');
  });
});
