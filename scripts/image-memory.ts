/**
 * Measures what scoring one image costs in memory, next to what src/model/memory.ts estimates: RN50- and
 * ViT-B/32-shaped random weights (bench/random-clip.ts), each size in a fresh process (onnxruntime's arenas keep
 * their peak), peak RSS (VmHWM, reset before the image) minus the RSS before it. The image is a noise PNG decoded
 * like an upload, scored with one attribute (and a map, for `maps`).
 *
 *   npm run build && npx tsc -p tsconfig.json --noEmit false --outDir .bench/serve && \
 *   node .bench/serve/scripts/image-memory.js [--cases rn50:float32:1024x1024,vitb32:float32:2048x2048:maps,…] [--threads 2]
 *
 * glibc's malloc is told to return large blocks to the system (MALLOC_MMAP_THRESHOLD_), so that memory freed while
 * the model was built is not silently reused and the difference is what the image needed. Linux only (/proc).
 * Prints a table and one JSON line per case; asserts nothing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { CONFIGS, randomClip, toSafetensors } from '../bench/random-clip.js';
import { ClipIqa } from '../src/api.js';
import { formatBytes, imageMemory } from '../src/model/memory.js';
import type { Precision } from '../src/runtime/options.js';
import { ROOT, VOCAB } from './bench-models.js';

const DEFAULT_CASES = [
  'rn50:float32:512x512',
  'rn50:float32:1024x768',
  'rn50:float32:1024x1024',
  'rn50:float32:2048x2048',
  'rn50:float32:1024x1024:maps',
  'rn50:float32:2048x2048:maps',
  'rn50:int8:1024x1024',
  'rn50:int8:2048x2048',
  'vitb32:float32:512x512',
  'vitb32:float32:1024x1024',
  'vitb32:float32:1536x1536',
  'vitb32:float32:2048x2048',
  'vitb32:int8:2048x2048',
];

interface Case {
  readonly arch: keyof typeof CONFIGS;
  readonly precision: Precision;
  readonly width: number;
  readonly height: number;
  readonly maps: boolean;
}

function parseCase(s: string): Case {
  const [arch, precision, size, maps] = s.split(':');
  const [width, height] = (size ?? '').split('x').map(Number);
  if (!(arch! in CONFIGS) || (precision !== 'float32' && precision !== 'int8') || !width || !height) throw new Error(`bad case ${s}`);
  return { arch: arch as keyof typeof CONFIGS, precision, width, height, maps: maps === 'maps' };
}

/** The random checkpoint of `arch`, written once (float16 on disk, as OpenAI's). */
function checkpoint(arch: keyof typeof CONFIGS): string {
  const file = join(ROOT, '.bench', `${arch}-random-f16.safetensors`);
  if (!existsSync(file)) {
    mkdirSync(join(ROOT, '.bench'), { recursive: true });
    writeFileSync(file, toSafetensors(randomClip(CONFIGS[arch])));
  }
  return file;
}

const status = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;

/** One case, in this (fresh) process: prints one JSON line. */
async function child(c: Case, threads: number): Promise<void> {
  const png = await sharp({ create: { width: c.width, height: c.height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
    .png({ compressionLevel: 1 })
    .toBuffer();
  const iqa = await ClipIqa.load({ model: checkpoint(c.arch), vocab: VOCAB, precision: c.precision, runtime: { threads }, decode: { limitInputPixels: false } });
  const options = { attributes: 'quality', maps: c.maps ? ['quality'] : [] };
  const side = iqa.architecture.vision.resolution;
  // Every session built and warm (and int8 calibrated) before the measurement.
  await iqa.score({ width: side, height: side, data: new Uint8Array(side * side * 3).fill(128) }, options);
  writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM
  const before = status('VmRSS');
  const started = performance.now();
  await iqa.score(png, options);
  const ms = Math.round(performance.now() - started);
  const measured = status('VmHWM') - before;
  const estimate = imageMemory(iqa.architecture, c, { precision: c.precision, maps: c.maps });
  await iqa.dispose();
  console.log(JSON.stringify({ ...c, measured, estimate, ratio: Math.round((estimate / measured) * 100) / 100, ms }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { cases: { type: 'string' }, threads: { type: 'string', default: '2' }, child: { type: 'string' } } });
  const threads = Number(values.threads);
  if (values.child) return child(parseCase(values.child), threads);
  const cases = (values.cases?.split(',') ?? DEFAULT_CASES).map(parseCase);
  for (const c of cases) checkpoint(c.arch);
  const rows: string[] = [];
  for (const c of cases) {
    const name = `${c.arch}:${c.precision}:${c.width}x${c.height}${c.maps ? ':maps' : ''}`;
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', name, '--threads', String(threads)], {
      encoding: 'utf8',
      env: { ...process.env, MALLOC_MMAP_THRESHOLD_: '65536', MALLOC_TRIM_THRESHOLD_: '0' },
    });
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    if (!line) {
      console.log(`${name}: failed (${r.status ?? r.signal})\n${r.stderr.slice(-2000)}`);
      continue;
    }
    console.log(line);
    const m = JSON.parse(line) as { measured: number; estimate: number; ratio: number; ms: number };
    rows.push(`| ${c.arch} ${c.precision}${c.maps ? ' + maps' : ''} | ${c.width}×${c.height} | ${formatBytes(m.measured)} | ${formatBytes(m.estimate)} | ${m.ratio} | ${m.ms} ms |`);
  }
  console.log(['| model | image | measured | estimate | estimate/measured | time |', '| --- | --- | --- | --- | --- | --- |', ...rows].join('\n'));
}

await main();
