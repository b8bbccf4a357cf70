/**
 * The browser build (dist/browser: clip-iqa.js + onnxruntime-web's WASM files), built afresh into a temporary folder
 * and served from a loopback static server to headless Chromium: every fixture model loaded from a URL, every
 * fixture PNG scored with all attributes in both positional modes, CLIP-IQA+ and image features against the
 * PyTorch reference (shared/README.md's tolerances); a checkpoint given as a File; a second load read from the
 * browser's Cache Storage with no request for the weights; errors with their ClipIqaError codes.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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
        out.push({ set: set.name, name: `${model}/${file}`, model: `/${set.name}/${model}/${file}`, plus: `/${set.name}/${model}/clipiqa+-ctx.pth`, variant, dir: set.path(model) });
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
        out.push({ set: set.name, name: `formats/${folder} ${weights}`, model: map, plus: url('clipiqa+-ctx.pth'), variant: 'fp32', dir });
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
    bundle = await mkdtemp(join(tmpdir(), 'clip-iqa-browser-'));
    execFileSync(process.execPath, [join(repoRoot, 'scripts', 'build-browser.mjs'), bundle], { stdio: 'pipe' });
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
    if (bundle) await rm(bundle, { recursive: true, force: true });
  });

  it('builds an ESM bundle with no Node built-ins, the WASM runtime and the vocabulary beside it', () => {
    const files = readdirSync(bundle);
    expect(files).toEqual(expect.arrayContaining(['clip-iqa.js', 'ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm', 'bpe_simple_vocab_16e6.txt.gz']));
    const js = readFileSync(join(bundle, 'clip-iqa.js'), 'utf8');
    expect(js).not.toMatch(/from\s*["']node:|require\(["'](fs|path|os|zlib|crypto)["']\)/);
  });

  if (!HAS_SHARED) it.skip('the shared fixture set (../shared is absent; the repository set runs)', () => undefined);

  for (const c of cases()) {
    it(`${c.set} ${c.name}: scores and features match the reference, loaded from a URL`, async () => {
      const expected = JSON.parse(readFileSync(join(c.dir, 'expected.json'), 'utf8')) as Expected;
      const tensors = await loadSafetensors(join(c.dir, 'expected.safetensors'));
      const imageUrls = expected.images.map((i) => `/${c.set}/images/${i}`);
      const got = await page.evaluate(
        async ({ model, plus, images }) => {
          const m = (window as unknown as { clipIqa: typeof import('../src/browser/api.js') }).clipIqa;
          const iqa = await m.ClipIqa.load({ model, plus, cache: false });
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
            return { backend: iqa.backend, threads: iqa.threads, results };
          } finally {
            await iqa.dispose();
          }
        },
        { model: c.model, plus: c.plus, images: imageUrls },
      ) as PageResult;
      expect(got.backend).toBe('wasm'); // --disable-gpu: no WebGPU adapter, so the fallback
      expect(got.threads).toBeGreaterThanOrEqual(1);
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
});
