/**
 * Scoring in the browser from the `serve` page and from a `clip-iqa site` folder, in headless Chromium: the page's
 * switch loads the server's model through GET /v1/model/browser and its versioned files (ETag, 304, immutable
 * caching), photos are scored with no upload request (asserted on the network log) and with the numbers the server
 * gives for them; the static site, served by a plain file server, scores with no server code at all.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../src/server/index.js';
import { writeSite } from '../src/server/site.js';
import { browserUnavailable, launchChromium, watchPage } from './helpers/browser.js';
import { VOCAB, fixture, photo } from './helpers/shared.js';
import { startStaticServer } from './helpers/static-server.js';

const MODEL = fixture('tiny-rn', 'model.safetensors');
const CTX = fixture('tiny-rn', 'clipiqa+-ctx.pth');
const reason = browserUnavailable();

/** All cards scored. Generous: a page's first model load compiles onnxruntime-web's WASM in a fresh worker (seconds on a busy machine). */
const settled = (page: Page, n: number) =>
  page.waitForFunction((count) => document.querySelectorAll('.card[data-state="done"]').length === count && !document.querySelector('.card.pending'), n, { timeout: 90_000 });

/** Every score value on a photo's card. */
async function cardScores(page: Page, file: string): Promise<Record<string, number>> {
  return page.evaluate((f) => {
    const out: Record<string, number> = {};
    document.querySelectorAll<HTMLElement>(`.card[data-file="${f}"] [data-score][data-value]`).forEach((el) => (out[el.dataset.score!] = Number(el.dataset.value)));
    return out;
  }, file);
}

describe.skipIf(reason)(`scoring in the browser from the serve page and a static site${reason ? ` (skipped: ${reason})` : ''}`, () => {
  let app: FastifyInstance;
  let url: string;
  let browser: Browser;

  beforeAll(async () => {
    ({ app, url } = await startServer({ model: { model: MODEL, vocab: VOCAB, plus: CTX }, port: 0 }));
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('serves the model files with an ETag, immutable caching under versioned URLs, and 304 for a match', async () => {
    const manifest = (await (await fetch(`${url}/v1/model/browser`)).json()) as { available: boolean; model: string; vocab: string; plus: string };
    expect(manifest.available).toBe(true);
    expect(manifest.model).toMatch(/^v1\/model\/files\/model\/[^/]+\/model\.safetensors$/);
    const r = await fetch(`${url}/${manifest.model}`);
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    const etag = r.headers.get('etag')!;
    expect(etag).toBeTruthy();
    expect(Buffer.from(await r.arrayBuffer()).equals(readFileSync(MODEL))).toBe(true);
    const again = await fetch(`${url}/${manifest.model}`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    expect((await fetch(`${url}/${manifest.vocab}`)).headers.get('content-type')).toBe('application/gzip');
    expect((await fetch(`${url}/v1/model/files/model/0/elsewhere.bin`)).status).toBe(404);
  });

  it('scores a photo in the page with the switch on: no upload request, the server\'s numbers', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const seen = watchPage(page);
    const posts: string[] = [];
    page.on('request', (r) => {
      if (r.method() !== 'GET') posts.push(`${r.method()} ${r.url()}`);
    });
    await page.goto(url);
    await page.waitForSelector('body[data-ready="true"]');
    await page.waitForSelector('#local-label:not([hidden])');
    await page.check('#local');
    await expect.poll(() => page.locator('#local-status').textContent(), { timeout: 60_000 }).toMatch(/^scoring in this browser \(wasm/);
    await expect.poll(() => page.locator('#limits').textContent()).toContain('nothing is uploaded');

    await page.setInputFiles('#files', [photo('chelsea.png')]);
    await settled(page, 1);
    const local = await cardScores(page, 'chelsea.png');
    expect(posts).toEqual([]);
    expect(seen.requests.filter((u) => u.includes('/v1/score'))).toEqual([]);
    expect(seen.pageErrors).toEqual([]);
    expect(seen.consoleErrors.filter((e) => !/favicon/.test(e))).toEqual([]);

    // The same photo through the server's API.
    const form = new FormData();
    form.append('attributes', 'paper');
    form.append('plus', 'true');
    form.append('image', new Blob([readFileSync(photo('chelsea.png'))]), 'chelsea.png');
    const doc = (await (await fetch(`${url}/v1/score`, { method: 'POST', body: form })).json()) as { images: { scores: Record<string, number> }[] };
    const server = doc.images[0]!.scores;
    expect(Object.keys(local).sort()).toEqual(expect.arrayContaining(['quality', 'clipiqa+']));
    for (const [name, value] of Object.entries(local)) {
      // The server rounds to 6 decimals; onnxruntime-web and -node agree to float rounding.
      expect(Math.abs(value - server[name]!), name).toBeLessThanOrEqual(1e-4);
    }
    await page.close();
  });

  it('writes a static site (clip-iqa site) that scores in the browser from a plain file server', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clip-iqa-site-'));
    try {
      const site = await writeSite(dir, { model: MODEL, vocab: VOCAB, plus: CTX });
      expect(site.files).toEqual(expect.arrayContaining(['index.html', 'v1/models', 'v1/prompts', 'v1/model/browser', 'assets/browser/clip-iqa.js', '_headers']));
      expect(readdirSync(join(dir, 'assets', 'browser'))).toContain('ort-wasm-simd-threaded.jsep.wasm');
      // Served under a sub-path, as a project page on a static host would be.
      const server = await startStaticServer({ mounts: { '/some/path/': dir } });
      try {
        const page = await browser.newPage();
        const seen = watchPage(page);
        await page.goto(server.url('/some/path/index.html'));
        await page.waitForSelector('body[data-ready="true"]');
        await expect.poll(() => page.locator('#local-status').textContent(), { timeout: 60_000 }).toMatch(/^scoring in this browser/);
        expect(await page.isChecked('#local')).toBe(true);
        await page.setInputFiles('#files', [photo('chelsea.png'), photo('camera.png')]);
        await settled(page, 2);
        const scores = await cardScores(page, 'camera.png');
        // The site names the model by its file, not by where it lay on the machine that wrote the site.
        expect(await page.locator('#model').textContent()).toMatch(/^model\.safetensors · .* · CLIP-IQA\+ \(clipiqa\+-ctx\.pth\)$/);
        expect(scores.quality).toBeGreaterThan(0);
        expect(scores.quality).toBeLessThan(1);
        expect(seen.pageErrors).toEqual([]);
        // Nothing but the site's own files was asked for.
        expect(server.requests.every((p) => p.startsWith('/some/path/'))).toBe(true);
        await page.close();
      } finally {
        await server.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
