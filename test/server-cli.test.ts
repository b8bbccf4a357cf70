/**
 * `clip-iqa serve` as users start it, from the built CLI: it listens, loads the fixture model, answers like the
 * library, and on SIGTERM finishes a request still uploading before it exits with status 0.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { BIN, runCli } from './helpers/cli.js';
import { fixture, photo, repoRoot, VOCAB } from './helpers/shared.js';

const MODEL = fixture('tiny-rn', 'model.safetensors');
const CTX = fixture('tiny-rn', 'clipiqa+-ctx.pth');
const CHELSEA = readFileSync(photo('chelsea.png'));

interface Served {
  readonly child: ChildProcess;
  readonly url: string;
  readonly stderr: () => string;
  readonly exit: Promise<number | null>;
}

/** Starts the built CLI's `serve` on a free port and waits for "ready". */
async function serve(args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--log-level', 'warn', '-m', MODEL, '--vocab', VOCAB, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready in time:\n${stderr}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m && /clip-iqa: ready/.test(stderr)) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exit.then((code) => reject(new Error(`serve exited with ${code}:\n${stderr}`)));
  });
  return { child, url, stderr: () => stderr, exit };
}

describe('clip-iqa serve (the built CLI)', () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  });

  it('documents its options', async () => {
    const r = await runCli(['serve', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--host', '--port', '--workers', '--concurrency', '--queue', '--max-upload', '--max-pixels', '--token', '--allow-url-fetch', '--timeout', '--plus', '--model']) {
      expect(r.stdout).toContain(flag);
    }
  });

  it('listens on loopback, scores as the library does, and shuts down gracefully on SIGTERM', async () => {
    const s = await serve(['--plus', CTX]);
    children.push(s.child);
    expect(s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const body = new FormData();
    body.append('image', new Blob([new Uint8Array(CHELSEA)], { type: 'image/png' }), 'chelsea.png');
    const r = await fetch(`${s.url}/v1/score?attributes=quality,sharpness`, { method: 'POST', body });
    expect(r.status).toBe(200);
    const doc = (await r.json()) as { model: string; images: { scores: Record<string, number> }[] };
    expect(doc.model).toBe('model.safetensors');
    const iqa = await ClipIqa.load({ model: MODEL, vocab: VOCAB, plus: CTX });
    const expected = (await iqa.score(CHELSEA, { attributes: 'quality,sharpness' })).scores;
    await iqa.dispose();
    for (const [k, v] of Object.entries(expected)) expect(Math.abs(doc.images[0]!.scores[k]! - v), k).toBeLessThanOrEqual(5e-7);
    expect(Object.keys(doc.images[0]!.scores)).toEqual(['quality', 'sharpness', 'clipiqa+']);

    // A request still uploading when SIGTERM comes is received, scored and answered; then the process exits 0.
    const boundary = 'clip-iqa-test-boundary';
    const head = Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="image"; filename="chelsea.png"\r\ncontent-type: image/png\r\n\r\n`);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const whole = Buffer.concat([head, CHELSEA, tail]);
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${s.url}/v1/score?attributes=quality`, {
        method: 'POST',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(whole.length) },
      });
      req.on('response', (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.write(whole.subarray(0, 1000));
      setTimeout(() => {
        s.child.kill('SIGTERM');
        setTimeout(() => req.end(whole.subarray(1000)), 500);
      }, 300);
    });
    const done = await answer;
    expect(done.status, done.body).toBe(200);
    expect(JSON.parse(done.body).images[0].scores.quality).toBeCloseTo(expected.quality!, 6);
    expect(await s.exit).toBe(0);
    // Once closed, nothing listens there any more.
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
  });

  it('fails with status 2 and a clear message when the model cannot be loaded', async () => {
    const r = await runCli(['serve', '--port', '0', '-m', '/nonexistent/model.safetensors', '--vocab', VOCAB, '--log-level', 'silent']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/nonexistent\/model\.safetensors/);
  });
});
