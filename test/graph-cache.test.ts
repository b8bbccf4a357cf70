import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { decodeImage } from '../src/image/decode.js';
import { OnnxClipEncoder } from '../src/model/clip-encoder.js';
import { GraphCache } from '../src/model/graph-cache.js';
import { openClipModel } from '../src/model/model-weights.js';
import type { Precision } from '../src/runtime/options.js';
import { sha256File } from '../src/hub/cache.js';
import { VOCAB, fixture, photo, repoRoot } from './helpers/shared.js';

const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'clip-iqa-graph-cache-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
/** A fresh cache root and a private copy of a fixture model (so that changing it touches nothing shared). */
function fresh(model: 'tiny-rn' | 'tiny-vit' = 'tiny-rn'): { root: string; model: string } {
  const dir = join(tmp, `case-${n++}`);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'model.safetensors');
  copyFileSync(fixture(model, 'model.safetensors'), path);
  return { root: join(dir, 'cache'), model: path };
}

async function encoderFor(root: string, model: string, precision: Precision = 'float32') {
  const cache = new GraphCache(root);
  const sha256 = (await sha256File(model)).sha256;
  const weights = await openClipModel({ weights: model }, { cache, sha256, name: model });
  const encoder = OnnxClipEncoder.fromWeights(weights, { precision, threads: 1, graphs: { cache, model: weights.cacheKey!, name: model } });
  return { cache, weights, encoder };
}

async function features(encoder: OnnxClipEncoder, mode: 'none' | 'interpolate' = 'none'): Promise<Float32Array> {
  const image = await decodeImage(photo('chelsea.png'));
  const pixels = await encoder.normalize([image]);
  return (await encoder.encodeImages(pixels, mode)).data;
}

function graphEntries(root: string): string[] {
  return readdirSync(join(root, 'graphs')).filter((d) => /^[0-9a-f]+$/.test(d));
}

describe('graph cache', () => {
  for (const [model, precision] of [
    ['tiny-rn', 'float32'],
    ['tiny-rn', 'int8'],
    ['tiny-vit', 'float32'],
  ] as const) {
    it(`a cached ${model} ${precision} graph gives bit-identical features to a freshly built one, without reading the weights`, async () => {
      const { root, model: path } = fresh(model);
      const first = await encoderFor(root, path, precision);
      const built = await features(first.encoder);
      const builtPos = await features(first.encoder, 'interpolate');
      expect(first.encoder.graphOrigins.get('image')).toBe('built');
      await first.encoder.dispose();

      const second = await encoderFor(root, path, precision);
      const cached = await features(second.encoder);
      const cachedPos = await features(second.encoder, 'interpolate');
      expect(second.encoder.graphOrigins.get('image')).toBe('cache');
      expect(second.encoder.graphOrigins.get('image-positions')).toBe('cache');
      // The checkpoint was never read: its summary and the graphs came from the cache.
      expect(second.weights.loaded).toBeUndefined();
      expect(Buffer.from(cached.buffer).equals(Buffer.from(built.buffer))).toBe(true);
      expect(Buffer.from(cachedPos.buffer).equals(Buffer.from(builtPos.buffer))).toBe(true);
      await second.encoder.dispose();
    });
  }

  it('detects a corrupted or truncated entry, rebuilds it and never uses it', async () => {
    const { root, model } = fresh();
    const first = await encoderFor(root, model);
    const expected = await features(first.encoder);
    await first.encoder.dispose();
    const weightsFiles = graphEntries(root)
      .map((d) => join(root, 'graphs', d, 'weights.bin'))
      .filter((f) => {
        try {
          return statSync(f).size > 0;
        } catch {
          return false;
        }
      });
    expect(weightsFiles.length).toBeGreaterThan(0);
    // One bit flipped in the middle of every weights file: sizes unchanged, contents wrong.
    for (const f of weightsFiles) {
      const bytes = readFileSync(f);
      bytes[bytes.length >> 1]! ^= 0x40;
      writeFileSync(f, bytes);
    }
    const second = await encoderFor(root, model);
    const again = await features(second.encoder);
    expect(second.encoder.graphOrigins.get('image')).toBe('built');
    expect(Buffer.from(again.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    await second.encoder.dispose();
    // The rebuilt entries are whole again; a truncated one is found by its size.
    for (const f of weightsFiles) truncateSync(f, 100);
    const third = await encoderFor(root, model);
    expect(Buffer.from((await features(third.encoder)).buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    expect(third.encoder.graphOrigins.get('image')).toBe('built');
    await third.encoder.dispose();
    const fourth = await encoderFor(root, model);
    expect(Buffer.from((await features(fourth.encoder)).buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    expect(fourth.encoder.graphOrigins.get('image')).toBe('cache');
    await fourth.encoder.dispose();
  });

  it('changing the model file invalidates its entries', async () => {
    const { root, model } = fresh();
    const { sd } = { sd: (await openClipModel({ weights: model })).loaded! };
    const first = await encoderFor(root, model);
    const before = await features(first.encoder);
    await first.encoder.dispose();
    // The same file with one weight changed (the first float of the first conv): another SHA-256.
    const bytes = readFileSync(model);
    const header = Number(bytes.readBigUInt64LE(0));
    const meta = JSON.parse(bytes.subarray(8, 8 + header).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
    const at = 8 + header + meta['visual.conv1.weight']!.data_offsets[0];
    bytes.writeFloatLE(bytes.readFloatLE(at) + 1, at);
    writeFileSync(model, bytes);
    expect(sd.size).toBeGreaterThan(0);
    const second = await encoderFor(root, model);
    const after = await features(second.encoder);
    expect(second.encoder.graphOrigins.get('image')).toBe('built');
    expect(second.weights.loaded).toBeDefined();
    expect(Buffer.from(after.buffer).equals(Buffer.from(before.buffer))).toBe(false);
    await second.encoder.dispose();
  });

  it('keeps within its size bound, least recently used out first', async () => {
    const root = join(tmp, `bound-${n++}`);
    const cache = new GraphCache(root, 2500);
    const put = async (key: string, size: number) => {
      const p = (await cache.begin(key))!;
      writeFileSync(join(p.dir, 'weights.bin'), Buffer.alloc(size, 7));
      expect(await p.commit({ kind: 'graph', what: key, model: 'm' })).toBe(true);
    };
    await put('a'.repeat(40), 1000);
    utimesSync(join(cache.dir, 'a'.repeat(40), 'meta.json'), new Date(2000, 1), new Date(2000, 1));
    await put('b'.repeat(40), 1000);
    utimesSync(join(cache.dir, 'b'.repeat(40), 'meta.json'), new Date(2001, 1), new Date(2001, 1));
    // Using a makes b the least recently used.
    expect(await cache.get('a'.repeat(40))).toBeDefined();
    await put('c'.repeat(40), 1000);
    const keys = (await cache.list()).map((e) => e.key[0]);
    expect(keys.sort()).toEqual(['a', 'c']);
    expect(await cache.clear()).toEqual({ entries: 2, bytes: 2000 });
    expect(await cache.list()).toEqual([]);
  });

  it('two processes starting at once on an empty cache both succeed, and `models built` shows and clears what they built', async () => {
    const { root, model } = fresh();
    const cli = join(repoRoot, 'dist', 'cli', 'bin.js');
    const env = { ...process.env, CLIP_IQA_HOME: root, CLIP_IQA_OFFLINE: '1' };
    const args = [cli, 'score', '-m', model, '--vocab', VOCAB, '-a', 'quality,sharpness', '--json', '--quiet', '--threads', '1', photo('rocket.jpg')];
    const [a, b] = await Promise.all([run(process.execPath, args, { env }), run(process.execPath, args, { env })]);
    const scores = (out: string) => (JSON.parse(out) as { images: { scores: Record<string, number> }[] }).images[0]!.scores;
    expect(scores(a.stdout)).toEqual(scores(b.stdout));
    // A third run finds every graph it needs, each verified.
    const c = await run(process.execPath, args, { env: { ...env, CLIP_IQA_TRACE: '1' } });
    expect(scores(c.stdout)).toEqual(scores(a.stdout));
    expect(c.stderr).toMatch(/image graph from the cache/);
    expect(c.stderr).not.toMatch(/graph built|checkpoint read/);
    const cache = new GraphCache(root);
    for (const e of await cache.list()) expect(await cache.get(e.key)).toBe(e.dir);
    expect(readdirSync(cache.dir).filter((d) => !/^[0-9a-f]+$/.test(d))).toEqual([]);

    const listed = await run(process.execPath, [cli, 'models', 'built'], { env });
    expect(listed.stdout).toMatch(/graph +image float32/);
    expect(listed.stdout).toMatch(/summary +checkpoint summary/);
    const cleared = await run(process.execPath, [cli, 'models', 'built', '--clear', '--json'], { env });
    expect(JSON.parse(cleared.stdout)).toMatchObject({ cleared: expect.any(Number) });
    expect(await cache.list()).toEqual([]);
  });
});

describe('ClipIqa.load with the graph cache', () => {
  it('scores the same from a cold process with everything cached', async () => {
    const { root, model } = fresh('tiny-vit');
    const load = () => ClipIqa.load({ model, vocab: VOCAB, hub: { cacheDir: root, offline: true }, runtime: { threads: 1 } });
    const first = await load();
    const a = await first.score(photo('camera.png'), { attributes: 'quality' });
    await first.dispose();
    const second = await load();
    const b = await second.score(photo('camera.png'), { attributes: 'quality' });
    await second.dispose();
    expect(b.scores).toEqual(a.scores);
  });
});
