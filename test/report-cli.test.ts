/**
 * `clip-iqa report` and the results reader behind it: saved JSON and JSONL results (with and without the run
 * header, malformed lines, an interrupted last line, old files), thumbnails from the files the rows name or a
 * placeholder, the run's metadata and score directions on the page. No model is loaded: the images are made here.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageRow, RunInfo } from '../src/cli/output.js';
import { isClipIqaError } from '../src/errors.js';
import { renderReport } from '../src/report/html.js';
import { parseResults, readResults } from '../src/report/results.js';
import { runCli } from './helpers/cli.js';
import { startServer } from './helpers/http-server.js';

const RUN: RunInfo = {
  tool: 'clip-iqa',
  version: '0.2.0',
  model: 'RN50',
  model_sha256: 'a'.repeat(64),
  architecture: 'ResNet',
  precision: 'float32',
  positional: 'none',
  noisiness: 'noisy',
  resize: null,
  decode: { orientation: 'exif', alpha: 'drop', background: '#ffffff', icc: 'convert', max_pixels: 268435456 },
  plus: null,
  created: '2025-03-04T05:06:07.000Z',
};
const PROMPTS = { quality: ['Good photo.', 'Bad photo.'], noisiness: ['Noisy photo.', 'Clean photo.'], vivid: ['Vivid photo.', 'Dull photo.'] };
const HIGHER_BETTER = { quality: true, noisiness: false, vivid: true };

const row = (file: string, q: number): ImageRow => ({ file, width: 64, height: 48, scores: { quality: q, noisiness: 1 - q, vivid: q / 2 } });

/** `[data-name]` of each card, in page order. */
const cardNames = (html: string) => [...html.matchAll(/<article class="card" data-name="([^"]*)"/g)].map((m) => m[1]!);

function parseError(text: string, name = 'r.json', format?: 'json' | 'jsonl'): string {
  try {
    parseResults(text, name, format);
  } catch (e) {
    expect(isClipIqaError(e)).toBe(true);
    return `${(e as { code: string }).code}: ${(e as Error).message}`;
  }
  throw new Error('no error');
}

describe('reading saved results', () => {
  it('reads the JSON document with its run metadata and score directions', () => {
    const doc = { model: 'RN50', positional: 'none', prompts: PROMPTS, run: RUN, higher_better: HIGHER_BETTER, images: [row('a.jpg', 0.2), { file: 'b.jpg', error: { code: 'E_IMAGE', message: 'b.jpg: broken' } }], summary: { images: 2, failed: 1, seconds: 3.5 } };
    const r = parseResults(JSON.stringify(doc, null, 2), 'r.json');
    expect(r.format).toBe('json');
    expect(r.header).toEqual({ model: 'RN50', positional: 'none', prompts: PROMPTS, names: ['quality', 'noisiness', 'vivid'], run: RUN, higherBetter: HIGHER_BETTER });
    expect(r.rows).toEqual(doc.images);
    expect(r.seconds).toBe(3.5);
    expect(r.skipped).toEqual([]);
  });

  it('reads JSONL with a header line, skipping malformed lines by number and naming a cut last line', () => {
    const lines = [
      JSON.stringify({ run: RUN, prompts: PROMPTS, higher_better: HIGHER_BETTER }),
      JSON.stringify(row('a.jpg', 0.9)),
      '{"file": "b.jpg", "width": 64, "height": 48, "scores": {"quality": "high"}}',
      '',
      'not json at all',
      JSON.stringify({ width: 1 }),
      JSON.stringify(row('c.jpg', 0.4)),
      '{"file": "d.jpg", "width": 64, "hei',
    ];
    const r = parseResults(lines.join('\n'), 'r.jsonl', 'jsonl');
    expect(r.rows.map((x) => x.file)).toEqual(['a.jpg', 'c.jpg']);
    expect(r.header.model).toBe('RN50');
    expect(r.header.names).toEqual(['quality', 'noisiness', 'vivid']);
    expect(r.skipped.map((s) => s.where)).toEqual(['line 3', 'line 5', 'line 6', 'line 8']);
    expect(r.skipped[0]!.reason).toBe('the score "quality" is not a number');
    expect(r.skipped[1]!.reason).toMatch(/^not valid JSON/);
    expect(r.skipped[2]!.reason).toBe('no "file"');
    expect(r.skipped[3]!.reason).toMatch(/the last line is cut short: an interrupted run\?/);
  });

  it('loads old files without run metadata: names from the rows, the attributes’ prompts assumed', () => {
    const r = parseResults([row('a.jpg', 0.5), row('b.jpg', 0.6)].map((x) => JSON.stringify(x)).join('\n'), 'old.jsonl');
    expect(r.format).toBe('jsonl');
    expect(r.header.names).toEqual(['quality', 'noisiness', 'vivid']);
    expect(r.header.prompts.quality).toEqual(['Good photo.', 'Bad photo.']);
    expect(r.header.prompts.vivid).toBe('prompts not recorded in the results');
    expect(r.header.model).toBe('not recorded');
    expect(r.header.run).toBeUndefined();
    expect(r.notes.join(' ')).toMatch(/standard prompts are assumed/);
    // An old JSON document has prompts but no run.
    const old = parseResults(JSON.stringify({ model: 'RN50', positional: 'none', prompts: PROMPTS, images: [row('a.jpg', 0.5)], summary: { images: 1, failed: 0, seconds: 1 } }), 'old.json');
    expect(old.header.run).toBeUndefined();
    expect(old.header.higherBetter).toBeUndefined();
    expect(old.header.names).toEqual(['quality', 'noisiness', 'vivid']);
  });

  it('keeps the last row of a file listed twice, and JSONL named .json', () => {
    const text = [{ file: 'a.jpg', error: { code: 'E_IMAGE', message: 'x' } }, row('b.jpg', 0.1), row('a.jpg', 0.7)].map((x) => JSON.stringify(x)).join('\n');
    const r = parseResults(text, 'r.json', 'json');
    expect(r.rows).toEqual([row('a.jpg', 0.7), row('b.jpg', 0.1)]);
    expect(r.notes).toContain('1 rows repeat a file listed before; the last row of each file is used');
  });

  it('refuses what is not results, saying what it is', () => {
    expect(parseError('', 'r.json')).toMatch(/^E_RESULTS: r\.json: the file is empty/);
    expect(parseError('{"model": "RN50", "images": ', 'r.json')).toMatch(/^E_RESULTS: r\.json: not valid JSON/);
    expect(parseError('[1, 2]', 'r.json')).toMatch(/JSON, but a list, not results/);
    expect(parseError('{"hello": 1}', 'r.json')).toMatch(/a JSON object without an "images" list/);
    expect(parseError('{"images": [1, {"file": 3}]}', 'r.json')).toMatch(/none of its 2 images is a valid row \(images\[0\]: not a JSON object\)/);
    expect(parseError('garbage\nmore garbage', 'r.jsonl', 'jsonl')).toMatch(/no line is an image row \(line 1: not valid JSON/);
    expect(parseError('file,width\na.jpg,1', 'r.txt')).toMatch(/not valid JSON/);
  });

  it('names a missing file, a directory and CSV results', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clip-iqa-results-'));
    try {
      const codeOf = (p: Promise<unknown>) => p.then(() => 'no error', (e: { code: string; message: string }) => `${e.code}: ${e.message}`);
      expect(await codeOf(readResults(join(dir, 'nope.json')))).toMatch(/^E_NOT_FOUND: .*nope\.json: no such file/);
      expect(await codeOf(readResults(dir))).toMatch(/^E_NOT_FOUND: .* is a directory/);
      writeFileSync(join(dir, 'r.csv'), 'file,width,height,quality,error\na.jpg,1,1,0.5,\n');
      expect(await codeOf(readResults(join(dir, 'r.csv')))).toMatch(/^E_RESULTS: .*CSV results record no prompts/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the page of saved results', () => {
  it('shows the run metadata and which way each score points, escaped', async () => {
    const html = await renderReport(
      { header: { model: 'RN50', positional: 'none', prompts: PROMPTS, names: ['quality', 'noisiness', 'vivid'], run: { ...RUN, architecture: '<script>x</script>' }, higherBetter: HIGHER_BETTER }, rows: [row('a.jpg', 0.3)] },
      { thumbnails: false },
    );
    expect(html).toMatch(/<dt>clip-iqa<\/dt><dd>0\.2\.0<\/dd>/);
    expect(html).toContain('<section class="run" id="run"');
    expect(html).toContain('<tr><th scope="row"><bdi>model_sha256</bdi></th><td><bdi>' + 'a'.repeat(64) + '</bdi></td></tr>');
    expect(html).toContain('<tr><th scope="row"><bdi>decode.orientation</bdi></th><td><bdi>exif</bdi></td></tr>');
    expect(html).not.toContain('<script>x');
    expect(html).toContain('&#60;script&#62;x&#60;/script&#62;');
    expect(html).toContain('<th scope="row"><bdi>noisiness</bdi> <span class="arrow" title="lower is better" aria-label="lower is better">↓</span></th>');
    expect(html).toContain('<span class="main-name"><bdi>quality</bdi> ↑</span>');
    expect(html).toContain('<span class="bar-name"><bdi>noisiness</bdi> ↓</span>');
    // Without them, nothing of either.
    const plain = await renderReport({ header: { model: 'RN50', positional: 'none', prompts: PROMPTS, names: ['quality'] }, rows: [row('a.jpg', 0.3)] }, { thumbnails: false });
    expect(plain).not.toContain('id="run"');
    expect(plain).not.toMatch(/[↑↓]/);
  });
});

describe('clip-iqa report', () => {
  let dir: string;
  const PHOTOS = ['red.png', 'sub/blue.jpg'];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'clip-iqa-report-cli-'));
    mkdirSync(join(dir, 'sub'));
    await sharp({ create: { width: 80, height: 60, channels: 3, background: '#d02020' } }).png().toFile(join(dir, PHOTOS[0]!));
    await sharp({ create: { width: 60, height: 80, channels: 3, background: '#2040d0' } }).jpeg().toFile(join(dir, PHOTOS[1]!));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('builds the report from JSONL: thumbnails of the files at hand, placeholders for the rest, no rescoring', async () => {
    const lines = [
      JSON.stringify({ run: RUN, prompts: PROMPTS, higher_better: HIGHER_BETTER }),
      JSON.stringify(row('red.png', 0.8)),
      JSON.stringify(row('sub/blue.jpg', 0.9)),
      JSON.stringify(row('gone.jpg', 0.5)),
      JSON.stringify(row('https://example.invalid/web.jpg', 0.1)),
      JSON.stringify({ file: 'broken.jpg', error: { code: 'E_IMAGE', message: 'broken.jpg: not an image' } }),
    ];
    writeFileSync(join(dir, 'results.jsonl'), `${lines.join('\n')}\n`);
    // From another folder: relative paths are found beside the results file.
    const r = await runCli(['report', join(dir, 'results.jsonl'), '-o', join(dir, 'out.html')], { cwd: tmpdir() });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/wrote .*out\.html \(4 images, 1 failed, [\d.]+ KiB\)/);
    expect(r.stderr).toMatch(/1 images are URLs and have placeholders; --fetch-urls fetches their thumbnails/);
    const html = readFileSync(join(dir, 'out.html'), 'utf8');
    expect(cardNames(html)).toEqual(['sub/blue.jpg', 'red.png', 'gone.jpg', 'https://example.invalid/web.jpg']);
    expect(html.match(/<img src="data:image\/webp;base64,/g)).toHaveLength(2);
    expect(html).toContain(`aria-label="No preview of gone.jpg: no such file gone.jpg (looked for in ${tmpdir()} and ${dir})"`);
    expect(html).toContain('No preview of web.jpg: a URL, not fetched (clip-iqa report --fetch-urls fetches it)');
    expect(html).toMatch(/<code>E_IMAGE<\/code>/);
    expect(html).toContain('<dt>clip-iqa</dt><dd>0.2.0</dd>');
    expect(html).toMatch(/<dt>Model<\/dt><dd><bdi>RN50<\/bdi><\/dd>/);
  });

  it('reports skipped lines with their numbers and exits 1; defaults the output name; sorts as asked', async () => {
    const text = [JSON.stringify(row('red.png', 0.2)), '{oops', JSON.stringify(row('sub/blue.jpg', 0.1)), '{"file": "x.jpg", "wid'].join('\n');
    writeFileSync(join(dir, 'cut.jsonl'), text);
    const r = await runCli(['report', 'cut.jsonl', '--sort', 'vivid', '--title', 'Cut <short>'], { cwd: dir });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('cut.jsonl line 2: not valid JSON');
    expect(r.stderr).toMatch(/cut\.jsonl line 4: not valid JSON .*the last line is cut short: an interrupted run\?\); skipped/);
    const html = readFileSync(join(dir, 'cut.html'), 'utf8');
    expect(cardNames(html)).toEqual(['red.png', 'sub/blue.jpg']);
    expect(html).toContain('<h1>Cut &#60;short&#62;</h1>');
    expect(html).toMatch(/<span class="main-name"><bdi>vivid<\/bdi><\/span>/);
  });

  it('fetches the thumbnails of URL images only with --fetch-urls', async () => {
    const server = await startServer({ '/web.png': { body: await sharp({ create: { width: 40, height: 30, channels: 3, background: '#20a040' } }).png().toBuffer() } });
    try {
      writeFileSync(join(dir, 'web.jsonl'), `${JSON.stringify(row(server.url('/web.png'), 0.5))}\n`);
      const plain = await runCli(['report', '-q', 'web.jsonl', '-o', 'web-plain.html'], { cwd: dir });
      expect(plain.code, plain.stderr).toBe(0);
      expect(server.count()).toBe(0);
      expect(readFileSync(join(dir, 'web-plain.html'), 'utf8')).toContain('a URL, not fetched');
      const fetched = await runCli(['report', '-q', '--fetch-urls', 'web.jsonl', '-o', 'web.html'], { cwd: dir });
      expect(fetched.code, fetched.stderr).toBe(0);
      expect(server.count('/web.png')).toBe(1);
      expect(readFileSync(join(dir, 'web.html'), 'utf8').match(/<img src="data:image\/webp;base64,/g)).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it('refuses what it cannot use, before writing anything (exit 2)', async () => {
    writeFileSync(join(dir, 'notes.json'), '{"hello": "world"}');
    const bad = await runCli(['report', 'notes.json', '-o', 'notes.html'], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/notes\.json: a JSON object without an "images" list; clip-iqa report reads what clip-iqa score writes/);
    const missing = await runCli(['report', 'nope.jsonl'], { cwd: dir });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/nope\.jsonl: no such file/);
    writeFileSync(join(dir, 'ok.json'), JSON.stringify({ model: 'RN50', positional: 'none', prompts: PROMPTS, images: [row('red.png', 0.5)] }));
    const sort = await runCli(['report', 'ok.json', '--sort', 'nope'], { cwd: dir });
    expect(sort.code).toBe(2);
    expect(sort.stderr).toMatch(/cannot be sorted by "nope"/);
    const noDir = await runCli(['report', 'ok.json', '-o', join(dir, 'no', 'such', 'r.html')], { cwd: dir });
    expect(noDir.code).toBe(2);
    expect(noDir.stderr).toMatch(/the directory .* does not exist/);
  });
});
