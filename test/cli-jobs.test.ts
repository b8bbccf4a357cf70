/**
 * The CLI's everyday jobs end to end (the built binary, a tiny model, synthetic photos): checks before the model,
 * formats from file names, outputs that never clobber inputs, interruption, --resume after a kill, --from lists,
 * URLs, --keep/--top with --copy-to, metadata in every output, and text from file names made safe.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { BIN, runCli } from './helpers/cli.js';
import { type TestServer, startServer } from './helpers/http-server.js';
import { VOCAB, fixture } from './helpers/shared.js';

const MODEL = fixture('tiny-rn', 'model.safetensors');
const BASE = ['-m', MODEL, '--vocab', VOCAB];
const Q = [...BASE, '-q', '-a', 'quality'];

type Row = { file: string; width: number; height: number; scores: Record<string, number> } | { file: string; error: { code: string; message: string } };
interface Doc {
  run: Record<string, unknown>;
  higher_better: Record<string, boolean>;
  images: Row[];
  summary: Record<string, unknown> & { mean: Record<string, number> };
}

let dir: string;
let photos: string[];
let pngs: Map<string, Buffer>;
let server: TestServer;
let quality: Map<string, number>;

/** A small synthetic photo: a smooth gradient with some noise, different for each seed. */
async function photo(seed: number, width = 64, height = 48): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  let s = seed * 7919 + 1;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    data[i] = ((i % (width * 3)) * (seed + 1) + (s % 64)) & 0xff;
  }
  return sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

const lines = (path: string) => readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

function spawnCli(args: string[]): { child: ChildProcess; done: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.resume();
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stderr })));
  return { child, done };
}

async function until(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'clip-iqa-jobs-'));
  pngs = new Map();
  photos = [];
  for (const [i, name] of ['a.png', 'b.png', 'c.png', 'd.png'].entries()) {
    const bytes = await photo(i);
    pngs.set(name, bytes);
    writeFileSync(join(dir, name), bytes);
    photos.push(join(dir, name));
  }
  server = await startServer({
    '/cat.png': { body: pngs.get('a.png')!, headers: { 'content-type': 'image/png' } },
    '/slow.png': { body: pngs.get('c.png')!, delayMs: 20_000 },
    '/to-file': { redirect: 'file:///etc/passwd' },
  });
  const iqa = await ClipIqa.load({ model: MODEL, vocab: VOCAB });
  quality = new Map();
  for (const p of photos) quality.set(p, (await iqa.score(p, { attributes: 'quality' })).scores.quality!);
  await iqa.dispose();
});
afterAll(() => server?.close());

describe('checks before the model', () => {
  it('reports missing files, empty folders and unsupported files with no model available, and exits 2 at once', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'clip-iqa-empty-cache-'));
    const empty = join(dir, 'empty');
    mkdirSync(empty, { recursive: true });
    writeFileSync(join(dir, 'notes.txt'), 'not an image');
    const r = await runCli(['--offline', '--cache-dir', cache, join(dir, 'typo.jpg'), empty, join(dir, 'notes.txt')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/typo\.jpg: no such file or directory/);
    expect(r.stderr).toMatch(/no images .* in the directory .*empty/);
    expect(r.stderr).toMatch(/notes\.txt: \.txt is not an image extension/);
    expect(r.stderr).toMatch(/nothing to score: all 3 inputs failed the checks above/);
    expect(r.stderr).not.toMatch(/RN50|cache/); // the model was never looked for

    for (const [args, message] of [
      [['-a', 'qualty'], /unknown attribute "qualty"/],
      [['--sort', 'sharpness', '-a', 'quality'], /--sort sharpness: not among the scores/],
      [['--keep', 'sharpnes>0.5'], /--keep sharpnes: not among the scores/],
      [['--dry-run'], /--dry-run goes with --copy-to/],
      [['--copy-to', photos[0]!], /--copy-to .*a\.png: exists and is not a directory/],
      [['-o', join(dir, 'out.html')], /for an HTML page use --report/],
      [['--resume', join(dir, 'r.jsonl'), '--sort', 'quality'], /--resume .* does not go with -o, --sort/],
    ] as const) {
      const bad = await runCli(['--offline', '--cache-dir', cache, ...args, photos[0]!]);
      expect(bad.code, args.join(' ')).toBe(2);
      expect(bad.stderr).toMatch(message);
    }
  });

  it('refuses an output that is one of the inputs, and -o and --report on one file, leaving the photo as it was', async () => {
    const before = readFileSync(photos[0]!);
    const clobber = await runCli([...Q, '-o', photos[0]!, photos[0]!, photos[1]!]);
    expect(clobber.code).toBe(2);
    expect(clobber.stderr).toMatch(/-o .*a\.png: that is one of the images of this run/);
    expect(readFileSync(photos[0]!).equals(before)).toBe(true);
    const same = await runCli([...Q, '-o', join(dir, 'r.html.json'), '--report', join(dir, 'r.html.json'), photos[0]!]);
    expect(same.code).toBe(2);
    expect(same.stderr).toMatch(/-o and --report name the same file/);
  });
});

describe('outputs', () => {
  it('picks the format from the -o file name unless --format says otherwise, and says where it wrote', async () => {
    const out = mkdtempSync(join(tmpdir(), 'clip-iqa-out-'));
    const csv = await runCli([...BASE, '-a', 'quality', '-o', join(out, 'x.csv'), '--report', join(out, 'r.html'), ...photos.slice(0, 2)]);
    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stderr).toContain(`wrote 2 results (csv) to ${join(out, 'x.csv')}`);
    expect(csv.stderr).toContain(`wrote the report (2 images) to ${join(out, 'r.html')}`);
    expect(csv.stderr).toMatch(/2 scored, 0 failed in [\d.]+ s .*; mean quality 0\.\d{3}/);
    const text = readFileSync(join(out, 'x.csv'), 'utf8').split('\n');
    expect(text[0]).toMatch(/^# run: \{"tool":"clip-iqa","version":"[^"]+","model":".*model\.safetensors","model_sha256":"[0-9a-f]{64}"/);
    expect(text[1]).toBe('# prompts: {"quality":["Good photo.","Bad photo."]}');
    expect(text[2]).toBe('# higher_better: {"quality":true}');
    expect(text[3]).toBe('file,width,height,quality,error');
    expect(Number(text[4]!.split(',')[3])).toBeCloseTo(quality.get(photos[0]!)!, 5);

    const jsonl = await runCli([...Q, '-o', join(out, 'x.jsonl'), ...photos.slice(0, 2)]);
    expect(jsonl.code, jsonl.stderr).toBe(0);
    const [head, ...rows] = lines(join(out, 'x.jsonl'));
    expect(Object.keys(head!)).toEqual(['run', 'prompts', 'higher_better']);
    expect((head!.run as Record<string, unknown>).model_sha256).toBe(createHash('sha256').update(readFileSync(MODEL)).digest('hex'));
    expect(rows.map((r) => r.file)).toEqual(photos.slice(0, 2));

    const forced = await runCli([...Q, '--format', 'jsonl', '-o', join(out, 'forced.json'), photos[0]!]);
    expect(forced.code).toBe(0);
    expect(lines(join(out, 'forced.json'))).toHaveLength(2);
    expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]); // written to a temporary name, renamed

    // A FIFO (or /dev/stdout) is written to as it is, not replaced by a file.
    const fifo = join(out, 'results.fifo');
    execFileSync('mkfifo', [fifo]);
    const read = readFile(fifo, 'utf8');
    const piped = await runCli([...Q, '--format', 'csv', '-o', fifo, photos[0]!]);
    expect(piped.code, piped.stderr).toBe(0);
    expect((await read).split('\n')).toContain('file,width,height,quality,error');
    expect(statSync(fifo).isFIFO()).toBe(true);
  });

  it('JSON records the run, which way each score points, and the mean of each score', async () => {
    const r = await runCli([...BASE, '-q', '-a', 'quality,noisiness', '--json', ...photos]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as Doc;
    expect(doc.run).toMatchObject({ tool: 'clip-iqa', precision: 'float32', positional: 'none', noisiness: 'noisy', resize: null, plus: null });
    expect(doc.run.decode).toMatchObject({ orientation: 'exif', alpha: 'drop', icc: 'convert' });
    expect(doc.higher_better).toEqual({ quality: true, noisiness: false });
    const mean = [...quality.values()].reduce((a, b) => a + b, 0) / quality.size;
    expect(doc.summary.mean.quality).toBeCloseTo(mean, 5);
    const prompts = JSON.parse((await runCli(['prompts', '--json'])).stdout) as { higher_better: Record<string, boolean> };
    expect(prompts.higher_better).toMatchObject({ quality: true, noisiness: false, ensemble: true, 'clipiqa+': true });
  });

  it('neutralises formulas in CSV cells and never prints control characters from file names', async () => {
    const odd = mkdtempSync(join(tmpdir(), 'clip-iqa-odd-'));
    writeFileSync(join(odd, '=1+2.png'), pngs.get('a.png')!);
    writeFileSync(join(odd, 'x\x1b[2J\ny.png'), pngs.get('b.png')!);
    const csv = await runCli([...Q, '--format', 'csv', '.'], { cwd: odd });
    expect(csv.stdout.split('\n')).toContain(`"'=1+2.png",64,48,${quality.get(photos[0]!)!.toFixed(6)},`);
    const table = await runCli([...Q, '--format', 'table', join(odd, '=1+2.png'), join(odd, 'x\x1b[2J\ny.png'), join(odd, 'gone\x07.png')]);
    expect(table.stdout).not.toMatch(new RegExp(`[${String.fromCharCode(7, 27)}]`));
    expect(table.stdout).toContain('x\\x1b[2J\\ny.png');
    expect(table.stdout).toContain('gone\\x07.png: no such file');
    expect(table.stdout.split('\n').length).toBe(5); // title, three rows, final newline: no forged lines
  });
});

describe('interruption and --resume', () => {
  it('Ctrl-C leaves valid output for the images done, and says so', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'clip-iqa-int-')), 'out.json');
    const slow = server.url('/slow.png');
    const { child, done } = spawnCli([...BASE, '-a', 'quality', '-o', out, photos[0]!, photos[1]!, slow, photos[3]!]);
    // The server records a request when it answers; the run waits on the slow image once the first two are in.
    await until('a run under way', () => readdirSync(dirname(out)).some((f) => f.endsWith('.tmp')));
    await new Promise((r) => setTimeout(r, 3000));
    child.kill('SIGINT');
    const { code, stderr } = await done;
    expect(code).toBe(130);
    const doc = JSON.parse(readFileSync(out, 'utf8')) as Doc;
    expect(doc.summary.interrupted).toBe(true);
    expect(doc.images.map((i) => i.file)).toEqual(photos.slice(0, doc.images.length));
    expect(doc.images.length).toBeLessThanOrEqual(2);
    expect(stderr).toMatch(new RegExp(`interrupted \\(SIGINT\\) after ${doc.images.length} of 4 images; .*out\\.json holds the results of those ${doc.images.length}`));
  });

  it('--resume goes on after a killed run: images in the file are skipped, the rest appended', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'clip-iqa-resume-')), 'scores.jsonl');
    const slowPath = '/slow-resume.png';
    server.route(slowPath, { body: pngs.get('c.png')!, delayMs: 20_000 });
    const inputs = [photos[0]!, photos[1]!, server.url(slowPath), photos[3]!];
    const args = [...BASE, '-a', 'quality', '--resume', out, ...inputs];
    const { child, done } = spawnCli(args);
    await until('two rows in the results file', () => existsSync(out) && readFileSync(out, 'utf8').split('\n').length >= 4);
    child.kill('SIGKILL');
    await done;
    const killed = lines(out);
    expect(killed).toHaveLength(3);
    // A run killed mid-write leaves a torn last line; the next run drops it.
    writeFileSync(out, `${readFileSync(out, 'utf8')}{"file":"${photos[3]}","wid`);

    server.route(slowPath, { body: pngs.get('c.png')!, headers: { 'content-type': 'image/png' } });
    const again = await runCli(args);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`resuming ${out}: 2 of 4 images already scored there`);
    const all = lines(out);
    expect(all[0]).toEqual(killed[0]); // the header of the first run stays
    expect(all.slice(1).map((r) => r.file)).toEqual(inputs);
    expect((all[4] as { scores: { quality: number } }).scores.quality).toBeCloseTo(quality.get(photos[3]!)!, 5);

    const third = await runCli(args);
    expect(third.code).toBe(0);
    expect(third.stderr).toContain(`every image is already in ${out}; nothing to do`);
    expect(lines(out)).toHaveLength(5);

    const other = await runCli([...BASE, '-a', 'sharpness', '--resume', out, ...inputs]);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/it holds the scores quality; this run scores sharpness/);
  });
});

describe('lists, URLs and standard input', () => {
  it('--from reads paths and URLs (also from standard input), fetched with the safeguards', async () => {
    const list = join(dir, 'list.txt');
    writeFileSync(list, `${photos[1]}\n${server.url('/cat.png')}\n${server.url('/to-file')}\nhttp://localhost:1/elsewhere.png\n`);
    const before = server.count('/cat.png') + server.count('/to-file');
    const r = await runCli([...Q, '--json', '--allow-hosts', '127.0.0.1', '--from', list]);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as Doc;
    const row = (f: string) => doc.images.find((i) => i.file === f) as { scores?: unknown; error?: { code: string; message: string } };
    expect(row(server.url('/cat.png')).scores).toEqual({ quality: expect.closeTo(quality.get(photos[0]!)!, 5) });
    expect(row(server.url('/to-file')).error).toMatchObject({ code: 'E_URL', message: expect.stringMatching(/file: URLs cannot be fetched/) });
    const elsewhere = row('http://localhost:1/elsewhere.png');
    expect(elsewhere.error!.message).toMatch(/localhost:1 is not among the hosts of --allow-hosts/);
    expect(server.count('/cat.png') + server.count('/to-file') - before).toBe(2); // the redirect to file: was not followed

    const stdin = await runCli([...Q, '--json', '--from', '-'], { stdin: Buffer.from(`${photos[2]}\n`) });
    expect(stdin.code, stdin.stderr).toBe(0);
    expect((JSON.parse(stdin.stdout) as Doc).images.map((i) => i.file)).toEqual([photos[2]]);
  });

  it('caps standard input (--max-bytes), refusing a larger image instead of reading on', async () => {
    const image = readFileSync(photos[0]!);
    const r = await runCli([...Q, '--json', '--max-bytes', String(image.length - 1), '-'], { stdin: image });
    expect(r.code).toBe(1);
    const row = (JSON.parse(r.stdout) as Doc).images[0]!;
    expect('error' in row && row.error).toMatchObject({ code: 'E_TOO_LARGE', message: expect.stringMatching(/raise the limit with --max-bytes/) });
    const ok = await runCli([...Q, '--json', '--max-bytes', '1MiB', '-'], { stdin: image });
    expect(ok.code, ok.stderr).toBe(0);
  });
});

describe('--keep, --top and --copy-to', () => {
  it('copies the images that pass --keep, after a dry run that changes nothing, never overwriting', async () => {
    const sorted = [...quality.entries()].sort((a, b) => b[1] - a[1]);
    const threshold = sorted[1]![1] - 1e-6; // the best two pass
    const best = join(dir, 'best');
    mkdirSync(best, { recursive: true });
    const clash = sorted[0]![0].split('/').pop()!;
    writeFileSync(join(best, clash), 'mine');
    const args = [...Q, '--json', '--keep', `quality>=${threshold}`, '--copy-to', best, ...photos];

    const dry = await runCli([...args, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(readdirSync(best)).toEqual([clash]);
    expect(dry.stderr).toContain(`would copy ${sorted[0]![0]} → ${join(best, clash.replace('.png', '-1.png'))}`);
    expect(dry.stderr).toMatch(/dry run: would copy 2 images to .*best \(1 renamed to avoid overwriting\); nothing was changed/);
    const doc = JSON.parse(dry.stdout) as Doc;
    expect(doc.images.map((i) => i.file).sort()).toEqual([sorted[0]![0], sorted[1]![0]].sort());
    expect(doc.summary.selection).toEqual({ keep: `quality>=${threshold}`, kept: 2 });

    const real = await runCli(args);
    expect(real.code, real.stderr).toBe(0);
    expect(readdirSync(best).sort()).toEqual([clash, clash.replace('.png', '-1.png'), sorted[1]![0].split('/').pop()!].sort());
    expect(readFileSync(join(best, clash), 'utf8')).toBe('mine');
    expect(readFileSync(join(best, clash.replace('.png', '-1.png'))).equals(readFileSync(sorted[0]![0]))).toBe(true);

    const top = await runCli([...Q, '--json', '--top', '1', ...photos]);
    expect((JSON.parse(top.stdout) as Doc).images.map((i) => i.file)).toEqual([sorted[0]![0]]);
  });
});
