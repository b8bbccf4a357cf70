/** Malformed inputs through the public API: each a clear ClipIqaError, never a crash or a wrong answer. */
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { ClipIqaError } from '../src/errors.js';
import { loadSafetensors } from '../src/weights/safetensors.js';
import { StateDict } from '../src/weights/state-dict.js';
import { fixture, photo, VOCAB } from './helpers/shared.js';

describe('bad input through the API', () => {
  let iqa: ClipIqa;
  beforeAll(async () => {
    iqa = await ClipIqa.load({ model: fixture('tiny-rn', 'model.safetensors'), vocab: VOCAB });
  });
  afterAll(() => iqa.dispose());

  it('a state dict missing a tensor names it', async () => {
    const sd = await loadSafetensors(fixture('tiny-rn', 'model.safetensors'));
    const partial = new StateDict('partial.safetensors', new Map([...sd.entries()].filter(([k]) => k !== 'visual.layer3.0.conv2.weight')));
    const broken = await ClipIqa.load({ model: partial, vocab: VOCAB });
    try {
      const err = await broken.score(fixture('images', 'img0-64x64-rgb.png')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ClipIqaError);
      expect((err as ClipIqaError).code).toBe('E_WEIGHTS_MISSING');
      expect((err as ClipIqaError).message).toMatch(/partial\.safetensors.*"visual\.layer3\.0\.conv2\.weight"/);
    } finally {
      await broken.dispose();
    }
  });

  it('an unreadable image is an E_IMAGE error naming it; a missing one E_NOT_FOUND', async () => {
    await expect(iqa.score(Buffer.from('GIF89a but not really'), { decode: { name: 'upload.gif' } })).rejects.toMatchObject({
      code: 'E_IMAGE',
      message: expect.stringMatching(/upload\.gif/),
    });
    await expect(iqa.score('/nonexistent/photo.jpg')).rejects.toMatchObject({ code: 'E_NOT_FOUND', message: expect.stringMatching(/photo\.jpg/) });
  });

  it('an image too small for a feature map says how small it is and what is needed', async () => {
    const tiny = await sharp({ create: { width: 20, height: 40, channels: 3, background: '#808080' } }).png().toBuffer();
    const err = (await iqa.score(tiny, { decode: { name: 'tiny.png' } }).catch((e: unknown) => e)) as ClipIqaError;
    expect(err.code).toBe('E_IMAGE_TOO_SMALL');
    expect(err.message).toMatch(/tiny\.png.*20×40.*at least \d+ pixels/);
  });

  it('decoded pixels, bytes and a path give the same scores', async () => {
    const path = photo('chelsea.png');
    const { data, info } = await sharp(path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const a = await iqa.score(path, { attributes: 'look' });
    const b = await iqa.score(readFileSync(path), { attributes: 'look' });
    const c = await iqa.score({ width: info.width, height: info.height, data: new Uint8Array(data) }, { attributes: 'look' });
    expect(b.scores).toEqual(a.scores);
    expect(c.scores).toEqual(a.scores);
  });

  it('scoreMany goes on past bad items and keeps input order', async () => {
    const inputs = [photo('camera.png'), Buffer.from('junk'), '/nope.png', photo('rocket.jpg')];
    const results = [];
    for await (const r of iqa.scoreMany(inputs, { attributes: 'quality', concurrency: 3 })) results.push(r);
    expect(results.map((r) => r.ok)).toEqual([true, false, false, true]);
    expect(results.map((r) => r.index)).toEqual([0, 1, 2, 3]);
    const single = await iqa.score(photo('rocket.jpg'), { attributes: 'quality' });
    expect(results[3]!.ok && results[3]!.scores.quality).toBe(single.scores.quality);
  });

  it('rejects bad options clearly', () => {
    expect(() => iqa.plan({ attributes: ['quality', 'bogus'] })).toThrowError(/unknown attribute "bogus"/);
    expect(() => iqa.plan({ plus: true })).toThrowError(/needs a learned context/);
    expect(() => iqa.plan({ attributes: [] })).toThrowError(/nothing to score/);
    expect(() => iqa.plan({ positional: 'sideways' as never })).toThrowError(/positional must be one of none, interpolate, fixed/);
    expect(() => iqa.plan({ maps: ['sharpness'], attributes: ['quality'] })).toThrowError(/not among the scored attributes/);
    expect(() => iqa.plan({ prompts: ['quality=A|B'] })).toThrowError(/two score names are "quality"/);
  });

  it('a checkpoint that is no checkpoint fails at load with the accepted formats', async () => {
    await expect(ClipIqa.load({ model: VOCAB, vocab: VOCAB })).rejects.toMatchObject({ code: 'E_WEIGHTS_FORMAT', message: expect.stringMatching(/Accepted formats/) });
  });
});
