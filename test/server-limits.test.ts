/**
 * `clip-iqa serve` under pressure and at its edges, over real HTTP on 127.0.0.1: a full queue answers 429 with
 * Retry-After, a slow answer 503, a client that goes away frees its place; the bearer token; readiness before the
 * model is loaded; graceful shutdown finishing what is in flight; `url=` fetching only from allowed hosts.
 * A gated engine (the tiny model behind a gate the test opens) makes the timing deterministic.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { type Engine, type ServerOptions, buildServer, serverUrl, startServer } from '../src/server/index.js';
import { startServer as startFileServer, type TestServer } from './helpers/http-server.js';
import { fixture, photo, VOCAB } from './helpers/shared.js';

const MODEL = fixture('tiny-rn', 'model.safetensors');
const CHELSEA = readFileSync(photo('chelsea.png'));

interface ErrorDoc {
  error: { code: string; message: string };
}

const form = (...names: string[]): FormData => {
  const f = new FormData();
  for (const n of names) f.append('image', new Blob([new Uint8Array(CHELSEA)], { type: 'image/png' }), n);
  return f;
};

async function waitFor(what: string, condition: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The model behind a gate: every score waits until `release()`. */
function gated(iqa: ClipIqa) {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let entered = 0;
  let disposed = false;
  const engine: Engine = {
    name: iqa.name,
    architecture: iqa.architecture,
    logitScale: iqa.logitScale,
    context: iqa.context,
    describe: () => iqa.describe(),
    plan: (o) => iqa.plan(o),
    score: async (input, o) => {
      entered++;
      await gate;
      return iqa.score(input, o);
    },
    embedImage: (input, o) => iqa.embedImage(input, o),
    embedText: (t) => iqa.embedText(t),
    warmUp: async () => undefined,
    // The model is shared between the tests' servers; the test disposes of it.
    dispose: async () => void (disposed = true),
  };
  return { engine, release: () => open(), entered: () => entered, disposed: () => disposed };
}

describe('clip-iqa serve: limits, auth, readiness, shutdown', () => {
  let iqa: ClipIqa;
  const apps: FastifyInstance[] = [];

  async function serve(options: ServerOptions): Promise<{ app: FastifyInstance; url: string }> {
    const s = await startServer({ ui: false, port: 0, model: { model: MODEL, vocab: VOCAB }, ...options });
    apps.push(s.app);
    return s;
  }

  beforeAll(async () => {
    iqa = await ClipIqa.load({ model: MODEL, vocab: VOCAB });
  });
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });
  afterAll(() => iqa?.dispose());

  it('answers 429 with Retry-After when the queue is full, and serves the rest when it drains', async () => {
    const g = gated(iqa);
    const { app, url } = await serve({ engine: async () => g.engine, concurrency: 1, queue: 1 });
    const running = fetch(`${url}/v1/score`, { method: 'POST', body: form('a.png') });
    await waitFor('the first image to run', () => g.entered() === 1);
    const waiting = fetch(`${url}/v1/score`, { method: 'POST', body: form('b.png') });
    await waitFor('the second image to wait', () => app.clip.queue.waiting === 1);

    const refused = await fetch(`${url}/v1/score`, { method: 'POST', body: form('c.png') });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
    const body = (await refused.json()) as ErrorDoc;
    expect(body.error.code).toBe('E_BUSY');
    expect(body.error.message).toMatch(/retry in \d+ s/);
    // A batch that does not fit whole is refused whole.
    expect((await fetch(`${url}/v1/score`, { method: 'POST', body: form('d.png', 'e.png') })).status).toBe(429);

    g.release();
    expect((await running).status).toBe(200);
    expect((await waiting).status).toBe(200);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/clip_iqa_rejected_total\{reason="full"\} 2/);
    expect((await fetch(`${url}/v1/score`, { method: 'POST', body: form('f.png') })).status).toBe(200);
  });

  it('answers 503 when the answer takes longer than the timeout', async () => {
    const g = gated(iqa);
    const { url } = await serve({ engine: async () => g.engine, concurrency: 1, queue: 4, timeoutMs: 400 });
    const slow = await fetch(`${url}/v1/score`, { method: 'POST', body: form('slow.png') });
    expect(slow.status).toBe(503);
    expect(slow.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(((await slow.json()) as ErrorDoc).error.code).toBe('E_TIMEOUT');
    g.release();
  });

  it('drops the waiting images of a client that went away', async () => {
    const g = gated(iqa);
    const { app, url } = await serve({ engine: async () => g.engine, concurrency: 1, queue: 4 });
    const running = fetch(`${url}/v1/score`, { method: 'POST', body: form('a.png') });
    await waitFor('the first image to run', () => g.entered() === 1);
    const leaving = new AbortController();
    const gone = fetch(`${url}/v1/score`, { method: 'POST', body: form('gone-1.png', 'gone-2.png'), signal: leaving.signal }).catch(() => 'aborted');
    await waitFor('its images to wait', () => app.clip.queue.waiting === 2);
    leaving.abort();
    expect(await gone).toBe('aborted');
    await waitFor('their places to be freed', () => app.clip.queue.waiting === 0);
    g.release();
    expect((await running).status).toBe(200);
    // Only the first image ever reached the model.
    expect(g.entered()).toBe(1);
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/clip_iqa_rejected_total\{reason="gone"\} 1/);
  });

  it('needs the bearer token on the API and metrics, not on probes', async () => {
    const token = 'correct-horse-battery';
    const { url } = await serve({ token });
    const none = await fetch(`${url}/v1/score`, { method: 'POST', body: form('a.png') });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="clip-iqa"');
    expect(((await none.json()) as ErrorDoc).error.code).toBe('E_UNAUTHORIZED');
    const wrong = await fetch(`${url}/v1/score`, { method: 'POST', body: form('a.png'), headers: { authorization: 'Bearer wrong-token-0000' } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain('invalid_token');
    const right = await fetch(`${url}/v1/score`, { method: 'POST', body: form('a.png'), headers: { authorization: `Bearer ${token}` } });
    expect(right.status).toBe(200);
    for (const path of ['/v1/models', '/v1/prompts', '/metrics']) expect((await fetch(`${url}${path}`)).status, path).toBe(401);
    for (const path of ['/healthz', '/readyz', '/openapi.json']) expect((await fetch(`${url}${path}`)).status, path).toBe(200);
    const models = (await (await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${token}` } })).json()) as { limits: { auth: boolean } };
    expect(models.limits.auth).toBe(true);
  });

  it('refuses CLIP-IQA+ on a server started without a context', async () => {
    const { url } = await serve({});
    const r = await fetch(`${url}/v1/score?plus=true`, { method: 'POST', body: form('a.png') });
    expect(r.status).toBe(400);
    expect(((await r.json()) as ErrorDoc).error.code).toBe('E_CONTEXT');
  });

  it('is live but not ready until the model is loaded', async () => {
    const app = await buildServer({ ui: false, model: { model: MODEL, vocab: VOCAB }, engine: async () => gated(iqa).engine });
    apps.push(app);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = serverUrl(app);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as ErrorDoc).error.code).toBe('E_NOT_READY');
    const score = await fetch(`${url}/v1/score`, { method: 'POST', body: form('a.png') });
    expect(score.status).toBe(503);
    expect(score.headers.get('retry-after')).toBe('5');
    await app.clip.load();
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
  });

  it('releases a model whose warm-up failed, and says why it is not ready', async () => {
    const g = gated(iqa);
    const broken: Engine = {
      ...g.engine,
      warmUp: async () => {
        throw new Error('warm-up broke');
      },
    };
    const app = await buildServer({ ui: false, model: { model: MODEL, vocab: VOCAB }, engine: async () => broken });
    apps.push(app);
    await expect(app.clip.load()).rejects.toThrow('warm-up broke');
    expect(g.disposed()).toBe(true);
    expect(app.clip.notReady().message).toContain('warm-up broke');
  });

  it('loads its worker threads whatever callbacks the hub options carry (they cannot cross threads)', async () => {
    const hub = { log: () => undefined, onProgress: () => undefined, signal: new AbortController().signal };
    const { url } = await serve({ model: { model: MODEL, vocab: VOCAB, hub } });
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
  });

  it('shuts down gracefully: not ready at once, in-flight requests answered, then the model released', async () => {
    const g = gated(iqa);
    const { app, url } = await serve({ engine: async () => g.engine, concurrency: 1 });
    const inFlight = fetch(`${url}/v1/score`, { method: 'POST', body: form('a.png') });
    await waitFor('the request to run', () => g.entered() === 1);
    app.clip.beginClosing();
    let closed = false;
    const closing = app.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(closed).toBe(false);
    expect(g.disposed()).toBe(false);
    g.release();
    const r = await inFlight;
    expect(r.status).toBe(200);
    expect(r.headers.get('connection')).toBe('close');
    await closing;
    expect(g.disposed()).toBe(true);
    apps.splice(apps.indexOf(app), 1);
  });

  describe('url=', () => {
    let files: TestServer;
    beforeAll(async () => {
      files = await startFileServer({
        '/cat.png': { body: CHELSEA, headers: { 'content-type': 'image/png' } },
        '/elsewhere': { redirect: 'http://localhost:1/cat.png' },
        '/hop': { redirect: '/cat.png' },
        '/missing': { status: 404 },
        '/big.png': { body: Buffer.concat([CHELSEA, Buffer.alloc(600_000)]) },
        '/slow.png': { body: CHELSEA, delayMs: 3000 },
      });
    });
    afterAll(() => files?.close());

    it('is refused unless the server allows some hosts', async () => {
      const { url } = await serve({});
      const r = await fetch(`${url}/v1/score?url=${encodeURIComponent(files.url('/cat.png'))}`, { method: 'POST' });
      expect(r.status).toBe(400);
      expect(((await r.json()) as ErrorDoc).error.message).toMatch(/--allow-url-fetch/);
    });

    it('fetches from allowed hosts only, each redirect checked, with size and time limits', async () => {
      const { url } = await serve({ allowUrlFetch: ['127.0.0.1'], maxUploadBytes: 500_000, fetchTimeoutMs: 1000 });
      const score = (u: string) => fetch(`${url}/v1/score?attributes=quality&url=${encodeURIComponent(u)}`, { method: 'POST' });
      const ok = await score(files.url('/cat.png'));
      expect(ok.status).toBe(200);
      const doc = (await ok.json()) as { images: { file: string; scores: { quality: number } }[] };
      expect(doc.images[0]!.file).toBe(files.url('/cat.png'));
      expect(Math.abs(doc.images[0]!.scores.quality - (await iqa.score(CHELSEA, { attributes: 'quality' })).scores.quality!)).toBeLessThan(1e-6);
      expect((await score(files.url('/hop'))).status).toBe(200);

      const cases: [string, number, string][] = [
        [files.url('/cat.png').replace('127.0.0.1', 'localhost'), 400, 'E_URL'],
        [files.url('/elsewhere'), 400, 'E_URL'],
        ['file:///etc/passwd', 400, 'E_URL'],
        [files.url('/missing'), 502, 'E_FETCH'],
        [files.url('/big.png'), 413, 'E_TOO_LARGE'],
        [files.url('/slow.png'), 504, 'E_FETCH'],
      ];
      for (const [u, status, code] of cases) {
        const r = await score(u);
        expect(r.status, u).toBe(status);
        expect(((await r.json()) as ErrorDoc).error.code, u).toBe(code);
      }
    });
  });
});
