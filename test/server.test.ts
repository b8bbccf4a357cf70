/**
 * `clip-iqa serve`, the API over real HTTP on 127.0.0.1 with the tiny-rn fixture model (and its CLIP-IQA+ context):
 * scores equal the library's, however the images and options arrive; bad images, bad options, wrong content types,
 * oversize uploads and decompression bombs get the right status and a JSON error; concurrent requests; the
 * description routes, metrics and the OpenAPI document.
 */
import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { ATTRIBUTE_SETS } from '../src/iqa/prompts.js';
import { startServer } from '../src/server/index.js';
import { fixture, photo, VOCAB } from './helpers/shared.js';

const MODEL = fixture('tiny-rn', 'model.safetensors');
const CTX = fixture('tiny-rn', 'clipiqa+-ctx.pth');
const CHELSEA = readFileSync(photo('chelsea.png'));
const ROCKET = readFileSync(photo('rocket.jpg'));
const CAMERA = readFileSync(photo('camera.png'));
const MAX_UPLOAD = 1024 * 1024;

interface ScoreDoc {
  model: string;
  positional: string;
  prompts: Record<string, unknown>;
  images: { file: string; width?: number; height?: number; scores?: Record<string, number>; maps?: { name: string; width: number; height: number; scores: number[] }[]; error?: { code: string; message: string } }[];
  summary: { images: number; failed: number; seconds: number };
}

interface ErrorDoc {
  error: { code: string; message: string };
}

const form = (files: [string, Buffer, string][], fields: [string, string][] = []): FormData => {
  const f = new FormData();
  for (const [k, v] of fields) f.append(k, v);
  for (const [name, bytes, type] of files) f.append(name.split(':')[0]!, new Blob([new Uint8Array(bytes)], { type }), name.split(':')[1] ?? name);
  return f;
};

/** A PNG whose header announces `size`×`size` one-bit pixels, with real (zero) pixel data: 50 MB once inflated. */
function bombPng(size: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  const raw = Buffer.alloc((1 + Math.ceil(size / 8)) * size);
  return Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

describe('clip-iqa serve: the API', () => {
  let app: FastifyInstance;
  let url: string;
  let iqa: ClipIqa;
  const post = async (path: string, body: FormData | Buffer | string, headers: Record<string, string> = {}) => {
    const r = await fetch(`${url}${path}`, { method: 'POST', body: Buffer.isBuffer(body) ? new Uint8Array(body) : body, headers });
    return { status: r.status, headers: r.headers, json: (await r.json()) as unknown };
  };
  const library = async (bytes: Buffer, options: Parameters<ClipIqa['score']>[1] = {}) => (await iqa.score(bytes, options)).scores;
  const close = (a: Record<string, number>, b: Record<string, number>) => {
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    for (const k of Object.keys(b)) expect(Math.abs(a[k]! - b[k]!), k).toBeLessThanOrEqual(5e-7);
  };

  beforeAll(async () => {
    ({ app, url } = await startServer({ model: { model: MODEL, vocab: VOCAB, plus: CTX }, port: 0, maxUploadBytes: MAX_UPLOAD, ui: false }));
    iqa = await ClipIqa.load({ model: MODEL, vocab: VOCAB, plus: CTX });
  });
  afterAll(async () => {
    await app?.close();
    await iqa?.dispose();
  });

  it('is live and ready once the model is loaded', async () => {
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', model: 'model.safetensors' });
  });

  it('scores an upload as the library does (curl -F image=@photo), in the CLI’s JSON shape', async () => {
    const r = await post('/v1/score', form([['image:chelsea.png', CHELSEA, 'image/png']]));
    expect(r.status).toBe(200);
    const doc = r.json as ScoreDoc;
    expect(doc.model).toBe('model.safetensors');
    expect(doc.positional).toBe('none');
    expect(Object.keys(doc.prompts)).toEqual([...ATTRIBUTE_SETS.paper!, 'clipiqa+']);
    expect(doc.prompts.quality).toEqual(['Good photo.', 'Bad photo.']);
    expect(doc.summary).toMatchObject({ images: 1, failed: 0 });
    const [row] = doc.images;
    expect(row).toMatchObject({ file: 'chelsea.png', width: 451, height: 300 });
    close(row!.scores!, await library(CHELSEA));
  });

  it('takes many files under any field names, and options as form fields', async () => {
    const body = form(
      [
        ['photo:chelsea.png', CHELSEA, 'image/png'],
        ['file:rocket.jpg', ROCKET, 'image/jpeg'],
        ['x:camera.png', CAMERA, 'application/octet-stream'],
      ],
      [
        ['attributes', 'all'],
        ['prompt', 'vivid=Vivid photo.|Dull photo.'],
        ['prompt', 'Sunny photo.|Rainy photo.'],
        ['ensemble', 'true'],
        ['plus', 'false'],
        ['positional', 'interpolate'],
      ],
    );
    const r = await post('/v1/score', body);
    expect(r.status).toBe(200);
    const doc = r.json as ScoreDoc;
    expect(doc.positional).toBe('interpolate');
    expect(doc.images.map((i) => i.file)).toEqual(['chelsea.png', 'rocket.jpg', 'camera.png']);
    const options = { attributes: 'all', prompts: ['vivid=Vivid photo.|Dull photo.', 'Sunny photo.|Rainy photo.'], ensemble: true, plus: false, positional: 'interpolate' as const };
    for (const [i, bytes] of [CHELSEA, ROCKET, CAMERA].entries()) close(doc.images[i]!.scores!, await library(bytes, options));
    expect(doc.prompts['Sunny photo.|Rainy photo.']).toEqual(['Sunny photo.', 'Rainy photo.']);
  });

  it('takes a raw image body with options as query parameters', async () => {
    const r = await post('/v1/score?attributes=quality,sharpness&plus=false&name=r.jpg', ROCKET, { 'content-type': 'image/jpeg' });
    expect(r.status).toBe(200);
    const doc = r.json as ScoreDoc;
    expect(doc.images[0]!.file).toBe('r.jpg');
    close(doc.images[0]!.scores!, await library(ROCKET, { attributes: 'quality,sharpness', plus: false }));
  });

  it('returns per-region maps as small arrays (ResNet)', async () => {
    const r = await post('/v1/score?attributes=quality,sharpness&maps=quality', form([['image:rocket.jpg', ROCKET, 'image/jpeg']]));
    expect(r.status).toBe(200);
    const [row] = (r.json as ScoreDoc).images;
    expect(row!.maps).toHaveLength(1);
    const map = row!.maps![0]!;
    const [expected] = await iqa.scoreMaps(ROCKET, ['quality']);
    expect(map).toMatchObject({ name: 'quality', width: expected!.width, height: expected!.height });
    expect(map.scores).toHaveLength(expected!.width * expected!.height);
    map.scores.forEach((v, i) => expect(Math.abs(v - expected!.scores[i]!)).toBeLessThanOrEqual(5e-5));
    const all = await post('/v1/score?attributes=look&maps=true&plus=false', form([['image:rocket.jpg', ROCKET, 'image/jpeg']]));
    expect((all.json as ScoreDoc).images[0]!.maps!.map((m) => m.name)).toEqual(ATTRIBUTE_SETS.look);
  });

  it('answers a bad image with 400 and its reason; in a batch the others are still scored', async () => {
    const garbage = await post('/v1/score', form([['image:broken.jpg', Buffer.from('this is not a JPEG at all'), 'image/jpeg']]));
    expect(garbage.status).toBe(400);
    expect((garbage.json as ErrorDoc).error.code).toBe('E_IMAGE');
    expect((garbage.json as ErrorDoc).error.message).toContain('broken.jpg');

    // A real header and a cut-off body: refused by the decoder, after the header checks passed.
    const truncated = await post('/v1/score', form([['image:cut.png', CHELSEA.subarray(0, 4000), 'image/png']]));
    expect(truncated.status).toBe(400);
    expect((truncated.json as ErrorDoc).error.code).toBe('E_IMAGE');

    const tiny = await sharp({ create: { width: 20, height: 20, channels: 3, background: '#808080' } }).png().toBuffer();
    const batch = await post('/v1/score', form([['a:chelsea.png', CHELSEA, 'image/png'], ['b:tiny.png', tiny, 'image/png']]));
    expect(batch.status).toBe(200);
    const doc = batch.json as ScoreDoc;
    expect(doc.summary).toMatchObject({ images: 2, failed: 1 });
    expect(doc.images[0]!.scores).toBeDefined();
    expect(doc.images[1]!.error!.code).toBe('E_IMAGE_TOO_SMALL');
  });

  it('refuses bad options with 400 before queueing', async () => {
    const cases: [string, string][] = [
      ['/v1/score?attributes=nope', 'E_PROMPT'],
      ['/v1/score?atributes=all', 'E_BAD_REQUEST'],
      ['/v1/score?positional=sideways', 'E_BAD_REQUEST'],
      ['/v1/score?prompt=no-bar-here', 'E_PROMPT'],
      ['/v1/score?maps=colorfulness&attributes=quality', 'E_OPTION'],
    ];
    for (const [path, code] of cases) {
      const r = await post(path, form([['image:chelsea.png', CHELSEA, 'image/png']]));
      expect(r.status, path).toBe(400);
      expect((r.json as ErrorDoc).error.code, path).toBe(code);
    }
    const unknownField = await post('/v1/score', form([['image:chelsea.png', CHELSEA, 'image/png']], [['colour', 'red']]));
    expect(unknownField.status).toBe(400);
    expect((unknownField.json as ErrorDoc).error.message).toContain('colour');
    const none = await post('/v1/score', form([], [['attributes', 'quality']]));
    expect(none.status).toBe(400);
    expect((none.json as ErrorDoc).error.message).toMatch(/no image/);
  });

  it('answers a wrong content type with 415', async () => {
    const text = await post('/v1/score', 'hello', { 'content-type': 'text/plain' });
    expect(text.status).toBe(415);
    expect((text.json as ErrorDoc).error.code).toBe('E_MEDIA_TYPE');
    const json = await post('/v1/score', JSON.stringify({ image: 'x' }), { 'content-type': 'application/json' });
    expect(json.status).toBe(415);
    const part = await post('/v1/score', form([['image:notes.txt', Buffer.from('just text'), 'text/plain']]));
    expect(part.status).toBe(415);
    expect((part.json as ErrorDoc).error.message).toContain('notes.txt');
  });

  it('answers an upload over the size limit with 413, multipart and raw alike', async () => {
    const big = Buffer.concat([CHELSEA, Buffer.alloc(MAX_UPLOAD)]);
    const multipart = await post('/v1/score', form([['image:big.png', big, 'image/png']]));
    expect(multipart.status).toBe(413);
    expect((multipart.json as ErrorDoc).error.code).toBe('E_TOO_LARGE');
    const raw = await post('/v1/score', big, { 'content-type': 'image/png' });
    expect(raw.status).toBe(413);
    expect((raw.json as ErrorDoc).error.code).toBe('E_TOO_LARGE');
  });

  it('refuses a decompression bomb from its header, before decoding', async () => {
    const bomb = bombPng(20_000);
    expect(bomb.length).toBeLessThan(MAX_UPLOAD);
    const before = process.memoryUsage().rss;
    const r = await post('/v1/score', form([['image:bomb.png', bomb, 'image/png']]));
    expect(r.status).toBe(413);
    expect((r.json as ErrorDoc).error.code).toBe('E_TOO_MANY_PIXELS');
    expect((r.json as ErrorDoc).error.message).toContain('20000×20000');
    // 400 M pixels would be 1.2 GB as RGB: nothing of the kind was allocated.
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
  });

  it('serves concurrent requests, each with its own answer', async () => {
    const images: [string, Buffer, string][] = [
      ['chelsea.png', CHELSEA, 'image/png'],
      ['rocket.jpg', ROCKET, 'image/jpeg'],
      ['camera.png', CAMERA, 'image/png'],
    ];
    const expected = await Promise.all(images.map(([, b]) => library(b, { attributes: 'look', plus: false })));
    const requests = Array.from({ length: 12 }, (_, i) => {
      const [name, bytes, type] = images[i % 3]!;
      return post('/v1/score?attributes=look&plus=false', form([[`image:${name}`, bytes, type]])).then((r) => ({ i, r }));
    });
    for (const { i, r } of await Promise.all(requests)) {
      expect(r.status).toBe(200);
      const row = (r.json as ScoreDoc).images[0]!;
      expect(row.file).toBe(images[i % 3]![0]);
      close(row.scores!, expected[i % 3]!);
    }
  });

  it('embeds texts (JSON) and images (multipart) as the library does', async () => {
    const texts = await post('/v1/embed', JSON.stringify({ text: ['a photo of a cat', 'Good photo.'] }), { 'content-type': 'application/json' });
    expect(texts.status).toBe(200);
    const t = texts.json as { dim: number; texts: { text: string; features: number[] }[]; images: unknown[] };
    expect(t.images).toEqual([]);
    const lib = await iqa.embedText(['a photo of a cat', 'Good photo.']);
    expect(t.dim).toBe(lib[0]!.length);
    t.texts.forEach((row, i) => row.features.forEach((v, k) => expect(Math.abs(v - lib[i]![k]!)).toBeLessThan(1e-6)));

    const images = await post('/v1/embed?text=hello', form([['image:chelsea.png', CHELSEA, 'image/png']]));
    expect(images.status).toBe(200);
    const doc = images.json as { images: { file: string; dim: number; features: number[] }[]; texts: { text: string }[] };
    expect(doc.texts.map((x) => x.text)).toEqual(['hello']);
    const f = await iqa.embedImage(CHELSEA);
    expect(doc.images[0]!.file).toBe('chelsea.png');
    doc.images[0]!.features.forEach((v, k) => expect(Math.abs(v - f[k]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(f[k]!))));
    const nothing = await post('/v1/embed', JSON.stringify({}), { 'content-type': 'application/json' });
    expect(nothing.status).toBe(400);
  });

  it('describes the model, the limits, the registry and the prompts', async () => {
    const models = (await (await fetch(`${url}/v1/models`)).json()) as {
      model: { name: string; family: string; maps: boolean; plus: string | null; embedDim: number };
      limits: { maxUploadBytes: number; auth: boolean; urlFetch: boolean };
      registry: { name: string; kind: string }[];
    };
    const { embed_dim: embedDim } = (JSON.parse(readFileSync(fixture('tiny-rn', 'expected.json'), 'utf8')) as { config: { embed_dim: number } }).config;
    expect(models.model).toMatchObject({ name: 'model.safetensors', family: 'resnet', maps: true, plus: 'clipiqa+-ctx.pth', embedDim });
    expect(models.limits).toMatchObject({ maxUploadBytes: MAX_UPLOAD, auth: false, urlFetch: false });
    expect(models.registry.some((e) => e.name === 'RN50' && e.kind === 'model')).toBe(true);
    const prompts = (await (await fetch(`${url}/v1/prompts`)).json()) as { attributes: { name: string; positive: string }[]; default: string; noisiness: string };
    expect(prompts.default).toBe('paper');
    expect(prompts.noisiness).toBe('noisy');
    expect(prompts.attributes.find((a) => a.name === 'noisiness')!.positive).toBe('Noisy photo.');
  });

  it('exposes Prometheus metrics, the OpenAPI document, and JSON 404s', async () => {
    const metrics = await (await fetch(`${url}/metrics`)).text();
    for (const name of [
      'clip_iqa_http_requests_total',
      'clip_iqa_http_request_duration_seconds_bucket',
      'clip_iqa_queue_waiting',
      'clip_iqa_queue_running',
      'clip_iqa_inference_seconds_bucket',
      'clip_iqa_ready 1',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_p99_seconds',
    ]) {
      expect(metrics).toContain(name);
    }
    expect(metrics).toMatch(/clip_iqa_http_requests_total\{method="POST",route="\/v1\/score",status="200"\} \d+/);
    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, unknown> } }>> };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/score', '/v1/embed', '/v1/models', '/v1/prompts', '/healthz', '/readyz', '/metrics']));
    expect(Object.keys(doc.paths['/v1/score']!.post!.requestBody!.content)).toEqual(expect.arrayContaining(['multipart/form-data', 'image/*']));
    const missing = await fetch(`${url}/v2/nothing`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as ErrorDoc).error.code).toBe('E_ROUTE');
  });
});
