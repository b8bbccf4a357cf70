/**
 * Issue 10's attacks on `clip-iqa serve` and the CLI, replayed against the built CLI with RN50-shaped random weights,
 * with what they cost now: status, time to the answer, and the peak resident memory of the server and its model
 * processes (summed over the process tree, sampled every 100 ms). The figures before the fixes are the issue's.
 *
 *   npm run build && npx tsc -p tsconfig.json --noEmit false --outDir .bench/serve && \
 *   node .bench/serve/scripts/attacks.js [--cases memory,deadline,sixteen,bodies,drip,cli]
 *
 * `deadline` and `sixteen` let RN50 start on a 4096² image (about 4 GB for a few seconds). Linux only (/proc).
 * Prints one JSON line per case; asserts nothing.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { type ChildServer, startChild, treeRss } from './bench-http.js';
import { ROOT, modelOptions } from './bench-models.js';

const BIN = join(ROOT, 'dist', 'cli', 'bin.js');
const MiB = 1024 * 1024;

/** Peak tree RSS above the RSS when it started, while `during` runs. */
async function peakDuring<T>(pid: number, during: () => Promise<T>): Promise<{ result: T; baseMiB: number; peakMiB: number }> {
  const base = treeRss(pid);
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, treeRss(pid))), 100);
  try {
    return { result: await during(), baseMiB: Math.round(base / MiB), peakMiB: Math.round(peak / MiB) };
  } finally {
    clearInterval(timer);
  }
}

async function serve(extra: string[]): Promise<ChildServer> {
  const m = modelOptions('rn50-random');
  return startChild([BIN, 'serve', '--port', '0', '--log-level', 'warn', '-m', m.model as string, '--vocab', m.vocab as string, ...extra]);
}

const form = (files: [string, Buffer][]): FormData => {
  const f = new FormData();
  for (const [name, bytes] of files) f.append('image', new Blob([new Uint8Array(bytes)], { type: 'image/png' }), name);
  return f;
};

async function timed(run: () => Promise<Response>): Promise<{ status: number; code?: string; seconds: number }> {
  const started = performance.now();
  const r = await run();
  const text = await r.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    /* not JSON */
  }
  return { status: r.status, code, seconds: Math.round((performance.now() - started) / 100) / 10 };
}

/** A low-entropy 4096² PNG: tens of kB that announce 16.8 million pixels. */
const bigPng = () => sharp({ create: { width: 4096, height: 4096, channels: 3, background: '#6080a0' } }).png({ compressionLevel: 9 }).toBuffer();

/** Sends a chunked multipart body of `files` × `size` bytes as fast as the server takes it; resolves with the status. */
function upload(url: string, files: number, size: number): Promise<number> {
  const boundary = 'attack';
  const chunk = Buffer.alloc(size, 1);
  return new Promise((resolve) => {
    const req = request(`${url}/v1/score`, { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, agent: false });
    let status = 0;
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      res.resume();
      res.on('end', () => resolve(status));
    });
    req.on('error', () => resolve(status));
    req.on('close', () => resolve(status));
    void (async () => {
      for (let i = 0; i < files && !req.destroyed && status === 0; i++) {
        const head = `--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="${i}.png"\r\ncontent-type: image/png\r\n\r\n`;
        if (!req.write(head)) await new Promise((r) => req.once('drain', r));
        if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
        if (!req.write('\r\n')) await new Promise((r) => req.once('drain', r));
      }
      if (!req.destroyed) req.end(`--${boundary}--\r\n`);
    })();
  });
}

const cases: Record<string, () => Promise<Record<string, unknown>>> = {
  // Finding 5: one 4096² PNG, refused from its header for its memory (a limit below its estimate).
  async memory() {
    const png = await bigPng();
    const s = await serve(['--max-image-memory', '2048']);
    try {
      const { result, baseMiB, peakMiB } = await peakDuring(s.child.pid!, () => timed(() => fetch(`${s.url}/v1/score`, { method: 'POST', body: form([['big.png', png]]) })));
      return { before: 'RSS +4 GB, 15-45 s', pngBytes: png.length, ...result, baseMiB, peakMiB };
    } finally {
      await s.stop();
    }
  },
  // Finding 5: the same image allowed to start, and stopped at the deadline; then the time until the next answer.
  async deadline() {
    const png = await bigPng();
    const s = await serve(['--max-image-memory', '8192', '--timeout', '8']);
    try {
      const { result, baseMiB, peakMiB } = await peakDuring(s.child.pid!, () => timed(() => fetch(`${s.url}/v1/score`, { method: 'POST', body: form([['big.png', png]]) })));
      const started = performance.now();
      const small = await sharp(png).resize(224, 224).png().toBuffer();
      let next = 0;
      while (next !== 200) next = (await fetch(`${s.url}/v1/score?attributes=quality`, { method: 'POST', body: form([['small.png', small]]) })).status;
      const metrics = await (await fetch(`${s.url}/metrics`)).text();
      return {
        before: 'ran to the end (15-45 s) after the client got 503',
        ...result,
        baseMiB,
        peakMiB,
        nextAnswerAfterSeconds: Math.round((performance.now() - started) / 100) / 10,
        restarts: /clip_iqa_worker_restarts_total\{reason="timeout"\} (\d+)/.exec(metrics)?.[1],
      };
    } finally {
      await s.stop();
    }
  },
  // Finding 5: sixteen of them in one request.
  async sixteen() {
    const png = await bigPng();
    const s = await serve(['--max-image-memory', '8192', '--timeout', '8']);
    try {
      const files = Array.from({ length: 16 }, (_, i): [string, Buffer] => [`big-${i}.png`, png]);
      const { result, baseMiB, peakMiB } = await peakDuring(s.child.pid!, () => timed(() => fetch(`${s.url}/v1/score`, { method: 'POST', body: form(files) })));
      return { before: '16 × 15-45 s of work, RSS +4 GB', ...result, baseMiB, peakMiB };
    } finally {
      await s.stop();
    }
  },
  // Finding 6: 32 clients × 16 files × 20 MiB, chunked, at once.
  async bodies() {
    const s = await serve([]);
    try {
      const { result, baseMiB, peakMiB } = await peakDuring(s.child.pid!, () => Promise.all(Array.from({ length: 32 }, () => upload(s.url, 16, 20 * MiB))));
      const counts: Record<string, number> = {};
      for (const status of result) counts[status] = (counts[status] ?? 0) + 1;
      return { before: 'RSS 8.6 GB', statuses: counts, baseMiB, peakMiB };
    } finally {
      await s.stop();
    }
  },
  // Finding 16: a body dripped a byte every 100 ms, --timeout 6.
  async drip() {
    const s = await serve(['--timeout', '6']);
    try {
      const started = performance.now();
      const status = await new Promise<number>((resolve) => {
        const req = request(`${s.url}/v1/score`, { method: 'POST', headers: { 'content-type': 'image/png', 'content-length': '100000' }, agent: false });
        const timer = setInterval(() => req.write('x'), 100);
        req.on('response', (res) => {
          clearInterval(timer);
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', () => {
          clearInterval(timer);
          resolve(0);
        });
      });
      return { before: '408 after 63 s', status, seconds: Math.round((performance.now() - started) / 100) / 10 };
    } finally {
      await s.stop();
    }
  },
  // Finding 10: the CLI given a 16383² WebP (its header; a real one is 10 kB).
  async cli() {
    const dir = mkdtempSync(join(tmpdir(), 'clip-iqa-attack-'));
    try {
      const bits = (16383 - 1) | ((16383 - 1) << 14);
      const data = Buffer.from([0x2f, bits & 0xff, (bits >>> 8) & 0xff, (bits >>> 16) & 0xff, (bits >>> 24) & 0x0f, 0, 0, 0, 0, 0, 0, 0]);
      const chunk = Buffer.concat([Buffer.from('VP8L'), Buffer.alloc(4), data]);
      chunk.writeUInt32LE(data.length, 4);
      const riff = Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WEBP'), chunk]);
      riff.writeUInt32LE(riff.length - 8, 4);
      writeFileSync(join(dir, 'bomb.webp'), riff);
      const m = modelOptions('rn50-random');
      const started = performance.now();
      const child = spawn(process.execPath, [BIN, 'score', '-m', m.model as string, '--vocab', m.vocab as string, '--json', join(dir, 'bomb.webp')], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      let peak = 0;
      const timer = setInterval(() => (peak = Math.max(peak, treeRss(child.pid!))), 100);
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      clearInterval(timer);
      const message = (JSON.parse(out) as { images: { error?: { message: string } }[] }).images[0]?.error?.message;
      return { before: 'RSS 11 GB', code, seconds: Math.round((performance.now() - started) / 100) / 10, peakMiB: Math.round(peak / MiB), message };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

const { values } = parseArgs({ options: { cases: { type: 'string', default: Object.keys(cases).join(',') } } });
for (const name of values.cases!.split(',')) {
  const run = cases[name];
  if (!run) throw new Error(`unknown case ${name}: ${Object.keys(cases).join(', ')}`);
  console.log(JSON.stringify({ case: name, ...(await run()) }));
}
