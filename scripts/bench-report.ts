/**
 * How the HTML report scales: N photographs (default 1,000, 1024×768 JPEGs), saved results with the paper's twelve
 * scores and 1% failures, then
 *
 * - generation: `writeReport` of the built package in a child process, and `clip-iqa report results.json` through
 *   the built CLI when it has that command: wall time and peak RSS;
 * - size: the HTML file, and any thumbnail folder beside it;
 * - the page in headless Chromium (playwright-core, Debian's chromium): first contentful paint, DOMContentLoaded and
 *   load; DOM nodes and JS heap; re-sorting and filtering (ms from the event to the next painted frame); scrolling
 *   from top to bottom a viewport at a time (ms per step to the next painted frame).
 *
 * It prints the figures and writes them to bench-results/report-<label>.json. Nothing here is an assertion.
 *
 *   npm run build && npx tsc -p tsconfig.json --noEmit false --outDir .bench/report && \
 *   node .bench/report/scripts/bench-report.js [--images 1000] [--label after] [--runs 3]
 *
 * The photographs are made once (under .bench/report-images/) from ../shared/images when present, cropped, turned
 * and tinted so that no two are alike; without ../shared, from smooth random patterns.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import sharp from 'sharp';
import { ROOT, SHARED } from './bench-models.js';

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '1000' },
    label: { type: 'string', default: 'current' },
    runs: { type: 'string', default: '3' },
    chromium: { type: 'string', default: process.env.CLIP_IQA_CHROMIUM ?? '/usr/bin/chromium' },
    // Another build to measure, e.g. of the commit before a change: `git worktree add /tmp/base <commit>`, link
    // node_modules, `npx tsc -p tsconfig.build.json`, then --dist /tmp/base/dist.
    dist: { type: 'string', default: '' },
  },
});
const N = Number(values.images);
const DIST = values.dist || join(ROOT, 'dist');
const RUNS = Number(values.runs);
const WIDTH = 1024;
const HEIGHT = 768;

const PAPER: [string, string, string][] = [
  ['quality', 'Good photo.', 'Bad photo.'],
  ['brightness', 'Bright photo.', 'Dark photo.'],
  ['sharpness', 'Sharp photo.', 'Blurry photo.'],
  ['noisiness', 'Noisy photo.', 'Clean photo.'],
  ['colorfulness', 'Colorful photo.', 'Dull photo.'],
  ['contrast', 'High contrast photo.', 'Low contrast photo.'],
  ['aesthetic', 'Aesthetic photo.', 'Not aesthetic photo.'],
  ['happy', 'Happy photo.', 'Sad photo.'],
  ['natural', 'Natural photo.', 'Synthetic photo.'],
  ['new', 'New photo.', 'Old photo.'],
  ['scary', 'Scary photo.', 'Peaceful photo.'],
  ['complex', 'Complex photo.', 'Simple photo.'],
];

/** A deterministic PRNG (mulberry32), so that every run scores and draws the same. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function makePhotos(dir: string, n: number): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const files = Array.from({ length: n }, (_, i) => join(dir, `photo-${String(i).padStart(5, '0')}.jpg`));
  const sources = existsSync(join(SHARED, 'images')) ? readdirSync(join(SHARED, 'images')).map((f) => join(SHARED, 'images', f)) : [];
  let made = 0;
  for (const [i, file] of files.entries()) {
    if (existsSync(file)) continue;
    const r = random(i + 1);
    let img: ReturnType<typeof sharp>;
    if (sources.length > 0) {
      // A different crop, turn and tint of one of the photographs.
      const src = sources[i % sources.length]!;
      const zoom = 1 + r() * 1.5;
      img = sharp(src)
        .rotate([0, 90, 180, 270][Math.floor(r() * 4)])
        .resize(Math.round(WIDTH * zoom), Math.round(HEIGHT * zoom), { fit: 'cover' })
        .extract({ left: Math.floor(r() * WIDTH * (zoom - 1)), top: Math.floor(r() * HEIGHT * (zoom - 1)), width: WIDTH, height: HEIGHT })
        .modulate({ brightness: 0.7 + r() * 0.6, saturation: 0.5 + r(), hue: Math.floor(r() * 360) });
    } else {
      const small = Buffer.from(Array.from({ length: 16 * 12 * 3 }, () => Math.floor(r() * 256)));
      img = sharp(small, { raw: { width: 16, height: 12, channels: 3 } }).resize(WIDTH, HEIGHT, { kernel: 'cubic' });
    }
    await img.jpeg({ quality: 85 }).toFile(file);
    if (++made % 100 === 0) process.stderr.write(`  ${made} photographs made\n`);
  }
  return files;
}

interface Results {
  readonly header: { model: string; positional: string; prompts: Record<string, string[]>; names: string[] };
  readonly rows: ({ file: string; width: number; height: number; scores: Record<string, number> } | { file: string; error: { code: string; message: string } })[];
}

function results(files: readonly string[]): Results {
  const prompts = Object.fromEntries(PAPER.map(([n, p, q]) => [n, [p, q]]));
  const names = PAPER.map(([n]) => n);
  const rows: Results['rows'] = files.map((file, i) => {
    if (i % 100 === 99) return { file, error: { code: 'E_IMAGE', message: `${file}: the file is damaged (synthetic failure)` } };
    const r = random(1000 + i);
    return { file, width: WIDTH, height: HEIGHT, scores: Object.fromEntries(names.map((n) => [n, Math.round(r() * 1e6) / 1e6])) };
  });
  return { header: { model: 'RN50', positional: 'none', prompts, names }, rows };
}

/** Runs `node args…` and returns its wall time, CPU time (user + system, all threads), peak RSS (VmHWM) and stdout. */
function timeNode(args: readonly string[]): Promise<{ ms: number; cpuMs: number; peakKiB: number; stdout: string }> {
  const rssFile = join(ROOT, '.bench', `rss-${process.pid}.txt`);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(RSS_HOOK)}`, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, BENCH_RSS: rssFile },
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const ms = performance.now() - started;
      if (code !== 0) return reject(new Error(`node ${args.join(' ')} exited with ${code}`));
      const [peakKiB = 0, cpuMs = NaN] = readText(rssFile).split(' ').map(Number);
      rmSync(rssFile, { force: true });
      resolve({ ms, cpuMs, peakKiB, stdout });
    });
  });
}

const RSS_HOOK = `import { readFileSync, writeFileSync } from 'node:fs';
process.on('exit', () => {
  const m = /^VmHWM:\\s+(\\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  const u = process.cpuUsage();
  writeFileSync(process.env.BENCH_RSS, (m ? m[1] : '0') + ' ' + (u.user + u.system) / 1000);
});`;

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '0';
  }
}

/** Bytes of the HTML and of the thumbnail folder beside it, if the report made one. */
function reportSize(html: string): { html: number; assets: number; files: number } {
  const base = html.replace(/\.html?$/, '');
  let assets = 0;
  let files = 0;
  for (const dir of [`${base}_files`, `${base}-files`, `${base}.files`]) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir, { recursive: true, withFileTypes: true })) {
      if (!f.isFile()) continue;
      assets += statSync(join(f.parentPath, f.name)).size;
      files++;
    }
  }
  return { html: statSync(html).size, assets, files };
}

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const quantile = (xs: readonly number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};
const round = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;

/**
 * One visit of the page. Wall times on a shared machine mostly measure the neighbours; the renderer's main-thread
 * CPU time (CDP's ThreadTime) is what the page itself costs, so both are kept.
 */
interface BrowserRun {
  /** Wall: first contentful paint; the page parsed and its script run (the controls work); the load event. */
  fcpMs: number;
  domInteractiveMs: number;
  loadMs: number;
  /** Main-thread CPU of the renderer up to the load event. */
  loadCpuMs: number;
  /** Elements in the document, and DOM nodes alive in all (held by the page's script too). */
  elements: number;
  nodes: number;
  jsHeapMiB: number;
  cardsShown: number;
  /** Each action: wall ms from the event to the next painted frame, and main-thread CPU ms. */
  sort: { ms: number; cpuMs: number }[];
  filter: { ms: number; cpuMs: number }[];
  /** Scrolling down a viewport at a time (100 steps at most): wall per step, CPU for all steps. */
  scrollStepMs: number[];
  scrollCpuMs: number;
}

async function browse(file: string): Promise<BrowserRun> {
  const browser = await chromium.launch({ executablePath: values.chromium, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable');
    const metrics = async () =>
      Object.fromEntries(((await cdp.send('Performance.getMetrics')) as { metrics: { name: string; value: number }[] }).metrics.map((m) => [m.name, m.value]));
    const cpu = async () => ((await metrics()).ThreadTime ?? NaN) * 1000;
    await page.goto(`file://${file}`, { waitUntil: 'load', timeout: 300_000 });
    const timing = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
      const fcp = performance.getEntriesByName('first-contentful-paint')[0];
      return { fcp: fcp?.startTime ?? NaN, interactive: nav.domInteractive, load: nav.loadEventEnd, elements: document.getElementsByTagName('*').length };
    });
    const loaded = await metrics();

    // From an event to the next frame painted after it.
    const frameAfter = async (action: string) => {
      const before = await cpu();
      const ms = await page.evaluate(
        (code) =>
          new Promise<number>((resolve) => {
            const t0 = performance.now();
            new Function(code)();
            requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - t0)));
          }),
        action,
      );
      return { ms, cpuMs: (await cpu()) - before };
    };
    const sort = [];
    const filter = [];
    if (await page.evaluate(() => !!document.getElementById('sort-key'))) {
      for (const v of ['2', '5', 'name', '0']) {
        sort.push(await frameAfter(`const s = document.getElementById('sort-key'); s.value = ${JSON.stringify(v)}; s.dispatchEvent(new Event('change', { bubbles: true }));`));
      }
      for (const q of ['p', 'ph', 'photo-004', '']) {
        filter.push(await frameAfter(`const f = document.getElementById('filter'); f.value = ${JSON.stringify(q)}; f.dispatchEvent(new Event('input', { bubbles: true }));`));
      }
    }
    const cardsShown = await page.evaluate(() => Array.from(document.querySelectorAll('article.card')).filter((c) => (c as HTMLElement).offsetParent !== null).length);
    // Scroll down a viewport at a time (100 steps at most, about 400 cards); each step waits for its frame, with the
    // thumbnails it brings in.
    const scrollStart = await cpu();
    const scrollStepMs: number[] = await page.evaluate(async () => {
      const steps: number[] = [];
      window.scrollTo(0, 0);
      for (let guard = 0; guard < 100; guard++) {
        const before = window.scrollY;
        const t0 = performance.now();
        window.scrollBy(0, window.innerHeight);
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        steps.push(performance.now() - t0);
        if (window.scrollY === before) break;
      }
      return steps;
    });
    const scrollCpuMs = (await cpu()) - scrollStart;
    await context.close();
    process.stderr.write(
      `  browser: FCP ${round(timing.fcp)} ms, interactive ${round(timing.interactive)} ms (CPU ${round((loaded.ThreadTime ?? NaN) * 1000)} ms), sort ${sort.map((x) => `${round(x.ms)}/${round(x.cpuMs)}`).join(' ')} ms wall/CPU\n`,
    );
    return {
      fcpMs: timing.fcp,
      domInteractiveMs: timing.interactive,
      loadMs: timing.load,
      loadCpuMs: (loaded.ThreadTime ?? NaN) * 1000,
      elements: timing.elements,
      nodes: loaded.Nodes ?? NaN,
      jsHeapMiB: (loaded.JSHeapUsedSize ?? NaN) / 2 ** 20,
      cardsShown,
      sort,
      filter,
      scrollStepMs,
      scrollCpuMs,
    };
  } finally {
    await browser.close();
  }
}

function summarise(runs: readonly BrowserRun[]) {
  const med = (f: (r: BrowserRun) => number, d = 1) => round(median(runs.map(f)), d);
  const all = (f: (r: BrowserRun) => number[]) => runs.flatMap(f);
  return {
    fcpMs: med((r) => r.fcpMs),
    domInteractiveMs: med((r) => r.domInteractiveMs),
    loadMs: med((r) => r.loadMs),
    loadCpuMs: med((r) => r.loadCpuMs),
    elementsInDocument: med((r) => r.elements, 0),
    domNodesAlive: med((r) => r.nodes, 0),
    jsHeapMiB: med((r) => r.jsHeapMiB),
    cardsShownAtOnce: med((r) => r.cardsShown, 0),
    sortMedianMs: round(median(all((r) => r.sort.map((x) => x.ms)))),
    sortMedianCpuMs: round(median(all((r) => r.sort.map((x) => x.cpuMs)))),
    sortMaxMs: round(Math.max(...all((r) => r.sort.map((x) => x.ms)))),
    filterMedianMs: round(median(all((r) => r.filter.map((x) => x.ms)))),
    filterMedianCpuMs: round(median(all((r) => r.filter.map((x) => x.cpuMs)))),
    filterMaxMs: round(Math.max(...all((r) => r.filter.map((x) => x.ms)))),
    scrollSteps: med((r) => r.scrollStepMs.length, 0),
    scrollStepMedianMs: round(median(all((r) => r.scrollStepMs))),
    scrollStepP95Ms: round(quantile(all((r) => r.scrollStepMs), 0.95)),
    scrollCpuMsPerStep: med((r) => r.scrollCpuMs / Math.max(1, r.scrollStepMs.length)),
  };
}

async function main(): Promise<void> {
  const work = join(ROOT, '.bench', `report-${N}`);
  process.stderr.write(`photographs: ${N} × ${WIDTH}×${HEIGHT} JPEG in ${work}\n`);
  const files = await makePhotos(join(ROOT, '.bench', 'report-images'), N);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const { header, rows } = results(files);
  const input = join(work, 'input.json');
  writeFileSync(input, JSON.stringify({ header, rows }));
  // The saved results, as `clip-iqa score --json` writes them.
  const resultsFile = join(work, 'results.json');
  writeFileSync(
    resultsFile,
    JSON.stringify({ model: header.model, positional: header.positional, prompts: header.prompts, images: rows, summary: { images: rows.length, failed: rows.filter((r) => 'error' in r).length, seconds: 0 } }),
  );

  // 1. writeReport through the API of the built package, in a fresh process.
  const apiHtml = join(work, 'api.html');
  const apiScript = `import { readFileSync } from 'node:fs';
const { writeReport } = await import(${JSON.stringify(join(DIST, 'report', 'html.js'))});
const input = JSON.parse(readFileSync(${JSON.stringify(input)}, 'utf8'));
const t0 = performance.now();
await writeReport(${JSON.stringify(apiHtml)}, input);
console.log(JSON.stringify({ ms: performance.now() - t0 }));`;
  const api = await timeNode(['--input-type=module', '-e', apiScript]);
  const apiInner = (JSON.parse(api.stdout) as { ms: number }).ms;
  const generation: Record<string, unknown> = {
    writeReportMs: round(apiInner),
    writeReportProcessMs: round(api.ms),
    writeReportProcessCpuMs: round(api.cpuMs),
    writeReportPeakRssMiB: round(api.peakKiB / 1024),
  };
  process.stderr.write(`writeReport: ${round(apiInner)} ms (process CPU ${round(api.cpuMs)} ms), peak RSS ${round(api.peakKiB / 1024)} MiB\n`);

  // 2. `clip-iqa report` through the built CLI, when it has the command.
  const cliHtml = join(work, 'cli.html');
  const bin = join(DIST, 'cli', 'bin.js');
  let report = apiHtml;
  if (existsSync(join(DIST, 'cli', 'report.js'))) {
    const cli = await timeNode([bin, 'report', resultsFile, '-o', cliHtml]);
    generation.cliReportMs = round(cli.ms);
    generation.cliReportCpuMs = round(cli.cpuMs);
    generation.cliReportPeakRssMiB = round(cli.peakKiB / 1024);
    process.stderr.write(`clip-iqa report: ${round(cli.ms)} ms (CPU ${round(cli.cpuMs)} ms), peak RSS ${round(cli.peakKiB / 1024)} MiB\n`);
    report = cliHtml;
  }
  const size = reportSize(report);
  process.stderr.write(`report: ${round(size.html / 2 ** 20, 2)} MiB HTML, ${round(size.assets / 2 ** 20, 2)} MiB in ${size.files} files beside it\n`);

  const runs: BrowserRun[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await browse(report));
  const browser = summarise(runs);
  const out = {
    label: values.label,
    date: new Date().toISOString(),
    images: N,
    photo: `${WIDTH}×${HEIGHT} JPEG`,
    node: process.version,
    loadAverage: loadavg().map((v) => round(v, 2)),
    generation,
    size: { htmlMiB: round(size.html / 2 ** 20, 2), assetsMiB: round(size.assets / 2 ** 20, 2), assetFiles: size.files },
    browser,
  };
  mkdirSync(join(ROOT, 'bench-results'), { recursive: true });
  const target = join(ROOT, 'bench-results', `report-${values.label}.json`);
  writeFileSync(target, `${JSON.stringify(out, null, 2)}\n`);
  console.log(JSON.stringify(out, null, 2));
  process.stderr.write(`written to ${target}\n`);
}

await main();
