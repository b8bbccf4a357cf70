/**
 * `npm run bench`: how fast clip-iqa is on this machine, side by side with PyTorch when it is installed.
 *
 *   npm run bench -- [--quick] [--sections towers,text,torch,e2e,coldstart] [--archs rn50,vitb32]
 *                    [--precisions float32,int8] [--threads 2] [--runs 5] [--images 12] [--out file.json] [--no-wait]
 *                    [--baseline path/to/other/dist/cli/bin.js]
 *
 * Checkpoints are RN50- and ViT-B/32-shaped with deterministic random values (same names and shapes as OpenAI's;
 * speed does not depend on the values). Measured, each as the median of `runs` timed calls after warm-up:
 *   - towers: the image tower alone at 224×224, 512×384 and 1024×768 (width×height), batch 1 and the best of a
 *     few larger batches (ms per image), float32 and int8;
 *   - text: the text tower on 2 prompts ("Good photo." / "Bad photo.") and on the 34 prompts of all 17 attributes;
 *   - torch: ../shared/ref/bench_torch.py on the same shapes (eager and traced + frozen, OpenBLAS), when Debian's
 *     PyTorch is installed, and the ratios;
 *   - e2e: the real `clip-iqa` CLI over a folder of 1024×768 JPEGs (made from ../shared/images) with a random RN50
 *     checkpoint written as safetensors: steady-state images/s, cold start (process start to the first score,
 *     model on disk, with and without the text-feature cache) and peak RSS.
 *   - coldstart: process start to the first score printed (`clip-iqa score -a quality` on one 224×224 JPEG, random
 *     checkpoints written as float32 safetensors), with nothing cached and with the caches warm (graphs, checkpoint
 *     summary, text features), and peak RSS, per architecture and precision; `clip-iqa serve` until it says ready;
 *     and `python3 -c "import torch"` measured in the same run, for scale. `--baseline` runs the same cold starts
 *     with another build's CLI too (an earlier commit's dist/cli/bin.js), for before/after figures in one run.
 * A first line measures a plain 2048³ MatMul, since on a shared machine the share of the cores one gets varies;
 * and before each measurement the bench waits (up to 30 s) for the cores to be idle (Linux; --no-wait skips it).
 * Prints a table and writes everything to bench-results/bench-<date>.json. Not a test: it asserts nothing.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { GraphBuilder } from '../src/graph/builder.js';
import { ATTRIBUTES } from '../src/iqa/prompts.js';
import { OnnxClipEncoder } from '../src/model/clip-encoder.js';
import type { PixelBatch } from '../src/model/types.js';
import type { Precision } from '../src/runtime/options.js';
import { OrtSession } from '../src/runtime/session.js';
import { float32Tensor } from '../src/runtime/tensors.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { CONFIGS, randomClip, toSafetensors } from './random-clip.js';

// -- settings -----------------------------------------------------------------------------------------------------

const here = dirname(fileURLToPath(import.meta.url)); // .bench/bench when compiled
const compiledRoot = resolve(here, '..'); // .bench
const repoRoot = resolve(compiledRoot, '..');
const shared = resolve(process.env.CLIP_IQA_SHARED ?? join(repoRoot, '..', 'shared'));

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    sections: { type: 'string', default: 'towers,text,torch,e2e,coldstart' },
    archs: { type: 'string', default: 'rn50,vitb32' },
    precisions: { type: 'string', default: 'float32,int8' },
    threads: { type: 'string', default: String(Math.min(availableParallelism(), 2)) },
    runs: { type: 'string' },
    images: { type: 'string' },
    out: { type: 'string' },
    baseline: { type: 'string' },
    'no-wait': { type: 'boolean', default: false },
  },
});
const quick = opts.quick === true;
const sections = new Set(opts.sections!.split(','));
const archs = opts.archs!.split(',') as (keyof typeof CONFIGS)[];
const precisions = opts.precisions!.split(',') as Precision[];
const threads = Number(opts.threads);
const runs = Number(opts.runs ?? (quick ? 3 : 5));
const imageCount = Number(opts.images ?? (quick ? 6 : 12));

/** Sizes as width×height, the way photographs are described (KonIQ-10k is 1024×768). */
const SIZES: readonly { label: string; width: number; height: number; batches: number[] }[] = [
  { label: '224×224', width: 224, height: 224, batches: [2, 4, 8] },
  { label: '512×384', width: 512, height: 384, batches: [2, 4] },
  { label: '1024×768', width: 1024, height: 768, batches: [2] },
];

// -- helpers ------------------------------------------------------------------------------------------------------

interface Timing {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** Share of CPU time idle over `ms` milliseconds, from /proc/stat (Linux); 1 elsewhere. */
async function idleShare(ms: number): Promise<number> {
  const read = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3]! + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = read();
    await new Promise((r) => setTimeout(r, ms));
    const b = read();
    return (b.idle - a.idle) / Math.max(1, b.total - a.total);
  } catch {
    return 1;
  }
}

let idleWaits = 0;
/**
 * On a shared machine, waits (up to 30 s) until the cores are at least 85% idle before a measurement, so that
 * another process's burst does not land in it. `--no-wait` skips this.
 */
async function waitIdle(): Promise<void> {
  if (opts['no-wait']) return;
  const end = Date.now() + 30_000;
  while (Date.now() < end) {
    if ((await idleShare(500)) >= 0.85) return;
    idleWaits++;
  }
  results.notes.push('the machine was busy for 30 s before a measurement; it went ahead anyway');
}

/** `warmup` untimed calls (the first also builds the graph), then `n` timed ones. */
async function timeit(fn: () => Promise<unknown>, n: number, warmup = 2): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn();
  await waitIdle();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  return { median: round(median(times)), min: round(Math.min(...times)), max: round(Math.max(...times)), runs: n };
}

const log = (line = '') => process.stdout.write(`${line}\n`);
const note = (line: string) => process.stderr.write(`  ${line}\n`);

function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): void {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? String(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  log(line(cells[0]!));
  log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of cells.slice(1)) log(line(r));
  log();
}

/** Deterministic pseudo-random normalised pixels. */
function pixelBatch(batch: number, height: number, width: number): PixelBatch {
  let s = 12345;
  const data = new Float32Array(batch * 3 * height * width);
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = (s / 2 ** 31 - 1) * 1.8;
  }
  return { batch, height, width, data };
}

// -- results ------------------------------------------------------------------------------------------------------

interface TowerResult {
  arch: string;
  precision: Precision;
  size: string;
  batch1: Timing;
  best: { batch: number; msPerImage: number; timing: Timing };
}
interface TorchResult {
  arch: string;
  size: string;
  batch: number;
  mode: 'eager' | 'freeze';
  median_ms: number;
  ms_per_item: number;
}
interface CliRun {
  label: string;
  images: number;
  seconds: number;
  peakRssMiB: number | null;
  exitCode: number | null;
}

interface ColdRun {
  /** `this build`, or the --baseline CLI. */
  cli: string;
  arch: string;
  precision: Precision;
  /** `nothing cached`, `caches warm` or `serve ready (caches warm)`. */
  state: string;
  /** Median over the runs, and each run. */
  seconds: number;
  all: number[];
  peakRssMiB: number | null;
}

const results = {
  date: new Date().toISOString(),
  machine: {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: round(totalmem() / 2 ** 30),
    node: process.version,
    onnxruntime: readJson(join(repoRoot, 'node_modules', 'onnxruntime-node', 'package.json'))?.version ?? 'unknown',
    platform: `${process.platform}-${process.arch}`,
  },
  settings: { threads, runs, quick, imageCount },
  matmulGflops: 0,
  towers: [] as TowerResult[],
  text: [] as { prompts: number; tokens: number; timing: Timing }[],
  torch: { available: false, note: '', version: '', results: [] as TorchResult[] },
  e2e: { runs: [] as CliRun[], summary: {} as Record<string, number | null> },
  coldstart: { runs: [] as ColdRun[], torchImport: null as { seconds: number; peakRssMiB: number | null } | null, note: '' },
  notes: [] as string[],
};

function readJson(path: string): { version?: string } | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as { version?: string };
  } catch {
    return undefined;
  }
}

// -- calibration --------------------------------------------------------------------------------------------------

/** The machine is shared: a plain 2048³ MatMul on the same threads says how much of it this run had. */
async function calibrate(): Promise<void> {
  const n = 2048;
  const b = new GraphBuilder('calibration');
  const x = b.input('x', 'float32', [n, n]);
  b.output(b.named(b.node('MatMul', [x, b.initializer(new Float32Array(n * n).fill(0.5), [n, n])]), 'y'), 'float32', [n, n]);
  const session = await OrtSession.create('calibration', b.serialize(), { threads });
  const input = float32Tensor(new Float32Array(n * n).fill(0.25), [n, n]);
  const t = await timeit(() => session.run({ x: input }), 5, 1);
  await session.dispose();
  results.matmulGflops = Math.round((2 * n ** 3) / t.min / 1e6);
  log(`${results.machine.cpu}, ${results.machine.cores} cores, node ${results.machine.node}, onnxruntime-node ${results.machine.onnxruntime}, ${threads} threads`);
  log(`ORT MatMul 2048³: ${results.matmulGflops} GFLOP/s (a check of how much of the machine this run had)`);
  log();
}

// -- towers -------------------------------------------------------------------------------------------------------

async function towers(): Promise<void> {
  for (const arch of archs) {
    const sd = randomClip(CONFIGS[arch]);
    for (const precision of precisions) {
      const encoder = OnnxClipEncoder.create(sd, { threads, precision });
      for (const size of SIZES) {
        note(`image tower ${arch} ${precision} ${size.label}…`);
        const single = pixelBatch(1, size.height, size.width);
        const batch1 = await timeit(() => encoder.encodeImages(single, 'none'), runs);
        let best = { batch: 1, msPerImage: batch1.median, timing: batch1 };
        for (const n of quick ? size.batches.slice(0, 1) : size.batches) {
          const many = pixelBatch(n, size.height, size.width);
          const t = await timeit(() => encoder.encodeImages(many, 'none'), Math.max(2, runs - 2), 1);
          if (t.median / n < best.msPerImage) best = { batch: n, msPerImage: round(t.median / n), timing: t };
        }
        results.towers.push({ arch, precision, size: size.label, batch1, best });
      }
      await encoder.dispose();
    }
  }
}

// -- text ---------------------------------------------------------------------------------------------------------

async function text(): Promise<void> {
  const sd = randomClip(CONFIGS.rn50);
  const encoder = OnnxClipEncoder.create(sd, { threads });
  const vocab = join(shared, 'clip', 'bpe_simple_vocab_16e6.txt.gz');
  const prompts2 = ['Good photo.', 'Bad photo.'];
  const prompts34 = ATTRIBUTES.flatMap((a) => [a.positive, a.negative]);
  let tokenize: (texts: string[]) => number[][];
  if (existsSync(vocab)) {
    const tokenizer = await Tokenizer.fromFile(vocab);
    tokenize = (texts) => texts.map((t) => tokenizer.tokenize(t));
  } else {
    results.notes.push(`no vocabulary at ${vocab}: text prompts are fixed token rows of the same lengths`);
    tokenize = (texts) => texts.map((t) => [49406, ...t.split(' ').map((_, i) => 320 + i), 269, 49407, ...new Array<number>(77).fill(0)].slice(0, 77));
  }
  for (const prompts of [prompts2, prompts34]) {
    note(`text tower, ${prompts.length} prompts…`);
    const rows = tokenize(prompts);
    const tokens = Math.max(...rows.map((r) => r.indexOf(49407))) + 1;
    results.text.push({ prompts: prompts.length, tokens, timing: await timeit(() => encoder.encodeTokens(rows), runs) });
  }
  await encoder.dispose();
}

// -- PyTorch ------------------------------------------------------------------------------------------------------

/** OpenBLAS for Debian's PyTorch, as ../shared/ref/bench_torch.py's docstring explains; fetched with apt-get download if absent. */
function openBlasDir(): string | undefined {
  const candidates = [process.env.CLIP_IQA_OPENBLAS, '/tmp/openblas/root/usr/lib/x86_64-linux-gnu/openblas-openmp', join(compiledRoot, 'openblas', 'root', 'usr', 'lib', 'x86_64-linux-gnu', 'openblas-openmp')];
  for (const c of candidates) if (c && existsSync(join(c, 'libblas.so.3'))) return c;
  const dir = join(compiledRoot, 'openblas');
  mkdirSync(dir, { recursive: true });
  const got = spawnSync('sh', ['-c', 'apt-get download libopenblas0-openmp && dpkg -x libopenblas0-openmp_*.deb root'], { cwd: dir, encoding: 'utf8' });
  const lib = join(dir, 'root', 'usr', 'lib', 'x86_64-linux-gnu', 'openblas-openmp');
  if (got.status === 0 && existsSync(join(lib, 'libblas.so.3'))) return lib;
  return undefined;
}

async function torch(): Promise<void> {
  const python = process.env.CLIP_IQA_PYTHON ?? '/usr/bin/python3';
  const script = join(shared, 'ref', 'bench_torch.py');
  const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (probe.status !== 0 || !existsSync(script)) {
    results.torch.note = !existsSync(script)
      ? `PyTorch comparison skipped: ${script} is missing`
      : `PyTorch comparison skipped: Debian's PyTorch is not installed (apt-get install python3-torch python3-numpy; see ../shared/README.md)`;
    log(results.torch.note);
    log();
    return;
  }
  const blas = openBlasDir();
  if (!blas) {
    results.torch.note =
      'PyTorch comparison skipped: OpenBLAS (libopenblas0-openmp) could not be found or fetched, and Debian\'s default BLAS is 5–50× slower, no fair baseline';
    log(results.torch.note);
    log();
    return;
  }
  results.torch.available = true;
  results.torch.version = probe.stdout.trim();
  const env = { ...process.env, LD_LIBRARY_PATH: blas, OPENBLAS_CORETYPE: 'SkylakeX' };
  const run = async (args: string[]): Promise<TorchResult | undefined> => {
    await waitIdle();
    const r = spawnSync(python, [script, ...args, '--threads', String(threads), '--runs', String(runs), '--json'], { encoding: 'utf8', env, cwd: dirname(script) });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as TorchResult;
    } catch {
      results.notes.push(`bench_torch.py ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
      return undefined;
    }
  };
  for (const arch of archs) {
    for (const size of SIZES) {
      for (const mode of ['eager', 'freeze'] as const) {
        note(`PyTorch ${arch} ${size.label} ${mode}…`);
        const r = await run(['--arch', arch, '--size', `${size.height}x${size.width}`, ...(mode === 'freeze' ? ['--freeze'] : [])]);
        if (r) results.torch.results.push({ arch, size: size.label, batch: 1, mode, median_ms: r.median_ms, ms_per_item: r.ms_per_item });
      }
    }
  }
  for (const n of [2, 34]) {
    note(`PyTorch text ${n} prompts…`);
    const r = await run(['--arch', 'text', '--batch', String(n)]);
    if (r) results.torch.results.push({ arch: 'text', size: `${n} prompts`, batch: n, mode: 'eager', median_ms: r.median_ms, ms_per_item: r.ms_per_item });
  }
}

// -- end to end ---------------------------------------------------------------------------------------------------

/** `count` distinct 1024×768 JPEGs made from ../shared/images (or from noise when it is missing). */
async function makeImages(dir: string, count: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const photos = existsSync(join(shared, 'images')) ? readdirSync(join(shared, 'images')).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort() : [];
  if (photos.length === 0) results.notes.push('no ../shared/images: the end-to-end JPEGs are noise');
  for (let i = 0; i < count; i++) {
    let img = photos.length
      ? sharp(join(shared, 'images', photos[i % photos.length]!)).removeAlpha().resize(1024, 768, { fit: 'cover', position: ['centre', 'north', 'south', 'east', 'west'][Math.floor(i / photos.length) % 5] })
      : sharp(Buffer.from(pixelBatch(1, 768, 1024).data.buffer).subarray(0, 1024 * 768 * 3), { raw: { width: 1024, height: 768, channels: 3 } });
    if (Math.floor(i / photos.length) % 2 === 1) img = img.flop();
    await img.jpeg({ quality: 90 }).toFile(join(dir, `photo-${String(i).padStart(3, '0')}.jpg`));
  }
}

/** Runs the compiled CLI; wall time from spawn to exit, and the child's peak RSS (via an --import hook). */
async function runCli(label: string, args: string[], env: NodeJS.ProcessEnv, images: number, record = true): Promise<CliRun> {
  const cli = join(compiledRoot, 'src', 'cli', 'bin.js');
  const hook = pathToFileURL(join(here, 'rss-hook.js')).href;
  const rssFile = join(env.CLIP_IQA_HOME!, `rss-${process.pid}-${Date.now()}.txt`);
  await waitIdle();
  const t = performance.now();
  const code = await new Promise<number | null>((res, rej) => {
    const child = spawn(process.execPath, ['--import', hook, cli, ...args], { env: { ...env, CLIP_IQA_BENCH_RSS: rssFile }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', rej);
    child.on('close', (c) => {
      if (c !== 0) results.notes.push(`${label}: clip-iqa exited with ${c}: ${err.trim().split('\n').slice(-2).join(' ')}`);
      res(c);
    });
  });
  const seconds = round((performance.now() - t) / 1000, 3);
  let peakRssMiB: number | null = null;
  try {
    peakRssMiB = round(Number(readFileSync(rssFile, 'utf8')) / 1024);
    rmSync(rssFile);
  } catch {
    /* no hook output */
  }
  const run = { label, images, seconds, peakRssMiB, exitCode: code };
  if (record) results.e2e.runs.push(run);
  return run;
}

async function e2e(): Promise<void> {
  const vocab = join(shared, 'clip', 'bpe_simple_vocab_16e6.txt.gz');
  if (!existsSync(vocab)) {
    results.notes.push(`end-to-end skipped: no vocabulary at ${vocab}`);
    return;
  }
  const tmp = mkdtempSync(join(tmpdir(), 'clip-iqa-bench-'));
  try {
    note('writing a random RN50 checkpoint and 1024×768 JPEGs…');
    const model = join(tmp, 'rn50-random.safetensors');
    writeFileSync(model, toSafetensors(randomClip(CONFIGS.rn50)));
    const all = join(tmp, 'images');
    await makeImages(all, imageCount);
    const one = join(tmp, 'one');
    await makeImages(one, 1);
    const cache = join(tmp, 'cache');
    mkdirSync(cache);
    const env = { ...process.env, CLIP_IQA_HOME: cache, CLIP_IQA_OFFLINE: '1' };
    const base = ['score', '-m', model, '--vocab', vocab, '--format', 'json', '--quiet', '--threads', String(threads)];
    const summary = results.e2e.summary;
    for (const precision of precisions) {
      const p = ['--precision', precision];
      rmSync(join(cache, 'features'), { recursive: true, force: true });
      note(`clip-iqa ${precision}: cold start…`);
      const cold = await runCli(`${precision} cold start, 1 image, empty feature cache`, [...base, ...p, '-o', join(tmp, 'out.json'), one], env, 1);
      const warm = await runCli(`${precision} cold start, 1 image, cached text features`, [...base, ...p, '-o', join(tmp, 'out.json'), one], env, 1);
      summary[`${precision}.coldStartSeconds`] = cold.seconds;
      summary[`${precision}.coldStartCachedSeconds`] = warm.seconds;
      for (const batch of precision === 'float32' || quick ? [1] : [1, 2]) {
        note(`clip-iqa ${precision} --batch ${batch}: ${imageCount} images…`);
        const many = await runCli(`${precision} ${imageCount} images, --batch ${batch}`, [...base, ...p, '--batch', String(batch), '-o', join(tmp, 'out.json'), all], env, imageCount);
        // Steady state: the extra images over the 1-image run, so start-up and first-call costs cancel.
        const rate = (imageCount - 1) / Math.max(1e-3, many.seconds - warm.seconds);
        summary[`${precision}.batch${batch}.imagesPerSecond`] = round(rate, 2);
        summary[`${precision}.batch${batch}.wallImagesPerSecond`] = round(imageCount / many.seconds, 2);
        summary[`${precision}.batch${batch}.peakRssMiB`] = many.peakRssMiB;
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// -- cold start -------------------------------------------------------------------------------------------------

/** Wall time of a process until it exits, or until `until` matches its stderr (then it is killed); with peak RSS. */
async function timeProcess(command: string, args: string[], env: NodeJS.ProcessEnv, until?: RegExp): Promise<{ seconds: number; peakRssMiB: number | null; ok: boolean; err: string }> {
  const rssFile = join(tmpdir(), `clip-iqa-rss-${process.pid}-${Date.now()}.txt`);
  await waitIdle();
  const t = performance.now();
  let seconds = 0;
  const { ok, err } = await new Promise<{ ok: boolean; err: string }>((res, rej) => {
    const child = spawn(command, args, { env: { ...env, CLIP_IQA_BENCH_RSS: rssFile }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (until?.test(err) && !seconds) {
        seconds = (performance.now() - t) / 1000;
        child.kill('SIGTERM');
      }
    });
    child.on('error', rej);
    child.on('close', (c) => {
      if (!seconds) seconds = (performance.now() - t) / 1000;
      res({ ok: until ? until.test(err) : c === 0, err });
    });
  });
  let peakRssMiB: number | null = null;
  try {
    peakRssMiB = round(Number(readFileSync(rssFile, 'utf8')) / 1024);
    rmSync(rssFile);
  } catch {
    /* no hook output (python, or killed before exit) */
  }
  return { seconds: round(seconds, 3), peakRssMiB, ok, err };
}

async function coldstart(): Promise<void> {
  const vocab = join(repoRoot, 'assets', 'bpe_simple_vocab_16e6.txt.gz');
  const clis: [string, string][] = [['this build', join(compiledRoot, 'src', 'cli', 'bin.js')]];
  if (opts.baseline) clis.push([`baseline`, resolve(opts.baseline)]);
  const hook = pathToFileURL(join(here, 'rss-hook.js')).href;
  const tmp = mkdtempSync(join(tmpdir(), 'clip-iqa-coldstart-'));
  const warmRuns = quick ? 3 : 5;
  try {
    const photo = join(tmp, 'photo-224.jpg');
    const source = existsSync(join(shared, 'images', 'astronaut.png')) ? sharp(join(shared, 'images', 'astronaut.png')) : sharp(Buffer.from(pixelBatch(1, 224, 224).data.buffer).subarray(0, 224 * 224 * 3), { raw: { width: 224, height: 224, channels: 3 } });
    await source.resize(224, 224).jpeg({ quality: 90 }).toFile(photo);
    for (const arch of archs) {
      const model = join(tmp, `${arch}.safetensors`);
      note(`cold start: writing a random ${arch} checkpoint (float32)…`);
      writeFileSync(model, toSafetensors(randomClip(CONFIGS[arch]), 'F32'));
      for (const [label, cli] of clis) for (const precision of precisions) {
        const cache = join(tmp, `cache-${arch}-${precision}`);
        const env = { ...process.env, CLIP_IQA_HOME: cache, CLIP_IQA_OFFLINE: '1' };
        const base = [...['--import', hook, cli], 'score', '-m', model, '--vocab', vocab, '-a', 'quality', '--json', '--quiet', '--threads', String(threads), '--precision', precision];
        note(`cold start ${label} ${arch} ${precision}: nothing cached…`);
        const cold = await timeProcess(process.execPath, [...base, photo], env);
        if (!cold.ok) results.notes.push(`cold start ${arch} ${precision} failed: ${cold.err.trim().split('\n').pop()}`);
        results.coldstart.runs.push({ cli: label, arch, precision, state: 'nothing cached', seconds: cold.seconds, all: [cold.seconds], peakRssMiB: cold.peakRssMiB });
        note(`cold start ${label} ${arch} ${precision}: caches warm…`);
        const warm = [];
        for (let i = 0; i < warmRuns; i++) warm.push(await timeProcess(process.execPath, [...base, photo], env));
        results.coldstart.runs.push({
          cli: label,
          arch,
          precision,
          state: 'caches warm',
          seconds: round(median(warm.map((w) => w.seconds)), 3),
          all: warm.map((w) => w.seconds),
          peakRssMiB: Math.max(...warm.map((w) => w.peakRssMiB ?? 0)) || null,
        });
        if (precision === precisions[0]) {
          note(`serve ${label} ${arch} ${precision}: until ready…`);
          const serveArgs = [...['--import', hook, cli], 'serve', '-m', model, '--vocab', vocab, '--port', '0', '--threads', String(threads), '--precision', precision, '--log-level', 'silent'];
          // The first start also computes what the server warms up (text features of every attribute, the dense graph).
          await timeProcess(process.execPath, serveArgs, env, /ready:/);
          const serve = [];
          for (let i = 0; i < Math.min(3, warmRuns); i++) serve.push(await timeProcess(process.execPath, serveArgs, env, /ready:/));
          if (!serve.every((r) => r.ok)) results.notes.push(`serve ${arch} did not say ready: ${serve.map((r) => r.err.trim().split('\n').pop()).join(' | ')}`);
          results.coldstart.runs.push({ cli: label, arch, precision, state: 'serve ready (caches warm)', seconds: round(median(serve.map((r) => r.seconds)), 3), all: serve.map((r) => r.seconds), peakRssMiB: null });
        }
        rmSync(cache, { recursive: true, force: true });
      }
      rmSync(model, { force: true });
    }
    const python = process.env.CLIP_IQA_PYTHON ?? '/usr/bin/python3';
    const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      results.coldstart.note = `python3 -c "import torch" not measured: ${python} has no torch (apt-get install python3-torch)`;
    } else {
      const times = [];
      for (let i = 0; i < warmRuns; i++) times.push(await timeProcess(python, ['-c', 'import torch'], process.env));
      results.coldstart.torchImport = { seconds: round(median(times.map((t) => t.seconds)), 3), peakRssMiB: null };
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// -- report -------------------------------------------------------------------------------------------------------

function report(): void {
  const torchMs = (arch: string, size: string, mode: 'eager' | 'freeze') =>
    results.torch.results.find((r) => r.arch === arch && r.size === size && r.mode === mode)?.ms_per_item;
  if (results.towers.length) {
    log('Image tower, ms per image (median; batch 1 and the best batch)' + (results.torch.available ? ', and PyTorch (OpenBLAS) side by side' : ''));
    const header = ['tower', 'size', 'precision', 'batch 1', 'best batch', ...(results.torch.available ? ['torch eager', 'torch frozen', '× vs frozen'] : [])];
    table(
      header,
      results.towers.map((t) => {
        const eager = torchMs(t.arch, t.size, 'eager');
        const frozen = torchMs(t.arch, t.size, 'freeze');
        return [
          t.arch,
          t.size,
          t.precision,
          t.batch1.median,
          `${t.best.msPerImage} (×${t.best.batch})`,
          ...(results.torch.available ? [eager ?? '–', frozen ?? '–', frozen ? `${round(frozen / t.batch1.median, 2)}×` : '–'] : []),
        ];
      }),
    );
  }
  if (results.text.length) {
    log('Text tower, ms per call (median)');
    table(
      ['prompts', 'tokens run', 'ms', ...(results.torch.available ? ['torch eager (77 tokens)', '× faster'] : [])],
      results.text.map((t) => {
        // Per call (all prompts), not per prompt.
        const eager = results.torch.results.find((r) => r.arch === 'text' && r.size === `${t.prompts} prompts`)?.median_ms;
        return [t.prompts, t.tokens, t.timing.median, ...(results.torch.available ? [eager ?? '–', eager ? `${round(eager / t.timing.median, 2)}×` : '–'] : [])];
      }),
    );
  }
  if (results.e2e.runs.length) {
    log(`clip-iqa CLI, end to end (random RN50 checkpoint as safetensors, ${imageCount} JPEGs of 1024×768, 12 attributes)`);
    table(
      ['run', 'seconds', 'peak RSS MiB'],
      results.e2e.runs.map((r) => [r.label, r.seconds, r.peakRssMiB ?? '–']),
    );
    const s = results.e2e.summary;
    for (const precision of precisions) {
      const rates = Object.keys(s)
        .filter((k) => k.startsWith(`${precision}.batch`) && k.endsWith('.imagesPerSecond') && !k.includes('wall'))
        .map((k) => `${k.split('.')[1]}: ${s[k]} images/s`);
      if (rates.length) log(`${precision}: steady state ${rates.join(', ')}; cold start ${s[`${precision}.coldStartSeconds`]} s (${s[`${precision}.coldStartCachedSeconds`]} s with cached text features)`);
    }
    log();
  }
  if (results.coldstart.runs.length) {
    log(`Cold start: process start → first score printed (clip-iqa score -a quality, one 224×224 JPEG; random float32 checkpoints; median of ${quick ? 3 : 5} warm runs)`);
    table(
      ['clip-iqa', 'model', 'precision', 'state', 'seconds', 'runs', 'peak RSS MiB'],
      results.coldstart.runs.map((r) => [r.cli, r.arch, r.precision, r.state, r.seconds, r.all.join(' '), r.peakRssMiB ?? '–']),
    );
    if (results.coldstart.torchImport) log(`for scale: python3 -c "import torch" took ${results.coldstart.torchImport.seconds} s (median) in this run`);
    if (results.coldstart.note) log(results.coldstart.note);
    log();
  }
  if (results.torch.note) log(results.torch.note);
  for (const n of results.notes) log(`note: ${n}`);
  if (idleWaits > 0) results.notes.push(`waited ${idleWaits / 2} s in all for the machine to be idle before measurements`);
  results.notes.push(`peak RSS of this benchmark process: ${round(process.resourceUsage().maxRSS / 1024)} MiB`);
  const outFile = resolve(opts.out ?? join(repoRoot, 'bench-results', `bench-${results.date.replace(/[:.]/g, '-')}.json`));
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
  log(`results written to ${outFile}`);
}

await calibrate();
if (sections.has('towers')) await towers();
if (sections.has('text')) await text();
if (sections.has('torch')) await torch();
if (sections.has('e2e')) await e2e();
if (sections.has('coldstart')) await coldstart();
report();
