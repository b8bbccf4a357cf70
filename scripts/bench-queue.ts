/**
 * What the queue costs and how far it goes, on this machine:
 *
 * - images/s of plain `clip-iqa score` against `clip-iqa worker`s (1 worker with every core; 2 workers with half
 *   each) on the same N images, with the same model: RN50-shaped random weights (real RN50 arithmetic, no download;
 *   the scores mean nothing), 512×384 JPEGs made from the repository's photographs. Rates are steady-state: from the
 *   first result to the last (model loading and process start left out, for both);
 * - what one Redis sustains: jobs/s through BullMQ with a worker that stores a result and does nothing else
 *   (enqueue rate too), and Redis memory per waiting job and per stored result.
 *
 * It prints the figures and writes bench-results/queue.json. Nothing here is an assertion. Needs redis-server.
 *
 *   npm run build && npx tsc -p tsconfig.json --noEmit false --outDir .bench/queue && \
 *   node .bench/queue/scripts/bench-queue.js [--images 60] [--jobs 5000] [--runs 3]
 *
 * The three set-ups take turns, `runs` rounds, so that a shared machine's changing load falls on each alike; the
 * JSON has every run, the printout the median and range.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import sharp from 'sharp';
import { CONFIGS, randomClip, toSafetensors } from '../bench/random-clip.js';
import { enqueue } from '../src/queue/enqueue.js';
import { batchKeys } from '../src/queue/keys.js';
import { removeBatch } from '../src/queue/remove.js';
import { saveRow } from '../src/queue/rows.js';
import { PACKAGE } from '../src/util/package.js';
import { freePort } from '../test/helpers/free-port.js';

const { values } = parseArgs({ options: { images: { type: 'string', default: '60' }, jobs: { type: 'string', default: '5000' }, runs: { type: 'string', default: '3' }, 'redis-only': { type: 'boolean', default: false } } });
const N = Number(values.images);
const RUNS = Number(values.runs);
const JOBS = Number(values.jobs);
const ROOT = PACKAGE.root;
const BIN = join(ROOT, 'dist', 'cli', 'bin.js');
const CORES = availableParallelism();

/** Runs the CLI; `onLine` sees each stdout line with the time it came. */
function cli(args: string[], onLine?: (line: string, at: number) => void): { child: ChildProcess; done: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine?.(buf.slice(0, i), performance.now());
      buf = buf.slice(i + 1);
    }
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<number | null>((r) =>
    child.on('exit', (code) => {
      if (code !== 0 && code !== null && code !== 143) process.stderr.write(err);
      r(code);
    }),
  );
  return { child, done };
}

const rate = (n: number, ms: number) => Math.round(((n - 1) / (ms / 1000)) * 100) / 100;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'clip-iqa-bench-queue-'));
  const results: Record<string, unknown> = { images: N, cores: CORES, cpu: cpus()[0]?.model, loadavg_start: loadavg()[0] };
  let redis: ChildProcess | undefined;
  try {
    // -- model and images ----------------------------------------------------------------------------------------
    const model = join(ROOT, '.bench', 'rn50-random.safetensors');
    mkdirSync(join(ROOT, '.bench'), { recursive: true });
    if (!readdirSync(join(ROOT, '.bench')).includes('rn50-random.safetensors')) writeFileSync(model, toSafetensors(randomClip(CONFIGS.rn50), 'F32'));
    const imgs = join(dir, 'imgs');
    mkdirSync(imgs);
    const photos = readdirSync(join(ROOT, 'test', 'fixtures', 'photos')).filter((f) => /\.(png|jpg)$/.test(f));
    for (let i = 0; i < N; i++) {
      const src = sharp(join(ROOT, 'test', 'fixtures', 'photos', photos[i % photos.length]!));
      const turned = await src.rotate((i % 4) * 90).resize(512 + (i % 7), 384, { fit: 'cover' }).modulate({ hue: i * 11 }).jpeg({ quality: 90 }).toBuffer();
      writeFileSync(join(imgs, `${String(i).padStart(5, '0')}.jpg`), turned);
    }
    const score = ['-m', model, '-a', 'paper', '-q'];

    // -- Redis ---------------------------------------------------------------------------------------------------
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    mkdirSync(join(dir, 'redis'));
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', join(dir, 'redis'), '--appendonly', 'yes', '--save', ''], { stdio: 'ignore' });
    const client = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: null, retryStrategy: () => 50 });
    client.on('error', () => undefined);
    await client.ping();

    // -- plain clip-iqa score, and workers, taking turns ------------------------------------------------------------
    const runScore = async (): Promise<number> => {
      const times: number[] = [];
      const plain = cli(['score', ...score, '-f', 'jsonl', imgs], (line, at) => {
        if (line.startsWith('{"file"')) times.push(at);
      });
      await plain.done;
      return rate(times.length, times.at(-1)! - times[0]!);
    };
    let round = 0;
    const runWorkers = async (workers: number, threads: number): Promise<number> => {
      const batch = `bench-${workers}-${round++}`;
      const procs = Array.from({ length: workers }, () => cli(['worker', '--redis', url, '--batch', batch, '--threads', String(threads), '-q']));
      await enqueue({ redis: url, batch, inputs: readdirSync(imgs).map((f) => join(imgs, f)), settings: { model, attributes: 'paper' } });
      const keys = batchKeys('clip-iqa', batch);
      let r: number;
      for (;;) {
        const s = await client.hgetall(keys.stats);
        if (Number(s.scored ?? 0) + Number(s.failed ?? 0) >= N) {
          r = rate(N, Number(s.last) - Number(s.first));
          break;
        }
        await new Promise((res) => setTimeout(res, 200));
      }
      for (const p of procs) p.child.kill('SIGTERM');
      await Promise.all(procs.map((p) => p.done));
      await removeBatch({ redis: url, batch });
      return r;
    };
    const setups = [
      { key: 'score', label: `clip-iqa score (threads ${CORES})`, run: runScore },
      { key: 'worker1', label: `1 worker (threads ${CORES})`, run: () => runWorkers(1, CORES) },
      { key: 'worker2', label: `2 workers (threads ${Math.max(1, CORES / 2)} each)`, run: () => runWorkers(2, Math.max(1, CORES / 2)) },
    ];
    const runs: Record<string, number[]> = Object.fromEntries(setups.map((x) => [x.key, []]));
    for (let i = 0; i < (values['redis-only'] ? 0 : RUNS); i++) {
      for (const x of setups) {
        const r = await x.run();
        runs[x.key]!.push(r);
        console.log(`  round ${i + 1}: ${x.label}: ${r} images/s (load ${loadavg()[0]!.toFixed(1)})`);
      }
    }
    for (const x of setups) {
      const sorted = [...runs[x.key]!].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)]!;
      if (sorted.length === 0) continue;
      results[x.key] = { label: x.label, images_per_s: median, runs: runs[x.key] };
      console.log(`${x.label.padEnd(32)} ${median} images/s (median; ${sorted[0]}–${sorted.at(-1)})`);
    }

    // -- Redis alone: jobs/s with nothing to score ------------------------------------------------------------------
    await client.flushall();
    const mem0 = Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
    const inputs = Array.from({ length: JOBS }, (_, i) => `/data/photos/${String(i).padStart(8, '0')}.jpg`);
    const t0 = performance.now();
    await enqueue({ redis: url, batch: 'null', inputs });
    const enqueueMs = performance.now() - t0;
    const mem1 = Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
    const keys = batchKeys('clip-iqa', 'null');
    const conn = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: null });
    const scores = Array.from({ length: 12 }, () => 0.512345678901);
    const redisCpu = async () => {
      const info = await client.info('cpu');
      return Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]) + Number(/used_cpu_user:([\d.]+)/.exec(info)![1]);
    };
    const cpu0 = await redisCpu();
    const t1 = performance.now();
    const w = new Worker('null', async (job) => void (await saveRow(conn, keys, (job.data as { n: number }).n, { width: 512, height: 384, scores })), {
      connection: conn,
      prefix: 'clip-iqa',
      concurrency: 50,
    });
    while (Number((await client.hget(keys.stats, 'scored')) ?? 0) < JOBS) await new Promise((res) => setTimeout(res, 50));
    const nullMs = performance.now() - t1;
    const cpuSeconds = (await redisCpu()) - cpu0;
    await w.close();
    conn.disconnect();
    const mem2 = Number(/used_memory:(\d+)/.exec(await client.info('memory'))![1]);
    results.redis = {
      jobs: JOBS,
      enqueue_per_s: Math.round(JOBS / (enqueueMs / 1000)),
      jobs_per_s: Math.round(JOBS / (nullMs / 1000)),
      // Redis's own CPU time per job: what one Redis core could sustain were it the bottleneck.
      redis_cpu_ms_per_job: Math.round((cpuSeconds / JOBS) * 1e6) / 1000,
      jobs_per_redis_core_s: Math.round(JOBS / cpuSeconds),
      bytes_per_waiting_job: Math.round((mem1 - mem0) / JOBS),
      bytes_per_result: Math.round((mem2 - mem0) / JOBS),
    };
    console.log(`Redis + BullMQ, nothing scored: ${JSON.stringify(results.redis)}`);
    results.loadavg_end = loadavg()[0];
    client.disconnect();
    mkdirSync(join(ROOT, 'bench-results'), { recursive: true });
    writeFileSync(join(ROOT, 'bench-results', 'queue.json'), `${JSON.stringify(results, null, 2)}\n`);
    console.log(`load average ${results.loadavg_start as number} → ${results.loadavg_end as number}; wrote bench-results/queue.json`);
  } finally {
    redis?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
