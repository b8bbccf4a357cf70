import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { OnnxClipEncoder } from '../src/model/clip-encoder.js';
import { GraphCache } from '../src/model/graph-cache.js';
import { openClipModel } from '../src/model/model-weights.js';
import { buildLearnedPrompts, loadLearnedContext } from '../src/iqa/plus.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { sha256File } from '../src/hub/cache.js';
import { type DType, floatToHalf } from '../src/tensor.js';
import { readSafetensors } from '../src/weights/safetensors.js';
import { safetensorsBytes } from './helpers/fixture-weights.js';
import { VOCAB, fixture, photo, repoRoot } from './helpers/shared.js';

/**
 * The text graph's cache entry keeps the token embedding table (model/token-table.ts): a run whose graphs are all
 * cached reads the few rows a new prompt needs from there, never the checkpoint.
 */
const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), 'clip-iqa-graph-tokens-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

const CODES: Partial<Record<DType, string>> = { float32: 'F32', float16: 'F16', int64: 'I64' };

/**
 * A fresh cache root and a private copy of the tiny ResNet; `float16`: with its token table stored as float16 (as in
 * checkpoints saved in half precision whole; OpenAI's own keep that table float32), so that widening is tested too.
 */
function fresh(dtype: 'float32' | 'float16' = 'float32'): { root: string; model: string } {
  const dir = join(tmp, `case-${n++}`);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'model.safetensors');
  if (dtype === 'float32') copyFileSync(fixture('tiny-rn', 'model.safetensors'), path);
  else {
    const sd = readSafetensors(readFileSync(fixture('tiny-rn', 'model.safetensors')));
    const tensors = [...sd.entries()].map(([name, t]) => {
      const data = name === 'token_embedding.weight' ? Uint16Array.from(t.data as Float32Array, floatToHalf) : t.data;
      return { name, dtype: CODES[data instanceof Uint16Array ? 'float16' : t.dtype]!, shape: t.shape, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
    });
    writeFileSync(path, safetensorsBytes(tensors));
  }
  return { root: join(dir, 'cache'), model: path };
}

const tokenizer = await Tokenizer.fromFile(VOCAB);
const rowsOf = (prompts: readonly string[]) => prompts.map((p) => tokenizer.tokenize(p));
const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

async function encoderFor(root: string, model: string, sha256?: string) {
  const cache = new GraphCache(root);
  sha256 ??= (await sha256File(model)).sha256;
  const weights = await openClipModel({ weights: model }, { cache, sha256, name: model });
  const encoder = OnnxClipEncoder.fromWeights(weights, { threads: 1, graphs: { cache, model: weights.cacheKey!, name: model } });
  return { cache, weights, encoder };
}

/** Text features and token rows from an encoder that caches nothing: what a fresh build gives. */
async function freshlyBuilt(model: string, prompts: readonly string[], ids: readonly number[]) {
  const encoder = OnnxClipEncoder.create((await openClipModel({ weights: model })).loaded!, { threads: 1 });
  const features = (await encoder.encodeTokens(rowsOf(prompts))).data;
  const rows = encoder.tokenEmbeddings(ids);
  await encoder.dispose();
  return { features, rows };
}

/** The token table file of the (one) text graph entry under `root`. */
function tokenFile(root: string): { dir: string; name: string } {
  const graphs = join(root, 'graphs');
  for (const d of readdirSync(graphs).filter((x) => /^[0-9a-f]+$/.test(x))) {
    const name = readdirSync(join(graphs, d)).find((f) => f.startsWith('tokens-'));
    if (name) return { dir: join(graphs, d), name };
  }
  throw new Error(`no token table under ${graphs}`);
}

const FIRST = ['Good photo.', 'Bad photo.'];
const NEW = ['Sharp photo.', 'Blurry photo.'];
const IDS = [49406, 320, 1125, 269, 49407, 0, 0, 320];

describe('token embeddings from the graph cache', () => {
  for (const dtype of ['float32', 'float16'] as const) {
    it(`a new prompt on cached graphs (${dtype} checkpoint) gives bit-identical features without reading the checkpoint`, async () => {
      const { root, model } = fresh(dtype);
      const expected = await freshlyBuilt(model, NEW, IDS);
      const first = await encoderFor(root, model);
      await first.encoder.encodeTokens(rowsOf(FIRST));
      expect(first.encoder.graphOrigins.get('text')).toBe('built');
      await first.encoder.dispose();
      expect(tokenFile(root).name).toBe(`tokens-${dtype}.bin`);

      // The checkpoint is gone: whatever the run needs must come from the cache.
      const sha256 = (await sha256File(model)).sha256;
      renameSync(model, `${model}.away`);
      const second = await encoderFor(root, model, sha256);
      const features = (await second.encoder.encodeTokens(rowsOf(NEW))).data;
      expect(second.encoder.graphOrigins.get('text')).toBe('cache');
      expect(second.weights.loaded).toBeUndefined();
      expect(bits(features).equals(bits(expected.features))).toBe(true);
      expect(bits(second.encoder.tokenEmbeddings(IDS)).equals(bits(expected.rows))).toBe(true);
      await second.encoder.dispose();

      // Learned prompts look rows up before any text graph is opened.
      const third = await encoderFor(root, model, sha256);
      await third.encoder.prepareTokenEmbeddings();
      expect(third.weights.loaded).toBeUndefined();
      expect(third.encoder.graphOrigins.has('text')).toBe(false);
      expect(bits(third.encoder.tokenEmbeddings(IDS)).equals(bits(expected.rows))).toBe(true);
      expect(() => third.encoder.tokenEmbeddings([49408])).toThrow(/outside the vocabulary/);
      await third.encoder.dispose();
      renameSync(`${model}.away`, model);
    });
  }

  it('CLIP-IQA+ learned prompts built from the cached table match those built from the weights', async () => {
    const { root, model } = fresh();
    const context = await loadLearnedContext(fixture('tiny-rn', 'clipiqa+-ctx.pth'));
    const build = (encoder: OnnxClipEncoder) => buildLearnedPrompts(context, tokenizer, (ids) => encoder.tokenEmbeddings(ids), encoder.architecture.text.width);
    const first = await encoderFor(root, model);
    await first.encoder.prepareTokenEmbeddings();
    const fromWeights = build(first.encoder);
    await first.encoder.encodeEmbeddings(fromWeights.embeddings, fromWeights.classnames.length, fromWeights.eot);
    await first.encoder.dispose();
    const second = await encoderFor(root, model);
    await second.encoder.prepareTokenEmbeddings();
    const fromCache = build(second.encoder);
    expect(second.weights.loaded).toBeUndefined();
    expect(bits(fromCache.embeddings).equals(bits(fromWeights.embeddings))).toBe(true);
    expect(fromCache.eot).toEqual(fromWeights.eot);
    await second.encoder.dispose();
  });

  it('a corrupted token table is detected: the entry is rebuilt from the weights, with the same features', async () => {
    const { root, model } = fresh();
    const expected = await freshlyBuilt(model, NEW, IDS);
    const first = await encoderFor(root, model);
    await first.encoder.encodeTokens(rowsOf(FIRST));
    await first.encoder.dispose();
    // One bit flipped: the size is right, the CRC-32 in meta.json is not.
    const { dir, name } = tokenFile(root);
    const bytes = readFileSync(join(dir, name));
    bytes[bytes.length >> 1]! ^= 0x10;
    writeFileSync(join(dir, name), bytes);

    const second = await encoderFor(root, model);
    const features = (await second.encoder.encodeTokens(rowsOf(NEW))).data;
    expect(second.encoder.graphOrigins.get('text')).toBe('built');
    expect(second.weights.loaded).toBeDefined();
    expect(bits(features).equals(bits(expected.features))).toBe(true);
    await second.encoder.dispose();
    // The rebuilt entry serves the next run again.
    const third = await encoderFor(root, model);
    await third.encoder.prepareTokenEmbeddings();
    expect(third.weights.loaded).toBeUndefined();
    expect(bits(third.encoder.tokenEmbeddings(IDS)).equals(bits(expected.rows))).toBe(true);
    await third.encoder.dispose();
  });

  it('a token table of the wrong size (consistent with meta.json) is not used: the weights are read instead', async () => {
    const { root, model } = fresh();
    const expected = await freshlyBuilt(model, NEW, IDS);
    const first = await encoderFor(root, model);
    await first.encoder.encodeTokens(rowsOf(FIRST));
    await first.encoder.dispose();
    // One row short, with meta.json rewritten to match, as a table of another vocabulary would be.
    const { dir, name } = tokenFile(root);
    const width = first.encoder.architecture.text.width;
    const short = readFileSync(join(dir, name)).subarray(0, -width * 4);
    writeFileSync(join(dir, name), short);
    const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as { files: Record<string, { size: number; crc32: number }> };
    meta.files[name] = { size: short.length, crc32: crc32(short) };
    writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta));

    const second = await encoderFor(root, model);
    const features = (await second.encoder.encodeTokens(rowsOf(NEW))).data;
    expect(second.encoder.graphOrigins.get('text')).toBe('cache');
    expect(second.weights.loaded).toBeDefined();
    expect(bits(features).equals(bits(expected.features))).toBe(true);
    expect(bits(second.encoder.tokenEmbeddings(IDS)).equals(bits(expected.rows))).toBe(true);
    await second.encoder.dispose();
  });

  it('`clip-iqa score` with a new prompt on cached graphs reads no checkpoint and scores as without the cache', async () => {
    const { root, model } = fresh();
    const cli = join(repoRoot, 'dist', 'cli', 'bin.js');
    const env = { ...process.env, CLIP_IQA_HOME: root, CLIP_IQA_OFFLINE: '1', CLIP_IQA_TRACE: '1' };
    const base = [cli, 'score', '-m', model, '--vocab', VOCAB, '--json', '--quiet', '--threads', '1'];
    await run(process.execPath, [...base, '-a', 'quality', photo('rocket.jpg')], { env });
    const args = [...base, '-p', 'crisp=Sharp photo.|Blurry photo.', photo('rocket.jpg')];
    const warm = await run(process.execPath, args, { env });
    expect(warm.stderr).toMatch(/text graph from the cache/);
    expect(warm.stderr).not.toMatch(/checkpoint read|graph built/);
    const uncached = await run(process.execPath, args, { env: { ...env, CLIP_IQA_HOME: join(root, 'other'), CLIP_IQA_GRAPH_CACHE_MB: '0' } });
    const scores = (out: string) => (JSON.parse(out) as { images: { scores: Record<string, number> }[] }).images[0]!.scores;
    expect(scores(warm.stdout)).toEqual(scores(uncached.stdout));
    expect(Object.keys(scores(warm.stdout))).toContain('crisp');
  });

  it('`clip-iqa score --plus` on cached graphs builds its learned prompts without reading the checkpoint', async () => {
    const { root, model } = fresh();
    const cli = join(repoRoot, 'dist', 'cli', 'bin.js');
    const env = { ...process.env, CLIP_IQA_HOME: root, CLIP_IQA_OFFLINE: '1', CLIP_IQA_TRACE: '1' };
    const args = [cli, 'score', '-m', model, '--vocab', VOCAB, '-a', 'quality', '--plus', fixture('tiny-rn', 'clipiqa+-ctx.pth'), '--json', '--quiet', '--threads', '1', photo('rocket.jpg')];
    const first = await run(process.execPath, args, { env });
    expect(first.stderr).toMatch(/checkpoint read/);
    const second = await run(process.execPath, args, { env });
    expect(second.stderr).not.toMatch(/checkpoint read|graph built/);
    const scores = (out: string) => (JSON.parse(out) as { images: { scores: Record<string, number> }[] }).images[0]!.scores;
    expect(scores(second.stdout)).toEqual(scores(first.stdout));
    expect(scores(second.stdout)).toHaveProperty('clipiqa+');
  });
});
