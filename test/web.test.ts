/**
 * The `clip-iqa serve` web page in headless Chromium (Debian's, via playwright-core), against a real server with the
 * tiny-rn fixture model: upload photos, read the rendered scores and compare them with the library's, add an
 * antonym pair, sort by it, paint a heat map, fit a phone's screen, ask for the token when the server wants one,
 * and never load anything from anywhere but the server. Screenshots go to $CLIP_IQA_SCREENSHOTS or the temp dir.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { startServer } from '../src/server/index.js';
import { browserUnavailable, launchChromium, watchPage } from './helpers/browser.js';
import { fixture, photo, VOCAB } from './helpers/shared.js';

const MODEL = fixture('tiny-rn', 'model.safetensors');
const PHOTOS = ['chelsea.png', 'rocket.jpg', 'camera.png'] as const;
const SCREENSHOTS = process.env.CLIP_IQA_SCREENSHOTS ?? join(tmpdir(), 'clip-iqa-screenshots');
const reason = browserUnavailable();

/** The rendered and the exact value of a score on an image's card. */
async function cardScore(page: Page, file: string, name: string): Promise<{ text: string; value: number }> {
  const cell = page.locator(`.card[data-file="${file}"] [data-score="${name}"]`);
  return { text: (await cell.textContent()) ?? '', value: Number(await cell.getAttribute('data-value')) };
}

const settled = (page: Page, n: number) =>
  page.waitForFunction((count) => document.querySelectorAll('.card[data-state="done"]').length === count && !document.querySelector('.card.pending'), n);

describe.skipIf(reason)(`the web page in Chromium${reason ? ` (skipped: ${reason})` : ''}`, () => {
  let app: FastifyInstance;
  let url: string;
  let browser: Browser;
  let iqa: ClipIqa;

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    ({ app, url } = await startServer({ model: { model: MODEL, vocab: VOCAB }, port: 0 }));
    browser = await launchChromium();
    iqa = await ClipIqa.load({ model: MODEL, vocab: VOCAB });
  });
  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await iqa?.dispose();
  });

  it('scores dropped photos as the library does, with radar charts, custom pairs, sorting and heat maps', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const seen = watchPage(page);
    await page.goto(url);
    await page.waitForSelector('body[data-ready="true"]');
    await expect.poll(() => page.locator('#model').textContent()).toContain('model.safetensors');

    await page.setInputFiles('#files', PHOTOS.map((p) => photo(p)));
    await settled(page, PHOTOS.length);
    for (const p of PHOTOS) {
      const expected = (await iqa.score(readFileSync(photo(p)))).scores;
      const q = await cardScore(page, p, 'quality');
      expect(q.text).toBe(expected.quality!.toFixed(3));
      expect(Math.abs(q.value - expected.quality!)).toBeLessThanOrEqual(5e-7);
      // The radar: the paper's twelve axes, drawn by the report's radar module.
      const card = page.locator(`.card[data-file="${p}"]`);
      expect(await card.locator('svg.radar .radar-label').count()).toBe(12);
      expect(await card.locator('svg.radar title').first().textContent()).toContain(p);
    }

    // An antonym pair of one's own: only the pair is asked for, for every image.
    await page.fill('#pair-name', 'vivid');
    await page.fill('#pair-positive', 'Vivid photo.');
    await page.fill('#pair-negative', 'Dull photo.');
    await page.click('#pair button[type=submit]');
    await page.waitForFunction((n) => document.querySelectorAll('.card [data-score="vivid"]').length === n && !document.querySelector('.card.pending'), PHOTOS.length);
    const vivid = new Map<string, number>();
    for (const p of PHOTOS) {
      const expected = (await iqa.score(readFileSync(photo(p)), { attributes: [], prompts: ['vivid=Vivid photo.|Dull photo.'] })).scores.vivid!;
      const got = await cardScore(page, p, 'vivid');
      expect(Math.abs(got.value - expected)).toBeLessThanOrEqual(5e-7);
      vivid.set(p, expected);
    }

    // Sorted by the new pair, highest first, in the cards and in the side-by-side table.
    await page.selectOption('#sort', 'vivid');
    const order = [...vivid].sort((a, b) => b[1] - a[1]).map(([p]) => p);
    expect(await page.locator('.card').evaluateAll((cards) => cards.map((c) => (c as HTMLElement).dataset.file))).toEqual(order);
    expect(await page.locator('#table tbody .file').allTextContents()).toEqual(order);
    await page.click('#order');
    expect(await page.locator('.card').evaluateAll((cards) => cards.map((c) => (c as HTMLElement).dataset.file))).toEqual([...order].reverse());

    // A per-region heat map of quality over each photo (ResNet), painted in a canvas over the image.
    await page.selectOption('#heat', 'quality');
    await page.waitForFunction((n) => document.querySelectorAll('.card figure canvas').length === n, PHOTOS.length);
    const painted = await page.locator('.card figure canvas').first().evaluate((c) => {
      const canvas = c as HTMLCanvasElement;
      const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      const colours = new Set<number>();
      for (let i = 0; i < data.length; i += 4 * 97) colours.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
      return { width: canvas.width, colours: colours.size };
    });
    expect(painted.width).toBeGreaterThan(100);
    expect(painted.colours).toBeGreaterThan(20);
    await page.screenshot({ path: join(SCREENSHOTS, 'web-desktop.png'), fullPage: true });

    // A phone: one column, nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(200);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    const columns = await page.locator('.card').evaluateAll((cards) => new Set(cards.map((c) => Math.round(c.getBoundingClientRect().left))).size);
    expect(columns).toBe(1);
    await page.screenshot({ path: join(SCREENSHOTS, 'web-phone.png') });

    // Everything came from the server (blob: for the user's own photos), and the CSP was never violated.
    const origin = new URL(url).origin;
    expect(seen.requests.filter((u) => !u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:'))).toEqual([]);
    expect(seen.requests).toEqual(expect.arrayContaining([`${origin}/assets/report/radar.js`, `${origin}/assets/server/page/app.js`]));
    expect(seen.consoleErrors).toEqual([]);
    expect(seen.pageErrors).toEqual([]);
    await page.close();
  });

  it('shows what went wrong with an image on its card', async () => {
    const page = await browser.newPage();
    await page.goto(url);
    await page.waitForSelector('body[data-ready="true"]');
    await page.setInputFiles('#files', { name: 'notes.jpg', mimeType: 'image/jpeg', buffer: Buffer.from('not a photo') });
    await page.waitForSelector('.card[data-state="failed"] .error');
    expect(await page.locator('.card .error').textContent()).toMatch(/notes\.jpg: not a JPEG, PNG/);
    await page.close();
  });

  it('drops a pair the server refuses, says why, and keeps the scores it has', async () => {
    const page = await browser.newPage();
    const seen = watchPage(page);
    await page.goto(url);
    await page.waitForSelector('body[data-ready="true"]');
    await page.setInputFiles('#files', photo('chelsea.png'));
    await settled(page, 1);
    // Longer than CLIP's 77 tokens: the server answers E_TOKENIZER for the pair.
    await page.fill('#pair-name', 'wordy');
    await page.fill('#pair-positive', `${'a '.repeat(80)}photo.`);
    await page.fill('#pair-negative', 'Short.');
    await page.click('#pair button[type=submit]');
    await page.waitForSelector('#message.error:not([hidden])');
    expect(await page.locator('#message').textContent()).toMatch(/^wordy: /);
    expect(await page.locator('#pairs li').count()).toBe(0);
    expect(await page.locator('#sort option').allTextContents()).not.toContain('wordy');
    await settled(page, 1);
    expect((await cardScore(page, 'chelsea.png', 'quality')).text).toMatch(/^0\.\d{3}$/);
    // One request for the photo, one for the pair; nothing is left to ask once the pair is gone.
    expect(seen.requests.filter((u) => u.endsWith('/v1/score'))).toHaveLength(2);
    await page.close();
  });

  it('asks for the token when the server wants one', async () => {
    const guarded = await startServer({ model: { model: MODEL, vocab: VOCAB }, port: 0, token: 'page-token-1234' });
    try {
      const page = await browser.newPage();
      await page.goto(guarded.url);
      await page.waitForSelector('#token-dialog[open]');
      await page.fill('#token', 'page-token-1234');
      await page.click('#token-dialog button[value="ok"]');
      await page.waitForSelector('body[data-ready="true"]');
      await page.setInputFiles('#files', photo('chelsea.png'));
      await settled(page, 1);
      expect((await cardScore(page, 'chelsea.png', 'quality')).text).toMatch(/^0\.\d{3}$/);
      await page.close();
    } finally {
      await guarded.app.close();
    }
  });

  it('renders the API docs from the OpenAPI document', async () => {
    const page = await browser.newPage();
    const seen = watchPage(page);
    await page.goto(`${url}/docs`);
    await page.waitForSelector('.op');
    const paths = await page.locator('.op .path').allTextContents();
    expect(paths).toEqual(expect.arrayContaining(['/v1/score', '/v1/embed', '/v1/models', '/v1/prompts', '/healthz', '/readyz', '/metrics']));
    expect(await page.locator('#examples').textContent()).toContain(`curl -F image=@photo.jpg ${url}/v1/score`);
    expect(seen.consoleErrors).toEqual([]);
    await page.close();
  });
});
