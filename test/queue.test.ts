/**
 * Scoring on many workers through Redis (BullMQ), end to end: a real redis-server (started here on a free loopback
 * port, in a temporary directory, with AOF), the built `clip-iqa` binary as workers and clients, and the tiny
 * fixture model. Workers are killed, stopped and cut off from Redis on purpose; every image must still be scored
 * exactly once, with the scores `clip-iqa score` gives the same files.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, runCli } from './helpers/cli.js';
import { type TestServer, startServer } from './helpers/http-server.js';
import { VOCAB, fixture } from './helpers/shared.js';
import { freePort } from './helpers/free-port.js';

const HAS_REDIS = spawnSync('redis-server', ['--version']).status === 0;
if (!HAS_REDIS) console.log('\n  redis-server is not installed: the queue tests are skipped (apt-get install redis-server; .ci/run installs it).\n');

const MODEL = fixture('tiny-rn', 'model.safetensors');
const SCORE = ['-m', MODEL, '--vocab', VOCAB, '-a', 'quality,sharpness'];
const COPIES = 12;

type Row = { file: string; width: number; height: number; scores: Record<string, number> } | { file: string; error: { code: string; message: string } };

let dir: string;
let url: string;
let redisProc: ChildProcess | undefined;
let port: number;
let client: Redis;
let images: string[];
let http: TestServer;

async function startRedis(): Promise<void> {
  // appendfsync always: a restart keeps every acknowledged write (production would run everysec).
  redisProc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', join(dir, 'redis'), '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], {
    stdio: 'ignore',
  });
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null });
  probe.on('error', () => undefined);
  await probe.connect().catch(() => undefined);
  await probe.ping();
  probe.disconnect();
}

async function stopRedis(): Promise<void> {
  const proc = redisProc;
  if (!proc || proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

interface Worker {
  readonly child: ChildProcess;
  stderr: string;
  readonly exited: Promise<number | null>;
  scored(): string[];
}

function startWorker(batch: string, extra: string[] = []): Worker {
  const child = spawn(process.execPath, [BIN, 'worker', '--redis', url, '--batch', batch, '--lock-seconds', '3', '--threads', '1', '-v', ...extra], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const w: Worker = {
    child,
    stderr: '',
    exited: new Promise((r) => child.on('exit', (code) => r(code))),
    scored: () => [...w.stderr.matchAll(/: scored (.+)$/gm)].map((m) => m[1]!),
  };
  child.stderr!.on('data', (d: Buffer) => (w.stderr += d.toString()));
  return w;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const queue = (...args: string[]) => runCli(['queue', ...args, '--redis', url]);

async function status(batch: string): Promise<{ total: number; scored: number; failed: number; active: number; waiting: number; finished: boolean }> {
  const r = await queue('status', '--batch', batch, '--json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as never;
}

/** Every input has its result: read straight from Redis, as polling through the CLI would cost a process each time. */
async function finished(batch: string): Promise<boolean> {
  const [stats, total] = await Promise.all([client.hgetall(`clip-iqa:${batch}:cq-stats`), client.llen(`clip-iqa:${batch}:cq-inputs`)]);
  return total > 0 && Number(stats.scored ?? 0) + Number(stats.failed ?? 0) >= total;
}

async function stopWorker(w: Worker): Promise<number | null> {
  if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
  return w.exited;
}

describe.skipIf(!HAS_REDIS)('clip-iqa queue and worker on a real Redis', () => {
  const workers: Worker[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'clip-iqa-queue-'));
    mkdirSync(join(dir, 'redis'));
    mkdirSync(join(dir, 'imgs'));
    port = await freePort();
    url = `redis://127.0.0.1:${port}`;
    await startRedis();
    client = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: null, retryStrategy: () => 100 });
    client.on('error', () => undefined);
    // ~60 jobs: the fixture images under different names, and one corrupt file among them.
    const sources = readdirSync(fixture('images')).filter((f) => f.endsWith('.png'));
    for (let i = 0; i < COPIES; i++) for (const s of sources) copyFileSync(fixture('images', s), join(dir, 'imgs', `${String(i).padStart(2, '0')}-${s}`));
    writeFileSync(join(dir, 'imgs', '05-corrupt.png'), Buffer.from('\x89PNG\r\n\x1a\nthis is not the rest of a PNG'));
    images = readdirSync(join(dir, 'imgs')).sort();
    http = await startServer();
  });

  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    client?.disconnect();
    await http?.close();
    await stopRedis();
    rmSync(dir, { recursive: true, force: true });
  });

  let reference: Map<string, Row>;

  it('three workers, one SIGKILLed mid-batch: every image scored exactly once, as clip-iqa score scores it', async () => {
    const imgs = join(dir, 'imgs');
    const add = await queue('add', '--batch', 'photos', ...SCORE, imgs);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stderr).toContain(`added ${images.length} images`);
    // Re-adding the same inputs adds nothing.
    const again = await queue('add', '--batch', 'photos', ...SCORE, imgs);
    expect(again.stderr).toContain(`added 0 images (${images.length} already there)`);
    expect((await status('photos')).waiting).toBe(images.length);
    // The same batch with other settings is refused.
    const other = await queue('add', '--batch', 'photos', ...SCORE, '-a', 'quality', imgs);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/other settings/);

    const first = startWorker('photos');
    workers.push(first);
    await until('the first worker to score 5 images', () => first.scored().length >= 5);
    first.child.kill('SIGKILL');
    await first.exited;
    // It died holding jobs: they stay active (locked) until their lock runs out and another worker takes them.
    const atKill = await status('photos');
    expect(atKill.active).toBeGreaterThan(0);
    expect(atKill.finished).toBe(false);

    const others = [startWorker('photos'), startWorker('photos')];
    workers.push(...others);
    await until('the batch to finish', () => finished('photos'), 90_000);
    const done = await status('photos');
    expect(done).toMatchObject({ total: images.length, scored: images.length - 1, failed: 1, active: 0, waiting: 0 });
    for (const w of others) expect(await stopWorker(w)).toBe(0);

    // Exactly once: every result is stored by one worker only (a job whose result is stored is never scored again).
    const scored = [first, ...others].flatMap((w) => w.scored());
    expect(new Set(scored).size).toBe(scored.length);
    expect(scored.length).toBeLessThanOrEqual(images.length - 1);
    // SIGKILL can land between a result's store and its log line, for each image the first worker had in hand
    // (--concurrency 4): those are stored (the status above counts them) but never logged.
    expect(scored.length).toBeGreaterThanOrEqual(images.length - 1 - 4);

    const out = await queue('results', '--batch', 'photos', '-f', 'json');
    expect(out.code).toBe(1); // one failed, as `score` exits
    const doc = JSON.parse(out.stdout) as { images: Row[]; summary: { scored: number; failed: number }; run: { model: string } };
    expect(doc.images.map((r) => r.file)).toEqual(images.map((f) => join(imgs, f)));
    expect(doc.summary).toMatchObject({ scored: images.length - 1, failed: 1 });
    const corrupt = doc.images.filter((r) => 'error' in r);
    expect(corrupt).toHaveLength(1);
    expect(corrupt[0]!.file).toBe(join(imgs, '05-corrupt.png'));
    expect((corrupt[0] as { error: { code: string; message: string } }).error.code).toBe('E_IMAGE');
    expect((corrupt[0] as { error: { code: string; message: string } }).error.message).toContain(join(imgs, '05-corrupt.png'));

    const plain = await runCli(['score', ...SCORE, '-q', '-f', 'json', imgs]);
    const ref = JSON.parse(plain.stdout) as { images: Row[]; run: Record<string, unknown> };
    reference = new Map(ref.images.map((r) => [r.file, r]));
    expect(doc.run).toMatchObject({ ...ref.run, created: expect.any(String) as string });
    for (const row of doc.images) {
      const want = reference.get(row.file)!;
      if ('error' in row) {
        expect(want).toMatchObject({ error: { code: 'E_IMAGE' } });
        continue;
      }
      expect(want).toMatchObject({ width: row.width, height: row.height });
      for (const [k, v] of Object.entries(row.scores)) expect(Math.abs(v - (want as { scores: Record<string, number> }).scores[k]!)).toBeLessThanOrEqual(1e-6);
    }
  });

  it('queue results in each format, parsed back; --wait on a finished batch', async () => {
    const jsonl = await queue('results', '--batch', 'photos', '-f', 'jsonl', '--wait');
    const lines = jsonl.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toHaveProperty('run');
    expect(lines[0]).toHaveProperty('prompts');
    const rows = lines.slice(1) as Row[];
    expect(rows.map((r) => r.file)).toEqual(images.map((f) => join(dir, 'imgs', f)));

    const out = join(dir, 'results.csv');
    const csv = await queue('results', '--batch', 'photos', '-o', out, '-q');
    expect(csv.code).toBe(1);
    const text = readFileSync(out, 'utf8');
    expect(text).toMatch(/^# run: /);
    const records = parse(text, { columns: true, comment: '#' }) as Record<string, string>[];
    expect(records).toHaveLength(images.length);
    for (const [i, r] of records.entries()) {
      const want = rows[i]!;
      expect(r.file).toBe(want.file);
      if ('error' in want) expect(r.error).toMatch(/^E_IMAGE: /);
      else for (const k of ['quality', 'sharpness']) expect(Math.abs(Number(r[k]) - want.scores[k]!)).toBeLessThanOrEqual(1e-6);
    }
  });

  it('a Redis restart mid-batch loses nothing (AOF)', async () => {
    const add = await queue('add', '--batch', 'restart', ...SCORE, join(dir, 'imgs'));
    expect(add.code, add.stderr).toBe(0);
    const w = startWorker('restart', ['--concurrency', '1']);
    workers.push(w);
    await until('some images scored', () => w.scored().length >= 8);
    await stopRedis();
    await new Promise((r) => setTimeout(r, 1000));
    await startRedis();
    await until('the batch to finish after the restart', () => finished('restart'), 90_000);
    expect(await status('restart')).toMatchObject({ total: images.length, scored: images.length - 1, failed: 1 });
    expect(await stopWorker(w)).toBe(0);
    const scored = w.scored();
    expect(new Set(scored).size).toBe(scored.length);
  });

  it('URLs fetched by the worker: SIGTERM finishes the job in hand; transient failures retried, a 404 fails once', async () => {
    const png = readFileSync(fixture('images', 'img0-64x64-rgb.png'));
    http.route('/slow.png', { body: png, delayMs: 2500 });
    http.route('/flaky.png', { body: png, statusSequence: [503] });
    http.route('/gone.png', { status: 404 });
    const add = await queue('add', '--batch', 'urls', ...SCORE, http.url('/slow.png'));
    expect(add.code, add.stderr).toBe(0);
    const w = startWorker('urls');
    workers.push(w);
    await until('the worker to fetch the slow image', () => http.count('/slow.png') >= 1);
    w.child.kill('SIGTERM');
    expect(await w.exited).toBe(0);
    expect(w.scored()).toEqual([http.url('/slow.png')]);
    expect(await status('urls')).toMatchObject({ total: 1, scored: 1, active: 0, finished: true });

    await queue('add', '--batch', 'urls', ...SCORE, http.url('/flaky.png'), http.url('/gone.png'));
    const w2 = startWorker('urls');
    workers.push(w2);
    const res = await queue('results', '--batch', 'urls', '--wait', '-f', 'json');
    expect(await stopWorker(w2)).toBe(0);
    const rows = (JSON.parse(res.stdout) as { images: Row[] }).images;
    expect(rows.map((r) => ('error' in r ? r.error.code : 'ok'))).toEqual(['ok', 'ok', 'E_FETCH']);
    expect(http.count('/flaky.png')).toBe(2);
    expect(http.count('/gone.png')).toBe(1);
    expect(reference.get(join(dir, 'imgs', '00-img0-64x64-rgb.png'))).toMatchObject({ scores: (rows[0] as { scores: object }).scores });
  });

  it('queue rm leaves no key of the batch', async () => {
    for (const batch of ['photos', 'restart', 'urls']) {
      const rm = await queue('rm', '--batch', batch);
      expect(rm.code, rm.stderr).toBe(0);
      expect(await client.keys(`clip-iqa:${batch}:*`)).toEqual([]);
    }
    expect(await client.smembers('clip-iqa:batches')).toEqual([]);
    const gone = await queue('status', '--batch', 'photos');
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(/no batch "photos"/);
  });

  it('a Redis that is not there is a clear error', async () => {
    const r = await runCli(['queue', 'status', '--batch', 'x', '--redis', `redis://127.0.0.1:${await freePort()}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Redis at redis:\/\/127\.0\.0\.1:\d+\/?: .*is redis-server running/);
  });
});
