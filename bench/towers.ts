/**
 * Times CLIP's towers on onnxruntime with random weights of real shapes (RN50 by default).
 *
 *   npx tsc -p tsconfig.json --noEmit false --outDir .bench && node .bench/bench/towers.js \
 *     [--arch rn50|vitb32] [--threads 2] [--runs 5] [--sizes 224x224,768x1024] [--opt all|extended|basic|disabled]
 *     [--config key=value ...] [--skip-text]
 *
 * Sizes are HxW. Prints the median and range of `runs` timed calls after two warm-up calls, per image (batch 1),
 * and for the text tower on two prompts; plus the one-off cost of building and loading each graph. A first line
 * measures a plain MatMul, since on a shared machine the cores one gets vary from run to run.
 */
import { parseArgs } from 'node:util';
import { GraphBuilder } from '../src/graph/builder.js';
import { OnnxClipEncoder } from '../src/model/clip-encoder.js';
import type { GraphOptimizationLevel } from '../src/runtime/options.js';
import { OrtSession } from '../src/runtime/session.js';
import { float32Tensor } from '../src/runtime/tensors.js';
import { CONFIGS, randomClip } from './random-clip.js';

const { values } = parseArgs({
  options: {
    arch: { type: 'string', default: 'rn50' },
    threads: { type: 'string', default: '2' },
    runs: { type: 'string', default: '5' },
    sizes: { type: 'string', default: '224x224,768x1024' },
    opt: { type: 'string', default: 'all' },
    config: { type: 'string', multiple: true, default: [] },
    'skip-text': { type: 'boolean', default: false },
  },
});

const arch = values.arch as keyof typeof CONFIGS;
const runs = Number(values.runs);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function time(label: string, fn: () => Promise<unknown>): Promise<void> {
  const t0 = performance.now();
  await fn();
  const first = performance.now() - t0;
  await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  const fmt = (x: number) => x.toFixed(1);
  console.log(
    `${label.padEnd(28)} median ${fmt(median(times)).padStart(7)} ms  (min ${fmt(Math.min(...times))}, max ${fmt(Math.max(...times))}; first call incl. graph build ${fmt(first)} ms)`,
  );
}

/** The machine is shared: a plain 2048³ MatMul on the same threads says how much of it this run had. */
async function calibrate(threads: number): Promise<void> {
  const n = 2048;
  const b = new GraphBuilder('calibration');
  const x = b.input('x', 'float32', [n, n]);
  b.output(b.named(b.node('MatMul', [x, b.initializer(new Float32Array(n * n).fill(0.5), [n, n])]), 'y'), 'float32', [n, n]);
  const session = await OrtSession.create('calibration', b.serialize(), { threads });
  const input = float32Tensor(new Float32Array(n * n).fill(0.25), [n, n]);
  const times: number[] = [];
  for (let i = 0; i < 4; i++) {
    const t = performance.now();
    await session.run({ x: input });
    times.push(performance.now() - t);
  }
  await session.dispose();
  console.log(`calibration: ORT MatMul ${n}³ on ${threads} threads ${((2 * n ** 3) / Math.min(...times.slice(1)) / 1e6).toFixed(0)} GFLOP/s`);
}
await calibrate(Number(values.threads));

const sd = randomClip(CONFIGS[arch]);
const configEntries = Object.fromEntries(values.config.map((kv) => kv.split('=') as [string, string]));
const encoder = OnnxClipEncoder.create(sd, {
  threads: Number(values.threads),
  graphOptimizationLevel: values.opt as GraphOptimizationLevel,
  configEntries,
});
console.log(`${arch}, ${values.threads} threads, optimization '${values.opt}' ${JSON.stringify(configEntries)}`);

let seed = 7;
const noise = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 31) - 1);
for (const size of values.sizes.split(',')) {
  const [height, width] = size.split('x').map(Number) as [number, number];
  const pixels = { batch: 1, height, width, data: noise(3 * height * width) };
  await time(`image ${height}x${width}`, () => encoder.encodeImages(pixels, 'none'));
}
if (!values['skip-text']) {
  const rows = [886, 2103].map((id) => [49406, id, 1125, 269, 49407, ...new Array<number>(72).fill(0)]); // Good/Bad photo.
  await time('text, 2 prompts', () => encoder.encodeTokens(rows));
  // All 77 positions, as the reference computes them: an EOT index of 76 keeps every row.
  const embeddings = encoder.tokenEmbeddings(rows.flat());
  await time('text, 2 prompts, 77 tokens', () => encoder.encodeEmbeddings(embeddings, 2, [4, 76]));
}
await encoder.dispose();
