/**
 * The library's URL sources (off unless enabled, then fetched with the safeguards the server uses) and the
 * checkpoint's SHA-256 on the instance, computed once per file version and remembered under the cache root.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { fetchImageUrl } from '../src/image/fetch.js';
import { type TestServer, startServer } from './helpers/http-server.js';
import { VOCAB, fixture } from './helpers/shared.js';

const MODEL = fixture('tiny-rn', 'model.safetensors');

let server: TestServer;
let png: Buffer;

beforeAll(async () => {
  png = await sharp({ create: { width: 48, height: 40, channels: 3, background: { r: 200, g: 120, b: 40 } } }).png().toBuffer();
  server = await startServer({
    '/a.png': { body: png, headers: { 'content-type': 'image/png' } },
    '/hop': { redirect: '/a.png' },
    '/loop': { redirect: '/loop' },
    '/to-file': { redirect: 'file:///etc/passwd' },
    '/big.png': { body: Buffer.concat([png, Buffer.alloc(10_000)]) },
    '/missing': { status: 404 },
    '/slow.png': { body: png, delayMs: 2000 },
  });
});
afterAll(() => server?.close());

describe('image URLs in the library', () => {
  it('are refused with E_URL, naming the URL and the option, unless fetching is on; then scored as the bytes are', async () => {
    const off = await ClipIqa.load({ model: MODEL, vocab: VOCAB });
    const url = server.url('/a.png');
    try {
      await expect(off.score(url, { attributes: 'quality' })).rejects.toMatchObject({ code: 'E_URL', message: expect.stringMatching(/a\.png: a URL, and fetching is off; load with \{ fetch: true \}/) });
      expect(server.count('/a.png')).toBe(0);
      const want = (await off.score(png, { attributes: 'quality' })).scores.quality!;
      const on = await ClipIqa.load({ model: MODEL, vocab: VOCAB, fetch: { allowHosts: ['127.0.0.1'] } });
      try {
        const got = await on.score(server.url('/hop'), { attributes: 'quality' });
        expect(got.source).toBe(server.url('/hop'));
        expect(got.scores.quality).toBeCloseTo(want, 6);
        const results = [];
        for await (const r of on.scoreMany([url, server.url('/missing')], { attributes: 'quality' })) results.push(r);
        expect(results.map((r) => r.ok)).toEqual([true, false]);
        expect(!results[1]!.ok && results[1]!.error.code).toBe('E_FETCH');
      } finally {
        await on.dispose();
      }
    } finally {
      await off.dispose();
    }
  });

  it('are fetched with the safeguards: http(s) only on every hop, host list, redirect bound, size cap, deadline', async () => {
    const cases: [string, Parameters<typeof fetchImageUrl>[1], string, RegExp][] = [
      [server.url('/to-file'), {}, 'E_URL', /file: URLs cannot be fetched/],
      [server.url('/a.png').replace('127.0.0.1', 'localhost'), { allowHosts: ['127.0.0.1'] }, 'E_URL', /localhost:\d+ is not among the hosts/],
      [server.url('/loop'), {}, 'E_FETCH', /more than 3 redirects/],
      [server.url('/big.png'), { maxBytes: png.length + 100 }, 'E_TOO_LARGE', /over the limit/],
      [server.url('/slow.png'), { timeoutMs: 300 }, 'E_FETCH', /no complete answer within 0\.3 s/],
      ['http://user:pw@127.0.0.1/a.png', {}, 'E_URL', /credentials/],
    ];
    for (const [url, options, code, message] of cases) {
      await expect(fetchImageUrl(url, options), url).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
    }
    expect((await fetchImageUrl(server.url('/a.png'), { maxBytes: png.length })).bytes.equals(png)).toBe(true);
  });
});

describe('the model SHA-256', () => {
  it('is computed once for a local file, remembered under the cache root, and computed again when the file changes', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'clip-iqa-sha-'));
    const model = join(cacheDir, 'model.safetensors');
    copyFileSync(MODEL, model);
    const sha = createHash('sha256').update(readFileSync(model)).digest('hex');
    const load = async () => {
      const iqa = await ClipIqa.load({ model, vocab: VOCAB, hub: { cacheDir }, featureCache: false });
      await iqa.dispose();
      return iqa.modelSha256;
    };
    expect(await load()).toBe(sha);
    // A second load reads the memo instead of hashing: a planted value proves it.
    const memoPath = join(cacheDir, 'file-hashes.json');
    const memo = JSON.parse(readFileSync(memoPath, 'utf8')) as Record<string, { sha256: string }>;
    expect(Object.values(memo).map((e) => e.sha256)).toEqual([sha]);
    const planted = 'f'.repeat(64);
    for (const e of Object.values(memo)) e.sha256 = planted;
    writeFileSync(memoPath, JSON.stringify(memo));
    expect(await load()).toBe(planted);
    // Touched (another mtime): hashed again.
    utimesSync(model, new Date(), new Date(Date.now() + 5000));
    expect(await load()).toBe(sha);
  });
});
