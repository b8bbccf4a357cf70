/**
 * Milliseconds per image for RN50-shaped random weights (bench/random-clip.ts; the scores mean nothing, the
 * arithmetic is RN50's) at 224² and 512×384, 12 attributes, in Node (onnxruntime-node) and in Chromium (the browser
 * build on onnxruntime-web WASM, in its worker), each with 1 and 2 threads, on this machine. Pixels are given
 * decoded ({width, height, data}) so that both measure the same work: normalisation, the image tower, scoring.
 *
 *   npm run build && npx tsc -p tsconfig.json --noEmit false --outDir .bench/browser && \
 *   node .bench/browser/scripts/bench-browser.js [--runs 10] [--out bench-browser.json]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CONFIGS, randomClip, toSafetensors } from '../bench/random-clip.js';
import { ClipIqa } from '../src/api.js';
import { decodeImage } from '../src/image/decode.js';
import { PACKAGE } from '../src/util/package.js';
import { launchChromium } from '../test/helpers/browser.js';
import { startStaticServer } from '../test/helpers/static-server.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' }, out: { type: 'string', default: 'bench-browser.json' } } });
const RUNS = Number(values.runs);
const SIZES = [
  [224, 224],
  [512, 384],
] as const;
const THREADS = [1, 2] as const;

/** Deterministic pixels (speed does not depend on them). */
function pixels(width: number, height: number): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  let x = 12345;
  for (let i = 0; i < data.length; i++) data[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  return data;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = join(PACKAGE.root, '.bench');
mkdirSync(dir, { recursive: true });
const modelPath = join(dir, 'rn50-random-f32.safetensors');
writeFileSync(modelPath, toSafetensors(randomClip(CONFIGS.rn50), 'F32'));

interface Row {
  runtime: 'node' | 'chromium-wasm';
  threads: number;
  width: number;
  height: number;
  msPerImage: number;
  runs: number[];
}
const rows: Row[] = [];
const decoding: Record<string, unknown>[] = [];

for (const threads of THREADS) {
  const iqa = await ClipIqa.load({ model: modelPath, featureCache: false, runtime: { threads } });
  for (const [width, height] of SIZES) {
    const image = { width, height, data: pixels(width, height) };
    await iqa.score(image); // builds the sessions, computes the text features
    const runs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      await iqa.score(image);
      runs.push(performance.now() - t0);
    }
    rows.push({ runtime: 'node', threads, width, height, msPerImage: median(runs), runs });
    console.log(`node, ${threads} thread(s), ${width}×${height}: ${median(runs).toFixed(0)} ms/image`);
  }
  await iqa.dispose();
}

const PHOTOS = ['rocket.jpg', 'chelsea.png', 'camera.png'];
const photosDir = join(PACKAGE.root, 'test', 'fixtures', 'photos');
const server = await startStaticServer({
  mounts: { '/app/': join(PACKAGE.root, 'dist', 'browser'), '/model/': dir, '/photos/': photosDir },
  pages: { '/': `<!doctype html><script type="module">import * as m from '/app/clip-iqa.js'; window.clipIqa = m;</script>` },
  isolated: true,
});
const browser = await launchChromium();
try {
  for (const threads of THREADS) {
    // onnxruntime-web's thread count is set once per page: a fresh page per setting.
    const page = await browser.newPage();
    await page.goto(server.url('/'));
    await page.waitForFunction(() => 'clipIqa' in window);
    const result = await page.evaluate(
      async ({ threads, sizes, runs }) => {
        const m = (window as unknown as { clipIqa: typeof import('../src/browser/api.js') }).clipIqa;
        const iqa = await m.ClipIqa.load({ model: '/model/rn50-random-f32.safetensors', cache: false, runtime: { threads, backend: 'wasm' } });
        const out: { width: number; height: number; runs: number[] }[] = [];
        for (const [width, height] of sizes) {
          const data = new Uint8Array(width * height * 3);
          let x = 12345;
          for (let i = 0; i < data.length; i++) data[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
          const image = { width, height, data };
          await iqa.score(image);
          const times: number[] = [];
          for (let i = 0; i < runs; i++) {
            const t0 = performance.now();
            await iqa.score(image);
            times.push(performance.now() - t0);
          }
          out.push({ width, height, runs: times });
        }
        const info = { threads: iqa.threads, backend: iqa.backend, worker: iqa.worker };
        await iqa.dispose();
        return { info, out };
      },
      { threads, sizes: SIZES.map(([w, h]) => [w, h] as [number, number]), runs: RUNS },
    );
    if (result.info.threads !== threads) throw new Error(`asked for ${threads} threads, the page got ${result.info.threads} (not cross-origin isolated?)`);
    for (const r of result.out) {
      rows.push({ runtime: 'chromium-wasm', threads, width: r.width, height: r.height, msPerImage: median(r.runs), runs: r.runs });
      console.log(`chromium wasm (${result.info.worker ? 'worker' : 'page'}), ${threads} thread(s), ${r.width}×${r.height}: ${median(r.runs).toFixed(0)} ms/image`);
    }
    await page.close();
  }
  // Decoding: the browser build's createImageBitmap + canvas read-back against sharp, per ICC mode.
  const page = await browser.newPage();
  await page.goto(server.url('/'));
  for (const icc of ['convert', 'ignore'] as const) {
    for (const name of PHOTOS) {
      const got = await page.evaluate(
        async ({ url, icc }) => {
          const bitmap = await createImageBitmap(await (await fetch(url)).blob(), {
            colorSpaceConversion: icc === 'convert' ? 'default' : 'none',
            premultiplyAlpha: 'none',
            imageOrientation: 'from-image',
          });
          const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
          const ctx = canvas.getContext('2d', { willReadFrequently: true, colorSpace: 'srgb' })!;
          ctx.drawImage(bitmap, 0, 0);
          const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
          const rgb: number[] = [];
          for (let i = 0; i < rgba.length; i += 4) rgb.push(rgba[i]!, rgba[i + 1]!, rgba[i + 2]!);
          return { width: bitmap.width, height: bitmap.height, rgb };
        },
        { url: `/photos/${name}`, icc },
      );
      const ref = await decodeImage(join(photosDir, name), { icc });
      let sum = 0;
      let max = 0;
      let over2 = 0;
      for (let i = 0; i < ref.data.length; i++) {
        const d = Math.abs(got.rgb[i]! - ref.data[i]!);
        sum += d;
        max = Math.max(max, d);
        if (d > 2) over2++;
      }
      const row = { photo: name, icc, size: `${got.width}×${got.height}`, sameSize: got.width === ref.width && got.height === ref.height, meanAbs: sum / ref.data.length, maxAbs: max, shareOver2: over2 / ref.data.length };
      decoding.push(row);
      console.log(`decoding ${name} (icc ${icc}) in Chromium vs sharp: mean |Δ| ${row.meanAbs.toFixed(3)}, max ${max}, ${(100 * row.shareOver2).toFixed(2)}% of samples off by more than 2`);
    }
  }
  await page.close();
} finally {
  await browser.close();
  await server.close();
}

const doc = { about: 'ms per image (median), RN50-shaped random weights, 12 attributes, decoded pixels; decoding vs sharp', runsEach: RUNS, rows, decoding };
writeFileSync(values.out!, `${JSON.stringify(doc, null, 2)}\n`);
console.log(`wrote ${values.out}`);
