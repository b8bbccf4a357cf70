/**
 * The browser build (dist/browser: clip-iqa.js + onnxruntime-web's WASM files, built by the global set-up) served from a loopback static server to headless Chromium: every fixture model loaded from a URL, every
 * fixture PNG scored with all attributes in both positional modes, CLIP-IQA+ and image features against the
 * PyTorch reference (shared/README.md's tolerances); a checkpoint given as a File; a second load read from the
 * browser's Cache Storage with no request for the weights; errors with their ClipIqaError codes.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSafetensors } from '../src/weights/safetensors.js';
import { WEIGHT_FILES } from '../src/weights/files.js';
import { browserUnavailable, launchChromium } from './helpers/browser.js';
import { FIXTURE_SETS, HAS_SHARED, deviation, repoRoot } from './helpers/shared.js';
import { type StaticServer, startStaticServer } from './helpers/static-server.js';

const reason = browserUnavailable();

/** A page with the bundle imported as a static host's page would (vitest rewrites import() inside evaluate). */
const PAGE = `<!doctype html><title>clip-iqa</title><script type="module">import * as m from '/app/clip-iqa.js'; window.clipIqa = m;</script>`;

interface Expected {
  images: string[];
  variants: Record<
    string,
    {
      attribute_names: string[];
      scores: Record<string, Record<'none' | 'interpolate', { attributes: Record<string, number>; ensemble_mean: number }>>;
      'clipiqa+': Record<string, number>;
    }
  >;
}

/** What the page computes for one model: per image and mode, the scores and the image features. */
interface PageResult {
  backend: string;
  threads: number;
  worker: boolean;
  results: { image: string; mode: 'none' | 'interpolate'; width: number; height: number; scores: Record<string, number>; features: number[] }[];
}

/** One model to check: its files as URLs under the fixture mount, and where its expectations are. */
interface Case {
  readonly set: string;
  readonly name: string;
  /** The model: a URL, or a folder's file map. */
  readonly model: string | Record<string, string>;
  readonly plus: string;
  readonly variant: string;
  readonly dir: string;
  /**
   * Through the Web Worker (the default) or in the page. Each load in a worker starts a fresh one, which compiles
   * onnxruntime-web's 28 MB WASM again (seconds on a busy CI machine), so the worker path is checked on one model
   * of each family and the rest run in the page, where the compiled module is reused: the same engine either way.
   */
  readonly worker: boolean;
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const set of FIXTURE_SETS) {
    for (const model of set.models) {
      for (const [file, variant] of [
        ['model.safetensors', 'fp32'],
        ['model.pt', 'fp32'],
        ['model-jit-fp16.pt', 'jit-fp16'],
      ] as const) {
        if (!set.has(model, file)) continue;
        const worker = set.name === 'repo' && file === 'model.safetensors';
        out.push({ set: set.name, name: `${model}/${file}`, model: `/${set.name}/${model}/${file}`, plus: `/${set.name}/${model}/clipiqa+-ctx.pth`, variant, dir: set.path(model), worker });
      }
    }
    const formats = set.path('formats');
    for (const folder of readdirSync(formats).sort()) {
      const dir = join(formats, folder);
      if (!existsSync(join(dir, 'expected.json'))) continue;
      const files = readdirSync(dir);
      const url = (f: string) => `/${set.name}/formats/${folder}/${f}`;
      const configs = files.filter((f) => f.endsWith('config.json'));
      for (const weights of WEIGHT_FILES.filter((f) => files.includes(f))) {
        const map = Object.fromEntries([weights, ...configs].map((f) => [f, url(f)]));
        out.push({ set: set.name, name: `formats/${folder} ${weights}`, model: map, plus: url('clipiqa+-ctx.pth'), variant: 'fp32', dir, worker: false });
      }
    }
  }
  return out;
}

describe.skipIf(reason)(`the browser build in Chromium${reason ? ` (skipped: ${reason})` : ''}`, () => {
  let bundle: string;
  let server: StaticServer;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    // Built by the global set-up, as `npm run build` builds it.
    bundle = join(repoRoot, 'dist', 'browser');
    const mounts: Record<string, string> = { '/app/': bundle };
    for (const set of FIXTURE_SETS) mounts[`/${set.name}/`] = set.root;
    // Cross-origin isolated, as the README asks a host to be for WASM threads.
    server = await startStaticServer({ mounts, pages: { '/': PAGE }, isolated: true });
    browser = await launchChromium();
    page = await browser.newPage();
    await page.goto(server.url('/'));
    await page.waitForFunction(() => 'clipIqa' in window);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('builds an ESM bundle with no Node built-ins, the WASM runtime and the vocabulary beside it', () => {
    const files = readdirSync(bundle);
    expect(files).toEqual(expect.arrayContaining(['clip-iqa.js', 'ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm', 'bpe_simple_vocab_16e6.txt.gz']));
    const js = readFileSync(join(bundle, 'clip-iqa.js'), 'utf8');
    expect(js).not.toMatch(/from\s*["']node:|require\(["'](fs|path|os|zlib|crypto)["']\)/);
  });

  if (!HAS_SHARED) it.skip('the shared fixture set (../shared is absent; the repository set runs)', () => undefined);

  for (const c of cases()) {
    it(`${c.set} ${c.name}: scores and features match the reference, loaded from a URL${c.worker ? ' (in the worker)' : ' (in the page)'}`, async () => {
      const expected = JSON.parse(readFileSync(join(c.dir, 'expected.json'), 'utf8')) as Expected;
      const tensors = await loadSafetensors(join(c.dir, 'expected.safetensors'));
      const imageUrls = expected.images.map((i) => `/${c.set}/images/${i}`);
      const got = await page.evaluate(
        async ({ model, plus, images, worker }) => {
          const m = (window as unknown as { clipIqa: typeof import('../src/browser/api.js') }).clipIqa;
          const iqa = await m.ClipIqa.load({ model, plus, cache: false, worker });
          const results = [];
          try {
            for (const url of images) {
              const blob = await (await fetch(url)).blob();
              for (const mode of ['none', 'interpolate'] as const) {
                const r = await iqa.score(blob, { attributes: 'all', ensemble: true, positional: mode });
                const features = Array.from(await iqa.embedImage(blob, { positional: mode }));
                results.push({ image: url.split('/').pop()!, mode, width: r.width, height: r.height, scores: r.scores, features });
              }
            }
            return { backend: iqa.backend, threads: iqa.threads, worker: iqa.worker, results };
          } finally {
            await iqa.dispose();
          }
        },
        { model: c.model, plus: c.plus, images: imageUrls, worker: c.worker },
      ) as PageResult;
      expect(got.backend).toBe('wasm'); // --disable-gpu: no WebGPU adapter, so the fallback
      expect(got.threads).toBeGreaterThanOrEqual(1);
      expect(got.worker).toBe(c.worker);
      const want = expected.variants[c.variant]!;
      expect(got.results).toHaveLength(expected.images.length * 2);
      for (const r of got.results) {
        const ref = want.scores[r.image]![r.mode];
        expect(Object.keys(r.scores)).toEqual([...want.attribute_names, 'ensemble', 'clipiqa+']);
        for (const name of want.attribute_names) expect(Math.abs(r.scores[name]! - ref.attributes[name]!), `${r.image} ${r.mode} ${name}`).toBeLessThanOrEqual(1e-4);
        expect(Math.abs(r.scores.ensemble! - ref.ensemble_mean)).toBeLessThanOrEqual(1e-4);
        expect(Math.abs(r.scores['clipiqa+']! - want['clipiqa+'][r.image]!)).toBeLessThanOrEqual(1e-4);
        const { maxDiff, maxRef } = deviation(Float32Array.from(r.features), tensors.float32(`${c.variant}/image/${r.image}/${r.mode}`));
        expect(maxDiff, `${r.image} ${r.mode} features`).toBeLessThanOrEqual(2e-4 * maxRef);
      }
    });
  }

  describe('with the repository\'s tiny-rn', () => {
    const model = '/repo/tiny-rn/model.safetensors';
    const image = '/repo/images/img1-96x80-rgb.png';
    type Api = typeof import('../src/browser/api.js');

    /** A fresh browser context (its own, empty Cache Storage) on the test page, with its requests recorded. */
    async function freshPage(): Promise<{ page: Page; requests: string[]; close: () => Promise<void> }> {
      const context = await browser.newContext();
      const p = await context.newPage();
      const requests: string[] = [];
      p.on('request', (r) => requests.push(new URL(r.url()).pathname));
      await p.goto(server.url('/'));
      await p.waitForFunction(() => 'clipIqa' in window);
      return { page: p, requests, close: () => context.close() };
    }

    it('keeps the weights in Cache Storage: a second load makes no request for them and gives the same scores', async () => {
      const { page: p, requests, close } = await freshPage();
      try {
        const run = () =>
          p.evaluate(
            async ({ model, image }) => {
              const m = (window as unknown as { clipIqa: Api }).clipIqa;
              const progress: { kind: string; cached: boolean; done: boolean }[] = [];
              // In the page, for speed (see Case.worker); the worker reads the same Cache Storage (the serve page's test).
              const iqa = await m.ClipIqa.load({ model, worker: false, onProgress: (e) => progress.push({ kind: e.kind, cached: e.cached, done: e.done }) });
              const { scores } = await iqa.score(await (await fetch(image)).blob(), { attributes: 'all' });
              await iqa.dispose();
              return { scores, progress };
            },
            { model, image },
          );
        const first = await run();
        expect(requests.filter((r) => r === model)).toHaveLength(1);
        expect(first.progress.filter((e) => e.kind === 'model' && e.done)).toEqual([{ kind: 'model', cached: false, done: true }]);
        const before = requests.length;
        const second = await run();
        const later = requests.slice(before);
        expect(later).not.toContain(model);
        expect(later).not.toContain('/app/bpe_simple_vocab_16e6.txt.gz');
        expect(second.progress.filter((e) => e.done).every((e) => e.cached)).toBe(true);
        expect(second.scores).toEqual(first.scores);
        // Cleared, the next load downloads again.
        await p.evaluate(() => (window as unknown as { clipIqa: Api }).clipIqa.clearCache());
        const after = requests.length;
        await run();
        expect(requests.slice(after)).toContain(model);
      } finally {
        await close();
      }
    });

    it('takes the checkpoint as a File (a user picks one), and images as Blob, ImageBitmap, ImageData, canvas, <img> and {width, height, data}', async () => {
      const got = await page.evaluate(
        async ({ model, image }) => {
          const m = (window as unknown as { clipIqa: Api }).clipIqa;
          const file = new File([await (await fetch(model)).arrayBuffer()], 'picked.safetensors');
          const iqa = await m.ClipIqa.load({ model: file, cache: false, worker: false });
          try {
            const blob = await (await fetch(image)).blob();
            const bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
            const canvas = document.createElement('canvas');
            canvas.width = bitmap.width;
            canvas.height = bitmap.height;
            const ctx = canvas.getContext('2d')!;
            ctx.drawImage(bitmap, 0, 0);
            const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
            const img = new Image();
            img.src = image;
            await img.decode();
            const rgb = new Uint8Array((data.data.length / 4) * 3);
            for (let i = 0, j = 0; i < data.data.length; i += 4, j += 3) rgb.set(data.data.subarray(i, i + 3), j);
            const inputs = { blob, file: new File([blob], 'photo.png'), bitmap, data, canvas, img, raw: { width: data.width, height: data.height, data: rgb } };
            const out: Record<string, { source: string; quality: number }> = {};
            for (const [k, v] of Object.entries(inputs)) {
              const r = await iqa.score(v, { attributes: 'quality' });
              out[k] = { source: r.source, quality: r.scores.quality! };
            }
            return { name: iqa.name, out };
          } finally {
            await iqa.dispose();
          }
        },
        { model, image },
      );
      expect(got.name).toBe('picked.safetensors');
      const expected = JSON.parse(readFileSync(join(FIXTURE_SETS[0]!.path('tiny-rn'), 'expected.json'), 'utf8')) as Expected;
      const want = expected.variants.fp32!.scores['img1-96x80-rgb.png']!.none.attributes.quality!;
      for (const [k, v] of Object.entries(got.out)) expect(Math.abs(v.quality - want), k).toBeLessThanOrEqual(1e-4);
      expect(got.out.file!.source).toBe('photo.png');
      expect(got.out.blob!.source).toBe('<image>');
    });

    it.each([true, false])('computes score maps, batches with scoreMany (a bad image reported, the rest scored) and text embeddings (worker: %s)', async (worker) => {
      const got = await page.evaluate(
        async ({ model, image, worker }) => {
          const m = (window as unknown as { clipIqa: Api }).clipIqa;
          const iqa = await m.ClipIqa.load({ model, cache: false, worker });
          try {
            const blob = await (await fetch(image)).blob();
            const maps = await iqa.scoreMaps(blob, ['quality', 'sharpness']);
            const results = [];
            for await (const r of iqa.scoreMany([blob, new Blob(['not an image'], { type: 'text/plain' }), blob], { attributes: 'quality' })) {
              results.push(r.ok ? { ok: true, quality: r.scores.quality } : { ok: false, code: r.error.code, message: r.error.message });
            }
            const text = await iqa.embedText(['Good photo.', 'Bad photo.']);
            return { maps: maps.map((x) => ({ name: x.name, width: x.width, height: x.height, n: x.scores.length })), results, text: text.map((t) => t.length), dim: iqa.architecture.embedDim, worker: iqa.worker };
          } finally {
            await iqa.dispose();
          }
        },
        { model, image, worker },
      );
      expect(got.worker).toBe(worker);
      expect(got.maps.map((x) => x.name)).toEqual(['quality', 'sharpness']);
      for (const x of got.maps) expect(x.n).toBe(x.width * x.height);
      expect(got.results.map((r) => r.ok)).toEqual([true, false, true]);
      expect(got.results[1]).toMatchObject({ code: 'E_IMAGE' });
      expect(got.results[0]!.quality).toBe(got.results[2]!.quality);
      expect(got.text).toEqual([got.dim, got.dim]);
    });

    it('fails with ClipIqaError codes: a missing model URL, a file that is no checkpoint, bad options', async () => {
      const got = await page.evaluate(async () => {
        const m = (window as unknown as { clipIqa: Api }).clipIqa;
        const codes: Record<string, string> = {};
        const attempt = async (name: string, f: () => Promise<unknown>) => {
          try {
            await f();
            codes[name] = 'no error';
          } catch (e) {
            codes[name] = `${(e as { code?: string }).code}: ${(e as Error).message}`;
          }
        };
        await attempt('missing', () => m.ClipIqa.load({ model: '/repo/tiny-rn/nothing.safetensors', cache: false }));
        await attempt('garbage', () => m.ClipIqa.load({ model: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), cache: false }));
        await attempt('option', () => m.ClipIqa.load({ model: '/repo/tiny-rn/model.safetensors', positional: 'sideways' as never }));
        await attempt('unknown', () => m.ClipIqa.load({ model: '/repo/tiny-rn/model.safetensors', modle: 1 } as never));
        await attempt('int8', () => m.ClipIqa.load({ model: '/repo/tiny-rn/model.safetensors', runtime: { precision: 'int8' } }));
        return codes;
      });
      expect(got.missing).toMatch(/^E_DOWNLOAD: .*nothing\.safetensors.*404/);
      expect(got.garbage).toMatch(/^E_WEIGHTS_FORMAT: /);
      expect(got.option).toMatch(/^E_OPTION: positional/);
      expect(got.unknown).toMatch(/^E_OPTION: .*modle/);
      expect(got.int8).toMatch(/^E_OPTION: precision 'int8'/);
    });
  });
});
