/**
 * Batching same-size images in scoreMany, and the on-disk cache of text features and int8 calibration ranges.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BatchResult, ClipIqa } from '../src/api.js';
import { MAX_STORED_ROWS } from '../src/model/feature-cache.js';
import { VOCAB, fixture } from './helpers/shared.js';

const img = (name: string) => fixture('images', name);

describe('scoreMany with batch', () => {
  let iqa: ClipIqa;
  beforeAll(async () => {
    iqa = await ClipIqa.load({ model: fixture('tiny-rn', 'model.safetensors'), vocab: VOCAB, featureCache: false });
  });
  afterAll(() => iqa.dispose());

  it('gives the scores of one-at-a-time scoring, in input order, failures included', async () => {
    // Runs of the same size (batched together) broken by another size and by a file that does not decode.
    const inputs: (string | Uint8Array)[] = [
      img('img0-64x64-rgb.png'),
      img('img0-64x64-rgb.png'),
      img('img1-96x80-rgb.png'),
      img('img4-64x48-rgba.png'),
      img('img4-64x48-rgba.png'),
      new Uint8Array([1, 2, 3, 4]),
      img('img4-64x48-rgba.png'),
      img('img0-64x64-rgb.png'),
    ];
    const options = { attributes: 'quality,sharpness', ensemble: true, positional: 'interpolate' as const };
    const single: BatchResult[] = [];
    for await (const r of iqa.scoreMany(inputs, options)) single.push(r);
    for (const batch of [2, 3, 8]) {
      const batched: BatchResult[] = [];
      for await (const r of iqa.scoreMany(inputs, { ...options, batch })) batched.push(r);
      expect(batched.map((r) => [r.index, r.ok])).toEqual(single.map((r) => [r.index, r.ok]));
      expect(batched.map((r) => r.ok)).toEqual([true, true, true, true, true, false, true, true]);
      batched.forEach((r, i) => {
        const s = single[i]!;
        if (!r.ok || !s.ok) return;
        expect(r.source).toBe(s.source);
        for (const [name, value] of Object.entries(s.scores)) expect(Math.abs(r.scores[name]! - value)).toBeLessThanOrEqual(1e-5);
      });
    }
  });
});

describe('scoreMany inputs', () => {
  it('closes the inputs when the consumer stops early', async () => {
    const iqa = await ClipIqa.load({ model: fixture('tiny-rn', 'model.safetensors'), vocab: VOCAB, featureCache: false });
    let closed = false;
    const inputs = async function* () {
      try {
        for (let i = 0; i < 10; i++) yield img('img0-64x64-rgb.png');
      } finally {
        closed = true;
      }
    };
    try {
      for await (const r of iqa.scoreMany(inputs(), { attributes: 'quality' })) {
        expect(r.ok).toBe(true);
        break;
      }
      expect(closed).toBe(true);
    } finally {
      await iqa.dispose();
    }
  });

  it("names a failed input as a scored one is named, by the instance's decode options too", async () => {
    const iqa = await ClipIqa.load({ model: fixture('tiny-rn', 'model.safetensors'), vocab: VOCAB, featureCache: false, decode: { name: 'upload' } });
    try {
      const results: BatchResult[] = [];
      for await (const r of iqa.scoreMany([readFileSync(img('img0-64x64-rgb.png')), new Uint8Array([1, 2, 3, 4])], { attributes: 'quality' })) results.push(r);
      expect(results.map((r) => [r.ok, r.source])).toEqual([
        [true, 'upload'],
        [false, 'upload'],
      ]);
    } finally {
      await iqa.dispose();
    }
  });
});

describe('on-disk feature cache', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'clip-iqa-features-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const load = (extra: object = {}) => ClipIqa.load({ model: fixture('tiny-rn', 'model.safetensors'), vocab: VOCAB, hub: { cacheDir: dir }, ...extra });
  const textFile = () => {
    const [identity] = readdirSync(join(dir, 'features'));
    return join(dir, 'features', identity!, 'text-float32.json');
  };

  it('stores text features per model and reads them back in a later session', async () => {
    const first = await load();
    const [good] = await first.embedText(['Good photo.']);
    await first.dispose();
    const file = JSON.parse(readFileSync(textFile(), 'utf8')) as { version: number; dim: number; rows: Record<string, string> };
    expect(file.dim).toBe(good!.length);
    expect(Object.keys(file.rows)).toHaveLength(1);

    // A marked row proves that the next session reads the file instead of running the text tower.
    const marked = new Float32Array(good!.length).fill(0.25);
    const key = Object.keys(file.rows)[0]!;
    writeFileSync(textFile(), JSON.stringify({ ...file, rows: { [key]: Buffer.from(marked.buffer).toString('base64') } }));
    const second = await load();
    expect((await second.embedText(['Good photo.']))[0]).toEqual(marked);
    // A new prompt is computed and added; the marked row stays.
    await second.embedText(['Bad photo.']);
    await second.dispose();
    expect(Object.keys((JSON.parse(readFileSync(textFile(), 'utf8')) as { rows: object }).rows)).toHaveLength(2);

    // featureCache: false neither reads nor writes it.
    const third = await load({ featureCache: false });
    expect((await third.embedText(['Good photo.']))[0]).toEqual(good);
    await third.dispose();
  });

  it('keeps at most MAX_STORED_ROWS rows on disk, the oldest out first', async () => {
    const iqa = await load();
    await iqa.embedText(['Good photo.']);
    const file = JSON.parse(readFileSync(textFile(), 'utf8')) as { version: number; dim: number; rows: Record<string, string> };
    const row = Object.values(file.rows)[0]!;
    const filler = Object.fromEntries(Array.from({ length: MAX_STORED_ROWS }, (_, i) => [`old${i}`, row]));
    writeFileSync(textFile(), JSON.stringify({ ...file, rows: filler }));
    await iqa.dispose();
    const again = await load();
    await again.embedText(['A brand new prompt.']);
    await again.dispose();
    const keys = Object.keys((JSON.parse(readFileSync(textFile(), 'utf8')) as { rows: object }).rows);
    expect(keys).toHaveLength(MAX_STORED_ROWS);
    expect(keys[0]).toBe('old1');
    expect(keys.at(-1)!.startsWith('t')).toBe(true);
  });

  it('ignores a corrupt cache file and replaces it', async () => {
    writeFileSync(textFile(), '{ not json');
    const iqa = await load();
    const [good] = await iqa.embedText(['Good photo.']);
    await iqa.dispose();
    expect(good!.some((v) => v !== 0.25)).toBe(true);
    expect(JSON.parse(readFileSync(textFile(), 'utf8'))).toMatchObject({ version: 1 });
  });

  it('keeps the int8 calibration ranges, and scores the same from them', async () => {
    const a = await load({ precision: 'int8' });
    const first = await a.score(img('img1-96x80-rgb.png'), { attributes: 'quality' });
    await a.dispose();
    const identity = readdirSync(join(dir, 'features'))[0]!;
    expect(readdirSync(join(dir, 'features', identity)).some((f) => f.startsWith('int8-ranges-'))).toBe(true);
    const b = await load({ precision: 'int8' });
    const again = await b.score(img('img1-96x80-rgb.png'), { attributes: 'quality' });
    await b.dispose();
    expect(again.scores).toEqual(first.scores);
  });
});
