/** The `clip-iqa` binary end to end: formats parsed back and checked against the library, failures, downloads. */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { type CliResult, runCli } from './helpers/cli.js';
import { startServer } from './helpers/http-server.js';
import { fixture, photo, VOCAB } from './helpers/shared.js';

const MODEL = fixture('tiny-rn', 'model.safetensors');
const CTX = fixture('tiny-rn', 'clipiqa+-ctx.pth');
const BASE = ['-m', MODEL, '--vocab', VOCAB, '-q'];
const PHOTOS = ['chelsea.png', 'camera.png', 'rocket.jpg'] as const;

interface JsonDoc {
  model: string;
  positional: string;
  prompts: Record<string, unknown>;
  images: ({ file: string; width: number; height: number; scores: Record<string, number> } | { file: string; error: { code: string; message: string } })[];
  summary: { images: number; failed: number };
}

const json = (r: CliResult) => JSON.parse(r.stdout) as JsonDoc;

describe('clip-iqa score', () => {
  let dir: string;
  let library: Map<string, Record<string, number>>;
  let iqa: ClipIqa;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'clip-iqa-cli-'));
    for (const p of PHOTOS) copyFileSync(photo(p), join(dir, p));
    writeFileSync(join(dir, 'broken.jpg'), Buffer.from('this is not a JPEG at all'));
    writeFileSync(join(dir, 'notes.txt'), 'not an image, not picked up from a directory');
    iqa = await ClipIqa.load({ model: MODEL, vocab: VOCAB });
    library = new Map();
    for (const p of PHOTOS) library.set(join(dir, p), (await iqa.score(join(dir, p), { attributes: 'look', ensemble: true })).scores);
  });
  afterAll(() => iqa.dispose());

  it('scores the fixture images as the PyTorch reference does (json)', async () => {
    const expected = JSON.parse(readFileSync(fixture('tiny-rn', 'expected.json'), 'utf8'));
    const images = (expected.images as string[]).map((i) => fixture('images', i));
    const r = await runCli([...BASE, '-a', 'all', '--ensemble', '--plus', CTX, '--json', ...images]);
    expect(r.code, r.stderr).toBe(0);
    const doc = json(r);
    expect(doc.prompts.noisiness).toEqual(['Noisy photo.', 'Clean photo.']);
    doc.images.forEach((row, i) => {
      if ('error' in row) throw new Error(row.error.message);
      const name = expected.images[i];
      const ref = expected.variants.fp32.scores[name].none;
      for (const [k, v] of Object.entries(ref.attributes)) expect(Math.abs(row.scores[k]! - (v as number))).toBeLessThan(1e-4);
      expect(Math.abs(row.scores.ensemble! - ref.ensemble_mean)).toBeLessThan(1e-4);
      expect(Math.abs(row.scores['clipiqa+']! - expected.variants.fp32['clipiqa+'][name])).toBeLessThan(1e-4);
    });
  });

  it('goes on past a corrupt file in a directory, reports it, and exits 1', async () => {
    const r = await runCli([...BASE, '-a', 'look', '--ensemble', '--json', dir]);
    expect(r.code).toBe(1);
    const doc = json(r);
    expect(doc.summary).toMatchObject({ images: 4, failed: 1 });
    const bad = doc.images.find((i) => i.file.endsWith('broken.jpg'))!;
    expect('error' in bad && bad.error.code).toBe('E_IMAGE');
    expect('error' in bad && bad.error.message).toMatch(/broken\.jpg/);
    expect(doc.images.some((i) => i.file.endsWith('notes.txt'))).toBe(false);
    for (const row of doc.images) {
      if ('error' in row) continue;
      const want = library.get(row.file)!;
      for (const [k, v] of Object.entries(want)) expect(row.scores[k]).toBeCloseTo(v, 6);
    }
  });

  it('jsonl, csv and table carry the same numbers', async () => {
    const files = PHOTOS.map((p) => join(dir, p));
    const jsonl = await runCli([...BASE, '-a', 'look', '--ensemble', '--format', 'jsonl', ...files]);
    const [header, ...lines] = jsonl.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(Object.keys(header)).toEqual(['run', 'prompts', 'higher_better']);
    expect(lines).toHaveLength(3);
    for (const l of lines) for (const [k, v] of Object.entries(library.get(l.file)!)) expect(l.scores[k]).toBeCloseTo(v, 6);

    const csv = await runCli([...BASE, '-a', 'look', '--ensemble', '--format', 'csv', ...files]);
    const [head, ...rows] = csv.stdout.trim().split('\n').filter((l) => !l.startsWith('#')).map((l) => l.split(','));
    expect(head).toEqual(['file', 'width', 'height', 'quality', 'brightness', 'sharpness', 'noisiness', 'colorfulness', 'contrast', 'ensemble', 'error']);
    for (const row of rows) {
      const want = library.get(row[0]!)!;
      head!.slice(3, -1).forEach((k, c) => expect(Number(row[c + 3])).toBeCloseTo(want[k]!, 5));
    }

    const table = await runCli([...BASE, '-a', 'quality,sharpness', '--format', 'table', ...files]);
    const tableRows = table.stdout.trim().split('\n');
    expect(tableRows[0]).toMatch(/image\s+size\s+quality\s+sharpness/);
    for (const line of tableRows.slice(1)) {
      const file = files.find((f) => line.includes(f.slice(-12)))!;
      const [q, s] = line.trim().split(/\s+/).slice(-2).map(Number);
      expect(q).toBeCloseTo(library.get(file)!.quality!, 4);
      expect(s).toBeCloseTo(library.get(file)!.sharpness!, 4);
    }
  });

  it('sorts, takes custom pairs and writes to a file', async () => {
    const out = join(dir, 'out.json');
    const files = PHOTOS.map((p) => join(dir, p));
    const r = await runCli([...BASE, '-a', 'quality', '-p', 'vivid=Vivid photo.|Dull photo.', '-p', 'Cat photo.|Dog photo.', '--sort', 'quality', '--json', '-o', out, ...files]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    const doc = JSON.parse(readFileSync(out, 'utf8')) as JsonDoc;
    const scores = doc.images.map((i) => ('scores' in i ? i.scores : {}));
    expect(Object.keys(scores[0]!)).toEqual(['quality', 'vivid', 'Cat photo.|Dog photo.']);
    const q = scores.map((s) => s.quality!);
    expect([...q].sort((a, b) => b - a)).toEqual(q);
    const custom = await iqa.score(files[0]!, { attributes: [], prompts: ['vivid=Vivid photo.|Dull photo.'] });
    const row = doc.images.find((i) => i.file === files[0])!;
    expect('scores' in row && row.scores.vivid).toBeCloseTo(custom.scores.vivid!, 6);
  });

  it('reads an image from standard input', async () => {
    const r = await runCli([...BASE, '-a', 'quality', '--json', '-'], { stdin: readFileSync(join(dir, 'rocket.jpg')) });
    expect(r.code, r.stderr).toBe(0);
    const row = json(r).images[0]!;
    expect(row.file).toBe('-');
    expect('scores' in row && row.scores.quality).toBeCloseTo(library.get(join(dir, 'rocket.jpg'))!.quality!, 6);
  });

  it('ends quietly when the reader of its output goes away (| head)', async () => {
    const { spawn } = await import('node:child_process');
    const { BIN } = await import('./helpers/cli.js');
    const child = spawn(process.execPath, [BIN, ...BASE, '--format', 'csv', dir, dir + '/rocket.jpg'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).not.toMatch(/EPIPE|Unhandled/);
    expect(code).not.toBe(null);
  });

  it('takes an image after --plus for an image, also when it is the only one', async () => {
    // Offline with an empty cache: the run stops at the official context, which proves that --plus got no file.
    const cache = mkdtempSync(join(tmpdir(), 'clip-iqa-cache-'));
    const r = await runCli([...BASE, '--offline', '--cache-dir', cache, '-a', 'quality', '--plus', join(dir, 'rocket.jpg')]);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(/missing required argument/);
    expect(r.stderr).toMatch(/the CLIP-IQA\+ context clipiqa\+ is not in the cache/);
  });

  it('rejects bad usage with exit status 2 and a clear message', async () => {
    const unknown = await runCli([...BASE, '-a', 'qualty', join(dir, 'rocket.jpg')]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown attribute "qualty"/);
    const mode = await runCli([...BASE, '--positional', 'sideways', join(dir, 'rocket.jpg')]);
    expect(mode.code).toBe(2);
    expect(mode.stderr).toMatch(/sideways/);
    const output = await runCli([...BASE, '-o', '/nonexistent-dir/scores.json', join(dir, 'rocket.jpg')]);
    expect(output.code).toBe(2);
    expect(output.stderr).toMatch(/cannot write the results \/nonexistent-dir\/scores\.json: the directory \/nonexistent-dir does not exist/);
    const report = await runCli([...BASE, '--report', dir + '/', join(dir, 'rocket.jpg')]);
    expect(report.code).toBe(2);
    expect(report.stderr).toMatch(/cannot write the report .*: that is a directory/);
    const pair = await runCli([...BASE, '-p', 'no bar here', join(dir, 'rocket.jpg')]);
    expect(pair.code).toBe(2);
    expect(pair.stderr).toMatch(/not "positive\|negative"/);
  });
});

describe('clip-iqa embed, prompts, models', () => {
  it('embed prints image and text features equal to the library', async () => {
    const image = fixture('images', 'img1-96x80-rgb.png');
    const r2 = await runCli(['embed', ...BASE, '--json', '--text', 'Good photo.', image]);
    expect(r2.code, r2.stderr).toBe(0);
    const doc = JSON.parse(r2.stdout);
    const iqa = await ClipIqa.load({ model: MODEL, vocab: VOCAB });
    const want = await iqa.embedImage(image);
    const text = (await iqa.embedText(['Good photo.']))[0]!;
    await iqa.dispose();
    expect(doc.dim).toBe(want.length);
    doc.images[0].features.forEach((v: number, i: number) => expect(v).toBeCloseTo(want[i]!, 5));
    doc.texts[0].features.forEach((v: number, i: number) => expect(v).toBeCloseTo(text[i]!, 5));
  });

  it('embed checks its output file before loading the model', async () => {
    const r = await runCli(['embed', ...BASE, '-o', '/nonexistent-dir/features.json', fixture('images', 'img1-96x80-rgb.png')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot write the features \/nonexistent-dir\/features\.json: the directory \/nonexistent-dir does not exist/);
  });

  it('prompts lists every attribute with its polarity', async () => {
    const r = await runCli(['prompts', '--json']);
    const doc = JSON.parse(r.stdout);
    expect(doc.attributes).toHaveLength(17);
    expect(doc.attributes.find((a: { name: string }) => a.name === 'noisiness')).toMatchObject({ positive: 'Noisy photo.', high: 'noisy' });
    const clean = JSON.parse((await runCli(['prompts', '--json', '--noisiness', 'clean'])).stdout);
    expect(clean.attributes.find((a: { name: string }) => a.name === 'noisiness')).toMatchObject({ positive: 'Clean photo.', high: 'clean' });
    expect((await runCli(['prompts'])).stdout).toMatch(/noisiness\s+"Noisy photo\." vs "Clean photo\."/);
  });

  it('offline with an empty cache fails fast, naming the file and where to put it', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'clip-iqa-cache-'));
    const r = await runCli(['--offline', '--cache-dir', cache, photo('rocket.jpg')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/RN50\.pt/);
    expect(r.stderr).toContain(join(cache, 'models', 'RN50', 'RN50.pt'));
  });

  it('fetches a model and vocabulary from URLs once, then works offline from the cache', async () => {
    const model = readFileSync(MODEL);
    const vocab = readFileSync(VOCAB);
    const server = await startServer({ '/tiny-rn.safetensors': { body: model }, '/bpe.txt.gz': { body: vocab } });
    try {
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      const cache = mkdtempSync(join(tmpdir(), 'clip-iqa-cache-'));
      const args = [
        '-m', `${server.url('/tiny-rn.safetensors')}#sha256=${sha(model)}`,
        '--vocab', `${server.url('/bpe.txt.gz')}#sha256=${sha(vocab)}`,
        '--cache-dir', cache, '-a', 'quality', '--json', photo('chelsea.png'),
      ];
      const first = await runCli(args);
      expect(first.code, first.stderr).toBe(0);
      expect(server.count()).toBe(2);
      const second = await runCli(['--offline', ...args]);
      expect(second.code, second.stderr).toBe(0);
      expect(server.count()).toBe(2);
      expect(json(second).images[0]).toEqual(json(first).images[0]);
      const list = JSON.parse((await runCli(['models', 'list', '--json', '--cache-dir', cache])).stdout) as { name: string; cached: boolean }[];
      expect(list.filter((i) => i.cached).length).toBe(2);
      expect((await runCli(['models', 'path', '--cache-dir', cache])).stdout.trim()).toBe(cache);
    } finally {
      await server.close();
    }
  });
});
