/**
 * `clip-iqa serve` against hostile clients (issue 10: findings 5, 6, 10, 14, 15, 16), over real HTTP on 127.0.0.1
 * with the tiny fixture models: images refused from their header by what they would cost the model; a request's
 * deadline stopping its running images; a model process that dies; one byte budget for all bodies in flight; a
 * deadline for receiving a body; Host and Origin checks; errors in the API's shape and logged without noise; the
 * CLI's pixel limit sized to memory. Every attack here is announced, not sent: headers that claim 16383² pixels,
 * bodies that stop half-way, processes stopped with SIGSTOP; nothing large is allocated.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingHttpHeaders, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { imageMemory } from '../src/model/memory.js';
import { type ServerOptions, startServer } from '../src/server/index.js';
import type { PoolEngine } from '../src/server/pool.js';
import { BIN } from './helpers/cli.js';
import { startServer as startFileServer, type TestServer } from './helpers/http-server.js';
import { VOCAB, fixture, photo, repoRoot } from './helpers/shared.js';

const TINY_RN = fixture('tiny-rn', 'model.safetensors');
const TINY_VIT = fixture('tiny-vit', 'model.safetensors');
const CTX = fixture('tiny-rn', 'clipiqa+-ctx.pth');
const CHELSEA = readFileSync(photo('chelsea.png'));
const MiB = 1024 * 1024;

interface ErrorDoc {
  error: { code: string; message: string };
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly ms: number;
}

/**
 * One request on its own connection. The body goes in `chunks`, `everyMs` apart; it is ended only with `end`, and
 * nothing more is sent once an answer came. Resolves with the answer, or status 0 when the connection closed first.
 */
function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; chunks?: readonly Buffer[]; everyMs?: number; end?: boolean; until?: Promise<unknown> } = {},
): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve) => {
    let answered = false;
    const req = httpRequest(url, { method: options.method ?? 'POST', headers: options.headers, agent: false });
    req.on('response', (res) => {
      answered = true;
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: performance.now() - started });
        req.destroy();
      });
    });
    // Closed without an answer (or the answer lost to a reset): status 0. A promise settles once.
    const unanswered = () => {
      if (!answered) resolve({ status: 0, headers: {}, body: '', ms: performance.now() - started });
    };
    req.on('error', unanswered);
    req.on('close', unanswered);
    req.flushHeaders();
    const chunks = [...(options.chunks ?? [])];
    const next = () => {
      if (answered || req.destroyed) return;
      const chunk = chunks.shift();
      if (chunk === undefined) {
        if (options.end) req.end();
        return;
      }
      req.write(chunk);
      setTimeout(next, options.everyMs ?? 0);
    };
    next();
    void options.until?.then(() => req.destroy());
  });
}

const json = (a: Answer): ErrorDoc => JSON.parse(a.body) as ErrorDoc;

/** A multipart body: files as [file name, bytes], then `tail` (the closing boundary unless given). */
function multipart(files: readonly [string, Buffer][], boundary = 'clip-iqa-hostile', tail = `--${boundary}--\r\n`): { body: Buffer; type: string } {
  const parts = files.map(([name, bytes]) =>
    Buffer.concat([
      Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="${name}"\r\ncontent-type: image/png\r\n\r\n`),
      bytes,
      Buffer.from('\r\n'),
    ]),
  );
  return { body: Buffer.concat([...parts, Buffer.from(tail)]), type: `multipart/form-data; boundary=${boundary}` };
}

/** A lossless WebP header announcing width×height pixels, and no pixels (32 bytes): what a 10 kB 16383² WebP says. */
function webpHeader(width: number, height: number): Buffer {
  const bits = (width - 1) | ((height - 1) << 14);
  const data = Buffer.from([0x2f, bits & 0xff, (bits >>> 8) & 0xff, (bits >>> 16) & 0xff, (bits >>> 24) & 0x0f, 0, 0, 0, 0, 0, 0, 0]);
  const chunk = Buffer.concat([Buffer.from('VP8L'), Buffer.alloc(4), data]);
  chunk.writeUInt32LE(data.length, 4);
  const riff = Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WEBP'), chunk]);
  riff.writeUInt32LE(riff.length - 8, 4);
  return riff;
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const metric = async (url: string, name: string): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').pop()) : 0;
};

const score = (url: string, name = 'chelsea.png', bytes: Buffer = CHELSEA, query = 'attributes=quality') => {
  const f = new FormData();
  f.append('image', new Blob([new Uint8Array(bytes)], { type: 'image/png' }), name);
  return fetch(`${url}/v1/score?${query}`, { method: 'POST', body: f });
};

describe('clip-iqa serve against hostile clients', () => {
  const apps: FastifyInstance[] = [];
  const serve = async (options: ServerOptions) => {
    const s = await startServer({ ui: false, port: 0, ...options });
    apps.push(s.app);
    return s;
  };
  afterAll(async () => {
    for (const app of apps) await app.close();
  });

  describe('one server with small limits (model processes, tiny-rn + CLIP-IQA+)', () => {
    let app: FastifyInstance;
    let url: string;
    let files: TestServer;
    const log: Record<string, unknown>[] = [];

    beforeAll(async () => {
      files = await startFileServer({ '/cat.png': { body: CHELSEA, headers: { 'content-type': 'image/png' } } });
      ({ app, url } = await serve({
        model: { model: TINY_RN, vocab: VOCAB, plus: CTX },
        maxUploadBytes: MiB,
        maxInFlightBytes: 3 * MiB,
        maxImageMemory: 32 * MiB,
        allowUrlFetch: ['127.0.0.1'],
        logger: { level: 'info', stream: { write: (line: string) => void log.push(JSON.parse(line) as Record<string, unknown>) } },
      }));
    });
    afterAll(() => files?.close());

    it('refuses an image from its header when scoring it would take more memory than one image may (5)', async () => {
      const big = await sharp({ create: { width: 2000, height: 2000, channels: 3, background: '#808080' } }).png().toBuffer();
      expect(big.length).toBeLessThan(100_000);
      const before = await metric(url, 'clip_iqa_inference_seconds_count');
      const r = await score(url, 'big.png', big);
      expect(r.status).toBe(413);
      const { error } = (await r.json()) as ErrorDoc;
      expect(error.code).toBe('E_TOO_MANY_PIXELS');
      expect(error.message).toMatch(/big\.png: scoring 2000×2000 pixels would take about \d+ MB .* limit of 34 MB per image \(--max-image-memory\)/);
      // Refused before it reached the model.
      expect(await metric(url, 'clip_iqa_inference_seconds_count')).toBe(before);

      // The size it suggests fits, and is scored.
      const [, w, h] = /downscale it to (\d+)×(\d+)/.exec(error.message)!.map(Number);
      expect(imageMemory(app.clip.engine.architecture, { width: w!, height: h! })).toBeLessThanOrEqual(32 * MiB);
      const fits = await sharp(big).resize(w, h, { fit: 'fill' }).png().toBuffer();
      expect((await score(url, 'fits.png', fits)).status).toBe(200);
      // Maps run the trunk twice: the same image may not fit with them.
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { limits: Record<string, number> };
      expect(models.limits).toMatchObject({ maxImageMemory: 32 * MiB, maxInFlightBytes: 3 * MiB, maxPixels: 4096 * 4096 });
      expect(models.limits.maxImagePixels).toBeGreaterThan(0);
      expect(models.limits.maxImagePixels).toBeLessThan(2000 * 2000);
    });

    it('names the CLIP-IQA+ context by its file name, not its path on the server (14)', async () => {
      const r = await score(url, 'chelsea.png', CHELSEA, 'attributes=quality&plus=true');
      expect(r.status).toBe(200);
      const text = await r.text();
      expect(text).toContain('clipiqa+-ctx.pth');
      expect(text).not.toContain(repoRoot);
      expect(text).not.toContain('/fixtures/');
    });

    it('answers malformed multipart with 400, and logs no error for it (14)', async () => {
      log.length = 0;
      const boundary = 'broken';
      const cases = [
        `--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="a.png"\r\ncontent-type: image/png\r\n\r\n\x89PNG no closing boundary`,
        `--${boundary}\r\nthis is not a part header\r\n\r\nabc\r\n--${boundary}--\r\n`,
      ];
      for (const body of cases) {
        const r = await send(`${url}/v1/score`, {
          headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(Buffer.byteLength(body)) },
          chunks: [Buffer.from(body)],
          end: true,
        });
        expect(r.status, body).toBe(400);
        expect(json(r).error.code).toBe('E_BAD_REQUEST');
      }
      expect(log.some((l) => l.status === 400)).toBe(true);
      expect(log.filter((l) => (l.level as number) >= 50)).toEqual([]);
    });

    it('answers headers over the size Node takes with 431 in the API’s error shape (14)', async () => {
      const r = await send(`${url}/healthz`, { method: 'GET', headers: { 'x-padding': 'a'.repeat(20_000) } });
      expect(r.status).toBe(431);
      expect(json(r).error.code).toBe('E_TOO_LARGE');
    });

    it('holds at most maxInFlightBytes of bodies, server-wide, refusing the rest before buffering it (6)', async () => {
      const file = Buffer.alloc(Math.round(0.9 * MiB), 7);
      // A body announced larger than the whole budget is refused before a byte of it is read.
      const huge = await send(`${url}/v1/score`, { headers: { 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(4 * MiB) } });
      expect(huge.status).toBe(413);
      expect(json(huge).error.code).toBe('E_TOO_LARGE');

      // One client sends two files and then stalls inside a third: 1.8 MiB held.
      const holding = multipart([['a.png', file], ['b.png', file]], 'holder', '--holder\r\ncontent-disposition: form-data; name="image"; filename="c.png"\r\n\r\n');
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const holder = send(`${url}/v1/score`, { headers: { 'content-type': holding.type }, chunks: [holding.body], until: released });
      await waitFor('the held bytes to be counted', async () => (await metric(url, 'clip_iqa_body_bytes_in_flight')) >= 2 * file.length);

      // Announced bodies that do not fit what is left are refused at once, with Retry-After.
      const second = multipart([['d.png', file], ['e.png', file]]);
      const announced = await send(`${url}/v1/score`, { headers: { 'content-type': second.type, 'content-length': String(second.body.length) } });
      expect(announced.status).toBe(429);
      expect(json(announced).error.code).toBe('E_BUSY');
      expect(announced.headers['retry-after']).toMatch(/^\d+$/);
      // Unannounced (chunked) ones as soon as they outgrow it.
      const pieces = Array.from({ length: Math.ceil(second.body.length / 65536) }, (_, i) => second.body.subarray(i * 65536, (i + 1) * 65536));
      const chunked = await send(`${url}/v1/score`, { headers: { 'content-type': second.type }, chunks: pieces, everyMs: 2, end: true });
      expect(chunked.status).toBe(429);
      // url= downloads count too: each may grow to maxUploadBytes, so two do not fit, one does.
      const cat = encodeURIComponent(files.url('/cat.png'));
      const two = await fetch(`${url}/v1/score?attributes=quality&url=${cat}&url=${cat}`, { method: 'POST' });
      expect(two.status).toBe(429);
      expect((await fetch(`${url}/v1/score?attributes=quality&url=${cat}`, { method: 'POST' })).status).toBe(200);
      expect(await metric(url, 'clip_iqa_rejected_total{reason="bodies"}')).toBeGreaterThanOrEqual(3);

      // Once the stalled client is gone, its bytes are given back.
      release();
      expect((await holder).status).toBe(0);
      await waitFor('the budget to be given back', async () => (await metric(url, 'clip_iqa_body_bytes_in_flight')) === 0);
      expect((await score(url)).status).toBe(200);
    });

    it('answers only the loopback names when it listens on loopback (15)', async () => {
      const port = new URL(url).port;
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost']) {
        expect((await send(`${url}/healthz`, { method: 'GET', headers: { host } })).status, host).toBe(200);
      }
      for (const host of [`attacker.example:${port}`, 'attacker.example', '127.0.0.1.attacker.example', 'a b']) {
        const r = await send(`${url}/v1/models`, { method: 'GET', headers: { host } });
        expect(r.status, host).toBe(403);
        expect(json(r).error.code).toBe('E_HOST');
      }
    });

    it('refuses browser requests from other origins before reading them, and answers its own page (15)', async () => {
      const foreign = await send(`${url}/v1/score`, {
        headers: { origin: 'https://attacker.example', 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(MiB) },
      });
      expect(foreign.status).toBe(403);
      expect(json(foreign).error.code).toBe('E_ORIGIN');
      expect(foreign.headers['access-control-allow-origin']).toBeUndefined();
      const own = await fetch(`${url}/v1/prompts`, { headers: { origin: url } });
      expect(own.status).toBe(200);
      expect(own.headers.get('access-control-allow-origin')).toBeNull();
    });
  });

  describe('deadlines (timeoutMs 800)', () => {
    let url: string;
    beforeAll(async () => {
      ({ url } = await serve({ engine: () => ClipIqa.load({ model: TINY_RN, vocab: VOCAB }), timeoutMs: 800 }));
    });

    it('answers a body dripped a few bytes at a time with 408 at the deadline, raw and multipart (16)', async () => {
      const drip = Array.from({ length: 200 }, () => CHELSEA.subarray(0, 16));
      const raw = await send(`${url}/v1/score`, { headers: { 'content-type': 'image/png', 'content-length': String(CHELSEA.length) }, chunks: drip, everyMs: 100 });
      const { body, type } = multipart([['slow.png', CHELSEA]]);
      const parts = await send(`${url}/v1/score`, { headers: { 'content-type': type, 'content-length': String(body.length) }, chunks: drip, everyMs: 100 });
      for (const r of [raw, parts]) {
        expect(r.status).toBe(408);
        expect(json(r).error.code).toBe('E_TIMEOUT');
        expect(r.headers.connection).toBe('close');
        // Not Node's next sweep 30 s later: at the deadline (0.8 s), give or take a loaded machine.
        expect(r.ms).toBeLessThan(10_000);
      }
    });

    it('answers headers that never finish with 408 in the API’s error shape (14, 16)', async () => {
      const { hostname, port } = new URL(url);
      const answer = await new Promise<string>((resolve) => {
        let text = '';
        const socket = connect(Number(port), hostname, () => socket.write(`POST /v1/score HTTP/1.1\r\nHost: ${hostname}\r\n`));
        socket.on('data', (d) => (text += d.toString()));
        socket.on('close', () => resolve(text));
        setTimeout(() => socket.destroy(), 15_000);
      });
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: { code: 'E_TIMEOUT' } });
    });
  });

  describe('model processes (tiny-rn, timeoutMs 1500)', () => {
    let app: FastifyInstance;
    let url: string;
    const pid = () => (app.clip.engine as PoolEngine).pids()[0]!;
    const alive = (p: number) => {
      try {
        process.kill(p, 0);
        return true;
      } catch {
        return false;
      }
    };
    beforeAll(async () => {
      ({ app, url } = await serve({ model: { model: TINY_RN, vocab: VOCAB }, timeoutMs: 1500 }));
    });

    it('stops an image still running at the deadline: its process is killed and replaced (5)', async () => {
      const stuck = pid();
      // A stopped process stands for an inference that would run for minutes.
      process.kill(stuck, 'SIGSTOP');
      const r = await score(url);
      expect(r.status).toBe(503);
      expect(((await r.json()) as ErrorDoc).error.code).toBe('E_TIMEOUT');
      await waitFor('the stuck process to be gone', () => !alive(stuck));
      await waitFor('a new process', async () => (await fetch(`${url}/readyz`)).status === 200);
      expect(pid()).not.toBe(stuck);
      expect(await metric(url, 'clip_iqa_worker_restarts_total{reason="timeout"}')).toBe(1);
      expect((await score(url)).status).toBe(200);
    });

    it('survives a model process killed mid-request: 503 for its images, a new process for the rest (5)', async () => {
      const victim = pid();
      process.kill(victim, 'SIGSTOP');
      const answer = score(url);
      await waitFor('the image to be running', () => app.clip.queue.running === 1);
      // What the kernel's OOM killer does to a process that outgrew the machine.
      process.kill(victim, 'SIGKILL');
      const r = await answer;
      expect(r.status).toBe(503);
      const { error } = (await r.json()) as ErrorDoc;
      expect(error.code).toBe('E_WORKER');
      expect(error.message).toMatch(/killed \(SIGKILL; out of memory\?\)/);
      await waitFor('a new process', async () => (await fetch(`${url}/readyz`)).status === 200);
      expect(await metric(url, 'clip_iqa_worker_restarts_total{reason="killed"}')).toBe(1);
      expect((await score(url)).status).toBe(200);
    });
  });

  it('refuses by default what a ViT cannot score in the memory available, from the header (5)', async () => {
    const { url } = await serve({ engine: () => ClipIqa.load({ model: TINY_VIT, vocab: VOCAB }) });
    // 4096² passes the pixel limit; for a ViT of patch 16 it is 65 537 tokens: 75 GB of attention scores.
    const r = await score(url, 'bomb.webp', webpHeader(4096, 4096));
    expect(r.status).toBe(413);
    const { error } = (await r.json()) as ErrorDoc;
    expect(error.code).toBe('E_TOO_MANY_PIXELS');
    expect(error.message).toMatch(/4096×4096 pixels would take about \d+\.\d GB .*downscale it to \d+×\d+/);
  });

  it('answers named hosts and gives named origins CORS headers, preflight included (15)', async () => {
    const { url } = await serve({
      engine: () => ClipIqa.load({ model: TINY_RN, vocab: VOCAB }),
      allowedHosts: ['iqa.example.com', '127.0.0.1'],
      cors: ['https://app.example.com'],
    });
    expect((await send(`${url}/healthz`, { method: 'GET', headers: { host: 'iqa.example.com:8080' } })).status).toBe(200);
    expect((await send(`${url}/healthz`, { method: 'GET', headers: { host: 'localhost' } })).status).toBe(403);
    const preflight = await send(`${url}/v1/score`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(preflight.headers['access-control-allow-headers']).toMatch(/authorization/);
    const scored = await fetch(`${url}/v1/score?attributes=quality`, {
      method: 'POST',
      headers: { origin: 'https://app.example.com', 'content-type': 'image/png' },
      body: new Uint8Array(CHELSEA),
    });
    expect(scored.status).toBe(200);
    expect(scored.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect((await fetch(`${url}/v1/prompts`, { headers: { origin: 'https://other.example.com' } })).status).toBe(403);
  });

  it('logs a readiness probe’s 503 during loading without an error or a stack (14)', async () => {
    const log: Record<string, unknown>[] = [];
    const { buildServer, serverUrl } = await import('../src/server/index.js');
    let stop!: (e: Error) => void;
    const app = await buildServer({
      ui: false,
      engine: () => new Promise((_resolve, reject) => (stop = reject)), // loading until the test ends
      logger: { level: 'info', stream: { write: (line: string) => void log.push(JSON.parse(line) as Record<string, unknown>) } },
    });
    apps.push(app);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const loading = app.clip.load().catch(() => undefined);
    const r = await fetch(`${serverUrl(app)}/readyz`);
    stop(new Error('the test is over'));
    await loading;
    expect(r.status).toBe(503);
    // The request line is there (so the log is read), and nothing louder.
    expect(log.some((l) => l.url === '/readyz' && l.status === 503)).toBe(true);
    expect(log.filter((l) => (l.level as number) >= 40)).toEqual([]);
    expect(JSON.stringify(log)).not.toContain('stack');
  });
});

describe('clip-iqa score: the default pixel limit (10)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'clip-iqa-bomb-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a 16383² image from its header, sized to the model and memory, saying how to raise the limit', async () => {
    const bomb = join(dir, 'bomb.webp');
    writeFileSync(bomb, webpHeader(16383, 16383)); // under the decoder's own 2^28 limit
    // Address space capped at 3 GB: a regression fails here instead of taking the machine's memory.
    const child = spawn('sh', ['-c', 'ulimit -v 3000000; exec "$0" "$@"', process.execPath, BIN, 'score', '-m', TINY_VIT, '--vocab', VOCAB, '--json', bomb], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(1);
    const row = (JSON.parse(stdout) as { images: { error: { code: string; message: string } }[] }).images[0]!;
    expect(row.error.code).toBe('E_IMAGE');
    expect(row.error.message).toMatch(/16383×16383 = 268402689 pixels is over the limit of \d+ \(limitInputPixels: the largest image this model can score in [\d.]+ [GM]B/);
    expect(row.error.message).toContain('--max-pixels');
  });
});
