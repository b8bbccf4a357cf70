/**
 * The HTML report: radar geometry, thumbnails, the page's content (offline, escaped, sorted), atomic writing; then
 * the page in headless Chromium (renders, sorts, sends no request, runs radar.ts as-is), and end to end with the
 * fixture model through the API and through the CLI.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { type ImageRow, type RunHeader, imageRow, runHeader } from '../src/cli/output.js';
import { isClipIqaError } from '../src/errors.js';
import { ATTRIBUTES, ATTRIBUTE_SETS, ENSEMBLE, ENSEMBLE_PAIRS } from '../src/iqa/prompts.js';
import { commonFolder, renderReport, writeReport } from '../src/report/html.js';
import { escapeMarkup, radarLayout, radarSvg } from '../src/report/radar.js';
import { isThumbnail, makeThumbnail, mapInOrder, thumbnailsInOrder } from '../src/report/thumbnails.js';
import { browserUnavailable, externalRequests, launchChromium, watchPage } from './helpers/browser.js';
import { fixture, photo, repoRoot, VOCAB } from './helpers/shared.js';

const PAPER = ATTRIBUTE_SETS.paper!;
const HOSTILE = `evil "quote's" <script>alert(1)<\\script> & <img src=x onerror=alert(2)>.png`;

function headerFor(names: readonly string[], extra: Record<string, RunHeader['prompts'][string]> = {}): RunHeader {
  const prompts: Record<string, RunHeader['prompts'][string]> = {};
  for (const n of names) {
    const a = ATTRIBUTES.find((x) => x.name === n);
    prompts[n] = extra[n] ?? (a ? [a.positive, a.negative] : ['?', '?']);
  }
  return { model: 'RN50', positional: 'none', prompts, names };
}

/** Deterministic, distinct scores in (0, 1). */
function syntheticScores(names: readonly string[], seed: number): Record<string, number> {
  return Object.fromEntries(names.map((n, i) => [n, 0.001 + 0.998 * (Math.abs(Math.sin(seed * 12.9898 + i * 78.233) * 43758.5453) % 1)]));
}

/** `[data-name, data-scores]` of each card, in page order. */
function cards(html: string): { name: string; scores: number[] }[] {
  return [...html.matchAll(/<article class="card" data-name="([^"]*)" data-scores="([^"]*)">/g)].map((m) => ({
    name: m[1]!,
    scores: m[2]!.split(' ').map(Number),
  }));
}

const unescape = (s: string) => s.replace(/&#(\d+);/g, (_, d: string) => String.fromCharCode(Number(d)));

/** Every resource reference of a page: src and href attributes, CSS url(), srcset. */
function resourceRefs(html: string): string[] {
  return [
    ...[...html.matchAll(/\b(?:src|href|srcset|poster|data|action|xlink:href)\s*=\s*"([^"]*)"/gi)].map((m) => m[1]!),
    ...[...html.matchAll(/\b(?:src|href)\s*=\s*'([^']*)'/gi)].map((m) => m[1]!),
    ...[...html.matchAll(/url\(\s*['"]?([^'")]*)/gi)].map((m) => m[1]!),
    ...[...html.matchAll(/@import\s+['"]?([^'";\s]*)/gi)].map((m) => m[1]!),
  ];
}

// -- radar ----------------------------------------------------------------------------------------------------------

describe('radar geometry', () => {
  it('puts the first axis straight up and turns clockwise, at equal angles', () => {
    const l = radarLayout([1, 1, 1, 1], [], { radius: 50 });
    const d = l.axes.map((a) => ({ x: a.tip.x - l.cx, y: a.tip.y - l.cy }));
    // Up, right, down, left: clockwise on screen, where y grows downwards.
    expect(d[0]!.x).toBeCloseTo(0, 9);
    expect(d[0]!.y).toBeCloseTo(-50, 9);
    expect(d[1]!.x).toBeCloseTo(50, 9);
    expect(d[1]!.y).toBeCloseTo(0, 9);
    expect(d[2]!.y).toBeCloseTo(50, 9);
    expect(d[3]!.x).toBeCloseTo(-50, 9);
    const seven = radarLayout(new Array(7).fill(0.5));
    seven.axes.forEach((a, i) => expect(a.angle).toBeCloseTo(-Math.PI / 2 + (2 * Math.PI * i) / 7, 12));
  });

  it('places each value at value × radius from the centre, clamped to [0, 1]', () => {
    const values = [0, 0.25, 0.5, 0.75, 1, 1.7, -0.3, NaN];
    const l = radarLayout(values, [], { radius: 80 });
    const r = l.axes.map((a) => Math.hypot(a.point.x - l.cx, a.point.y - l.cy));
    expect(r.map((x) => Math.round(x * 1e9) / 1e9)).toEqual([0, 20, 40, 60, 80, 80, 0, 0]);
    // Points lie on their own axis.
    l.axes.forEach((a, i) => {
      if (values[i]! <= 0 || Number.isNaN(values[i])) return;
      expect(Math.atan2(a.point.y - l.cy, a.point.x - l.cx)).toBeCloseTo(Math.atan2(a.tip.y - l.cy, a.tip.x - l.cx), 9);
    });
  });

  it('fits the view box around the circle and every label', () => {
    const names = PAPER;
    const l = radarLayout(new Array(names.length).fill(1), names);
    const vb = l.viewBox;
    expect(l.cx - l.radius).toBeGreaterThanOrEqual(vb.x);
    expect(l.cx + l.radius).toBeLessThanOrEqual(vb.x + vb.width);
    expect(l.cy - l.radius).toBeGreaterThanOrEqual(vb.y);
    expect(l.cy + l.radius).toBeLessThanOrEqual(vb.y + vb.height);
    for (const a of l.axes) {
      expect(a.label.x).toBeGreaterThanOrEqual(vb.x);
      expect(a.label.x).toBeLessThanOrEqual(vb.x + vb.width);
    }
    // Longer labels need a wider box.
    expect(radarLayout([1, 1, 1, 1, 1, 1], ['a', 'b', 'c', 'd', 'e', 'f']).viewBox.width).toBeLessThan(
      radarLayout([1, 1, 1, 1, 1, 1], ['a', 'colorfulness', 'c', 'd', 'e', 'aesthetics']).viewBox.width,
    );
  });

  it('refuses fewer than 3 axes', () => {
    expect(() => radarLayout([0.5, 0.5])).toThrow(/at least 3 axes/);
    expect(() => radarSvg([{ name: 'a', value: 1 }])).toThrow(RangeError);
  });

  it('draws one polygon vertex, point, label and point title per axis, and a chart title', () => {
    const axes = PAPER.map((name, i) => ({ name, value: (i + 1) / 13, group: i < 6 ? 'look' : 'feel', hint: `1 = x${i}` }));
    const svg = radarSvg(axes, { title: 'Look & feel <of> "x"' });
    expect(svg).toMatch(/^<svg class="radar" viewBox="[\d. ]+" role="img"/);
    expect(svg.match(/<circle /g)).toHaveLength(12);
    expect(svg.match(/<text /g)).toHaveLength(12);
    expect(svg.match(/<title>/g)).toHaveLength(13);
    expect(svg).toContain('<title>Look &#38; feel &#60;of&#62; &#34;x&#34;</title>');
    expect(svg.match(/class="radar-label radar-look"/g)).toHaveLength(6);
    expect(svg.match(/class="radar-point radar-feel"/g)).toHaveLength(6);
    const layout = radarLayout(
      axes.map((a) => a.value),
      axes.map((a) => a.name),
    );
    const pts = /<polygon class="radar-area" points="([^"]+)"/.exec(svg)![1]!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);
    expect(pts).toHaveLength(12);
    pts.forEach(([x, y], i) => expect(Math.hypot(x - layout.cx, y - layout.cy)).toBeCloseTo(axes[i]!.value * layout.radius, 1));
  });

  it('escapes names, hints and classes', () => {
    const svg = radarSvg([
      { name: '<b>&"', value: 0.5, group: 'x" onload="y' },
      { name: "it's", value: 0.5, hint: '</title><script>' },
      { name: 'c', value: 0.5 },
    ]);
    expect(svg).not.toContain('<b>');
    expect(svg).not.toContain('<script>');
    expect(svg).not.toMatch(/onload="/);
    expect(svg).toContain('&#60;b&#62;&#38;&#34;');
    expect(escapeMarkup(`<a href="x">'&'</a>`)).toBe('&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;');
  });

  it('is one module without imports, so the browser can load it as it is', () => {
    const source = readFileSync(join(repoRoot, 'src', 'report', 'radar.ts'), 'utf8');
    expect(source).not.toMatch(/^\s*import\s/m);
    expect(source).not.toMatch(/\brequire\(|\bprocess\.|\bBuffer\b|node:/);
  });
});

// -- thumbnails -----------------------------------------------------------------------------------------------------

describe('thumbnails', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'clip-iqa-thumb-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const decode = async (uri: string) => {
    expect(uri).toMatch(/^data:image\/webp;base64,/);
    const bytes = Buffer.from(uri.slice(uri.indexOf(',') + 1), 'base64');
    return { bytes, meta: await sharp(bytes).metadata(), raw: await sharp(bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true }) };
  };

  it('makes a small WebP with the longest side at the asked size', async () => {
    const t = await makeThumbnail(photo('chelsea.png'));
    if (!isThumbnail(t)) throw new Error(t.reason);
    expect([t.width, t.height]).toEqual([240, 160]);
    const { bytes, meta } = await decode(t.uri);
    expect(meta.format).toBe('webp');
    expect([meta.width, meta.height]).toEqual([240, 160]);
    expect(bytes.length).toBeLessThan(20_000);
    const small = await makeThumbnail(photo('camera.png'), { size: 100, quality: 60 });
    expect(isThumbnail(small) && [small.width, small.height]).toEqual([100, 100]);
  });

  it('applies the EXIF orientation, as a viewer shows the photo', async () => {
    // Stored 80×40, left half red, right half blue; orientation 6 = shown turned 90° clockwise: 40×80, red on top.
    const stored = await sharp({ create: { width: 80, height: 40, channels: 3, background: '#0000ff' } })
      .composite([{ input: { create: { width: 40, height: 40, channels: 3, background: '#ff0000' } }, left: 0, top: 0 }])
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const path = join(dir, 'rotated.jpg');
    writeFileSync(path, stored);
    const t = await makeThumbnail(path);
    if (!isThumbnail(t)) throw new Error(t.reason);
    expect([t.width, t.height]).toEqual([40, 80]);
    const { raw, meta } = await decode(t.uri);
    expect(meta.orientation ?? 1).toBe(1); // metadata stripped: browsers must not rotate it a second time
    const px = (x: number, y: number) => [...raw.data.subarray((y * raw.info.width + x) * raw.info.channels, (y * raw.info.width + x) * raw.info.channels + 3)];
    expect(px(20, 10)[0]).toBeGreaterThan(200); // top: red
    expect(px(20, 70)[2]).toBeGreaterThan(200); // bottom: blue
  });

  it('flattens transparency over white', async () => {
    const path = join(dir, 'alpha.png');
    await sharp({ create: { width: 30, height: 30, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
      .png()
      .toFile(path);
    const t = await makeThumbnail(path);
    if (!isThumbnail(t)) throw new Error(t.reason);
    const { raw } = await decode(t.uri);
    expect(Math.min(...raw.data)).toBeGreaterThan(245);
  });

  it('gives a reason, never an error, for what cannot be shown', async () => {
    writeFileSync(join(dir, 'notes.png'), 'not an image');
    writeFileSync(join(dir, 'doc.svg'), '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
    for (const [file, reason] of [
      ['notes.png', /no preview/],
      ['doc.svg', /no preview for SVG/],
      ['missing.jpg', /no preview.*(no such file|ENOENT)/i],
    ] as const) {
      const t = await makeThumbnail(join(dir, file));
      expect(isThumbnail(t)).toBe(false);
      expect((t as { reason: string }).reason).toMatch(reason);
    }
  });

  it('keeps input order with a bounded number in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const out: number[] = [];
    const delays = [30, 5, 20, 1, 15, 2, 25, 3, 10, 4];
    for await (const v of mapInOrder(delays.keys(), 3, async (i) => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, delays[i]));
      inFlight--;
      return i;
    })) {
      out.push(v);
    }
    expect(out).toEqual([...delays.keys()]);
    expect(most).toBe(3);
    const results = [];
    for await (const t of thumbnailsInOrder([photo('camera.png'), { reason: 'read from standard input' }, photo('chelsea.png')], { size: 32 })) {
      results.push(t);
    }
    expect(results.map((t) => (isThumbnail(t) ? `${t.width}x${t.height}` : t.reason))).toEqual(['32x32', 'read from standard input', '32x21']);
  });
});

// -- the page -------------------------------------------------------------------------------------------------------

// The repository has three photographs: kitten.png is a second copy of chelsea.png.
const IMAGES = ['chelsea.png', 'kitten.png', 'rocket.jpg', 'camera.png'] as const;
const copyPhoto = (name: (typeof IMAGES)[number], dest: string): void => copyFileSync(photo(name === 'kitten.png' ? 'chelsea.png' : name), dest);

describe('HTML report', () => {
  let dir: string;
  let rows: ImageRow[];
  let header: RunHeader;
  let html: string;
  const names = [...PAPER, 'warm', 'vivid', ENSEMBLE];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'clip-iqa-report-'));
    for (const f of IMAGES) copyPhoto(f, join(dir, f));
    copyFileSync(photo('camera.png'), join(dir, HOSTILE));
    header = headerFor(names, { vivid: ['Vivid photo.', 'Dull photo.'], [ENSEMBLE]: ENSEMBLE_PAIRS.map((p) => [p.positive, p.negative]) });
    rows = [...IMAGES, HOSTILE].map((f, i) => ({ file: join(dir, f), width: 100 + i, height: 50 + i, scores: syntheticScores(names, i + 3) }));
    rows.splice(2, 0, { file: join(dir, `lost <b>"file"</b>.jpg`), error: { code: 'E_NOT_FOUND', message: `lost <b>"file"</b>.jpg: no such file or directory` } });
    const info = await writeReport(join(dir, 'report.html'), { header, rows, date: new Date('2025-01-02T03:04:05Z'), seconds: 4.2 });
    expect(info).toMatchObject({ scored: 5, failed: 1, path: join(dir, 'report.html') });
    html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(info.bytes).toBe(Buffer.byteLength(html));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const scored = () => rows.filter((r): r is Extract<ImageRow, { scores: unknown }> => 'scores' in r);

  it('references nothing outside the file', () => {
    const refs = resourceRefs(html);
    expect(refs.length).toBeGreaterThan(5); // the thumbnails and in-page links at least
    for (const ref of refs) expect(ref).toMatch(/^(data:image\/webp;base64,|#[\w-]+$)/);
    expect(html).not.toMatch(/\b(?:https?|ftp):/i);
    expect(html.match(/<img /g)).toHaveLength(5);
    expect(html).toContain(`default-src 'none'`);
  });

  it('escapes file names, prompts and error messages', () => {
    expect(html).not.toContain('<img src=x');
    expect(html).not.toContain('<b>"file"</b>');
    expect(html.match(/<script/g)).toHaveLength(1); // the page's own
    // Attribute values keep their quotes escaped, so no value ends early to start an attribute of its own.
    const values = [...html.matchAll(/ (?:title|alt|aria-label|data-name|data-names|data-hints)="([^"]*)"/g)].map((m) => m[1]!);
    expect(values.some((v) => v.includes('&#60;script&#62;'))).toBe(true);
    for (const v of values) expect(v).not.toMatch(/['<>]/);
    expect(html).toContain(escapeMarkup(HOSTILE));
    expect(html).toContain(escapeMarkup(`lost <b>"file"</b>.jpg: no such file or directory`));
    expect(cards(html).map((c) => unescape(c.name))).toContain(join(dir, HOSTILE).toLowerCase());
  });

  it('shows the run: model, positional mode, date, counts, every prompt pair with its polarity', () => {
    expect(html).toMatch(/<dt>Model<\/dt><dd><bdi>RN50<\/bdi><\/dd>/);
    expect(html).toMatch(/<dt>Positional embedding<\/dt><dd>none<\/dd>/);
    expect(html).toContain('<time datetime="2025-01-02T03:04:05.000Z">2025-01-02 03:04 UTC</time>');
    expect(html).toMatch(/<dt>Images<\/dt><dd>6<\/dd>/);
    expect(html).toMatch(/<dt>Failed<\/dt><dd><a href="#failed">1<\/a><\/dd>/);
    expect(html).toMatch(/<dt>Folder<\/dt><dd><bdi>[^<]*clip-iqa-report-\w+\/<\/bdi>/);
    // noisiness, official polarity: near 1 = noisy.
    expect(html).toMatch(/<th scope="row"><bdi>noisiness<\/bdi><\/th><td><span class="kind kind-look">look<\/span><\/td><td>Noisy photo\.<\/td><td>Clean photo\.<\/td>/);
    expect(html).toMatch(/<bdi>vivid<\/bdi><\/th><td><span class="kind kind-custom">your prompt<\/span><\/td><td>Vivid photo\.<\/td><td>Dull photo\.<\/td>/);
    expect(html).toContain(`<td>${ENSEMBLE_PAIRS.map((p) => p.positive).join('<br>')}</td>`);
    expect(html).toContain('1 = noisy · 0 = clean');
    expect(html).toContain('(<b>noisiness</b> outward = noisy)');
  });

  it('orders cards by quality, highest first, and can order by another score', async () => {
    const byQuality = [...scored()].sort((a, b) => b.scores.quality! - a.scores.quality!).map((r) => r.file.toLowerCase());
    expect(cards(html).map((c) => unescape(c.name))).toEqual(byQuality);
    // The ranks and the prominent score follow the same order.
    const mains = [...html.matchAll(/<span class="main-value">([\d.]+)<\/span>/g)].map((m) => Number(m[1]));
    expect(mains).toEqual([...mains].sort((a, b) => b - a));
    expect([...html.matchAll(/<span class="rank">#(\d+)<\/span>/g)].map((m) => Number(m[1]))).toEqual([1, 2, 3, 4, 5]);

    const bySharpness = await renderReport({ header, rows, sortBy: 'sharpness' }, { thumbnails: false });
    const want = [...scored()].sort((a, b) => b.scores.sharpness! - a.scores.sharpness!).map((r) => r.file.toLowerCase());
    expect(want).not.toEqual(byQuality);
    expect(cards(bySharpness).map((c) => unescape(c.name))).toEqual(want);
    expect(bySharpness).toMatch(/<span class="main-name"><bdi>sharpness<\/bdi><\/span>/);
    // Without quality, the first score.
    const noQuality = await renderReport({ header: headerFor(['happy', 'sharpness', 'new']), rows }, { thumbnails: false });
    const byHappy = [...scored()].sort((a, b) => b.scores.happy! - a.scores.happy!).map((r) => r.file.toLowerCase());
    expect(cards(noQuality).map((c) => unescape(c.name))).toEqual(byHappy);
    await expect(renderReport({ header, rows, sortBy: 'nope' })).rejects.toThrow(/cannot be sorted by "nope"/);
  });

  it('draws a radar of the twelve look and feel attributes per card, other scores as bars', () => {
    const svgs = [...html.matchAll(/<svg class="radar"[\s\S]*?<\/svg>/g)].map((m) => m[0]);
    expect(svgs).toHaveLength(5);
    const first = scored().sort((a, b) => b.scores.quality! - a.scores.quality!)[0]!;
    const svg = svgs[0]!;
    // Grid, spokes and labels are drawn once for the page; each card shows them through <use>.
    expect(svg).toContain('<use href="#radar-axes"/>');
    expect(html.match(/<g id="radar-axes"/g)).toHaveLength(1);
    const axes = /<svg class="radar-defs"[\s\S]*?<\/svg>/.exec(html)![0];
    const labels = [...axes.matchAll(/<text [^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    expect(labels).toEqual(PAPER);
    expect(svg).not.toContain('<text');
    // One dot per axis, look and feel apart, each at its value on its axis.
    const dots = (group: string) => [...(new RegExp(`<path class="radar-dots radar-${group}" d="([^"]+)"`).exec(svg)![1]!.matchAll(/M([\d.]+) ([\d.]+)h0/g))].map((m) => [Number(m[1]), Number(m[2])]);
    expect([...dots('look'), ...dots('feel')]).toHaveLength(12);
    const layout = radarLayout(
      PAPER.map((n) => first.scores[n]!),
      PAPER,
    );
    const pts = /points="([^"]+)"/.exec(svg)![1]!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);
    pts.forEach(([x, y], i) => expect(Math.hypot(x - layout.cx, y - layout.cy)).toBeCloseTo(first.scores[PAPER[i]!]! * layout.radius, 1));
    expect([...dots('look'), ...dots('feel')]).toEqual(pts);
    expect(svg).toContain(`<title>Look and feel of ${escapeMarkup(first.file.slice(first.file.lastIndexOf('/') + 1))}: quality ${first.scores.quality!.toFixed(3)}`);
    // warm (extra), vivid (custom), ensemble: bars.
    const card = html.slice(html.indexOf('<article'), html.indexOf('</article>'));
    expect([...card.matchAll(/<span class="bar-name"><bdi>([^<]*)<\/bdi>/g)].map((m) => m[1])).toEqual(['warm', 'vivid', ENSEMBLE]);
    // The data behind the client-side sort: every score, in header order.
    expect(cards(html)[0]!.scores).toEqual(names.map((n) => Math.round(first.scores[n]! * 1e6) / 1e6));
  });

  it('draws only what the run has: flipped noisiness stays on the radar, a borrowed name does not, < 3 gives no radar', async () => {
    const flipped = headerFor(['quality', 'noisiness', 'sharpness', 'happy'], { noisiness: ['Clean photo.', 'Noisy photo.'], happy: ['Joyful photo.', 'Gloomy photo.'] });
    const page = await renderReport({ header: flipped, rows }, { thumbnails: false });
    const svg = /<svg class="radar-defs"[\s\S]*?<\/svg>/.exec(page)![0];
    expect([...svg.matchAll(/<text [^>]*>([^<]*)<\/text>/g)].map((m) => m[1])).toEqual(['quality', 'sharpness', 'noisiness']);
    expect(page).toContain('1 = clean · 0 = noisy');
    expect(page).toMatch(/<span class="bar-name"><bdi>happy<\/bdi>/);
    const two = await renderReport({ header: headerFor(['quality', 'happy']), rows }, { thumbnails: false });
    expect(two).not.toContain('<svg class="radar"');
    expect(two.match(/<ul class="bars">/g)).toHaveLength(5);
  });

  it('lists failures with their messages, and gives standard input a placeholder', async () => {
    expect(html).toMatch(/<section class="failures" id="failed"/);
    expect(html).toMatch(/<code>E_NOT_FOUND<\/code>/);
    const page = await renderReport({ header, rows: [{ file: '-', width: 10, height: 10, scores: syntheticScores(names, 1) }] });
    expect(page).toContain('<div class="thumb placeholder" role="img" aria-label="No preview of -: read from standard input"');
    expect(page).not.toContain('id="failed"');
    const none = await renderReport({ header, rows: [{ file: 'x.jpg', error: { code: 'E_IMAGE', message: 'broken' } }] });
    expect(none).toContain('No image was scored.');
    expect(none).toContain('<td class="message">broken</td>');
  });

  it('is accessible: alt texts, titled charts, a language, a labelled table', () => {
    expect(html).toMatch(/<html lang="en">/);
    for (const m of html.matchAll(/<img [^>]*>/g)) expect(m[0]).toMatch(/ alt="Thumbnail of [^"]+"/);
    expect(html.match(/<svg class="radar"[^>]*role="img"[^>]*><title>/g)).toHaveLength(5);
    expect(html).toMatch(/<th scope="col">Score<\/th>/);
  });

  it('writes atomically, and says clearly when it cannot', async () => {
    const target = join(dir, 'again.html');
    writeFileSync(target, 'previous report');
    // A failure while rendering leaves the previous file as it was, and no temporary file behind.
    const bomb = {
      file: join(dir, 'bomb.png'),
      width: 1,
      height: 1,
      get scores(): Record<string, number> {
        throw new Error('boom');
      },
    };
    await expect(writeReport(target, { header, rows: [...rows, bomb] })).rejects.toThrow(/boom/);
    await expect(writeReport(target, { header, rows, sortBy: 'nope' })).rejects.toThrow(/nope/);
    expect(readFileSync(target, 'utf8')).toBe('previous report');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    await writeReport(target, { header, rows }, { thumbnails: false });
    expect(readFileSync(target, 'utf8')).toMatch(/^<!doctype html>/);

    const failure = async (path: string) => {
      try {
        await writeReport(path, { header, rows }, { thumbnails: false });
      } catch (e) {
        expect(isClipIqaError(e)).toBe(true);
        return (e as Error).message;
      }
      throw new Error(`writing ${path} did not fail`);
    };
    expect(await failure(join(dir, 'no', 'such', 'dir', 'r.html'))).toMatch(/cannot write the report .*r\.html: the directory .*dir does not exist; create it first/);
    expect(await failure(dir)).toMatch(/that is a directory; give a file name such as report\.html/);
    expect(await failure(join(dir, 'kitten.png'))).toMatch(/one of the images of this run/);
    expect(readFileSync(join(dir, 'kitten.png')).subarray(1, 4).toString()).toBe('PNG');
  });

  it('finds the folder all images share', () => {
    expect(commonFolder(['a/b/c.png', 'a/b/d/e.png', 'a/bx/f.png'])).toBe('a/');
    expect(commonFolder(['/x/y/1.png', '/x/y/2.png'])).toBe('/x/y/');
    expect(commonFolder(['1.png', 'x/2.png'])).toBe('');
    expect(commonFolder([])).toBe('');
  });
});

// -- in the browser -------------------------------------------------------------------------------------------------

const noBrowser = browserUnavailable();

describe.skipIf(noBrowser)(`HTML report in Chromium${noBrowser ? ` (skipped: ${noBrowser})` : ''}`, () => {
  let dir: string;
  let file: string;
  let rows: Extract<ImageRow, { scores: unknown }>[];
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  const names = [...PAPER, 'warm'];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'clip-iqa-browser-'));
    for (const f of IMAGES) copyPhoto(f, join(dir, f));
    copyFileSync(photo('camera.png'), join(dir, HOSTILE));
    rows = [...IMAGES, HOSTILE].map((f, i) => ({ file: join(dir, f), width: 512, height: 400, scores: syntheticScores(names, i + 11) }));
    file = join(dir, 'report.html');
    await writeReport(file, {
      header: headerFor(names),
      rows: [...rows, { file: join(dir, 'gone.jpg'), error: { code: 'E_NOT_FOUND', message: 'gone.jpg: no such file or directory' } }],
    });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    if (!process.env.CLIP_IQA_KEEP_SCREENSHOTS) rmSync(dir, { recursive: true, force: true });
  });

  const best = (by: string) => [...rows].sort((a, b) => b.scores[by]! - a.scores[by]!)[0]!.file;
  const base = (f: string) => f.slice(f.lastIndexOf('/') + 1);

  it('renders every card, best first, without any request leaving the page or any error', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const seen = watchPage(page);
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(`file://${file}`);
    await page.waitForLoadState('load');
    expect(await page.locator('article.card').count()).toBe(5);
    expect(await page.locator('article.card').first().locator('h3.name').textContent()).toBe(base(best('quality')));
    // Thumbnails decoded: natural sizes known.
    const sizes = await page.locator('article.card img').evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth));
    expect(sizes.every((w) => w > 0)).toBe(true);
    // The chart's shared grid and labels are drawn through <use>, and its dots over them.
    const chart = page.locator('article.card').first().locator('svg.radar');
    expect(await chart.locator('path.radar-dots').count()).toBe(2);
    expect((await chart.locator('use').boundingBox())!.width).toBeGreaterThan(100);
    expect(await page.locator('#failed td.message').textContent()).toBe('gone.jpg: no such file or directory');
    // The script ran under the page's CSP (its hash matches): the controls are shown.
    expect(await page.locator('#controls').isVisible()).toBe(true);
    expect(seen.requests.length).toBeGreaterThan(0);
    expect(externalRequests(seen.requests)).toEqual([]);
    expect(seen.consoleErrors).toEqual([]);
    expect(seen.pageErrors).toEqual([]);
    expect(dialogs).toEqual([]);
    // The hostile name stayed text: no element or handler came out of it.
    expect(await page.evaluate(() => [document.scripts.length, document.querySelectorAll('[onerror], img[src="x"]').length])).toEqual([1, 0]);

    const shot = join(dir, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    const png = readFileSync(shot);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.length).toBeGreaterThan(50_000);
    const meta = await sharp(png).metadata();
    expect(meta.width).toBe(1280);
    if (process.env.CLIP_IQA_KEEP_SCREENSHOTS) console.log(`report screenshot: ${shot}`);

    // A phone: one column, nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(dir, 'report-phone.png') });
    await page.close();
  });

  it('re-sorts by any score and filters by name', async () => {
    const page = await browser.newPage();
    await page.goto(`file://${file}`);
    const firstName = () => page.locator('article.card').first().locator('h3.name').textContent();
    await page.selectOption('#sort-key', { label: 'sharpness' });
    expect(await firstName()).toBe(base(best('sharpness')));
    expect(await page.locator('article.card').first().locator('.main-name').textContent()).toBe('sharpness');
    expect(await page.locator('article.card').first().locator('.rank').textContent()).toBe('#1');
    await page.selectOption('#sort-dir', 'asc');
    expect(await firstName()).toBe(base([...rows].sort((a, b) => a.scores.sharpness! - b.scores.sharpness!)[0]!.file));
    await page.fill('#filter', 'KITTEN');
    expect(await page.locator('article.card:visible').count()).toBe(1);
    expect(await page.locator('#shown').textContent()).toBe('1 of 5 shown');
    await page.fill('#filter', '<script>');
    expect(await page.locator('article.card:visible h3.name').textContent()).toBe(HOSTILE);
    await page.close();
  });

  it('shows everything without JavaScript', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto(`file://${file}`);
    expect(await page.locator('article.card').count()).toBe(5);
    expect(await page.locator('article.card').first().locator('h3.name').textContent()).toBe(base(best('quality')));
    expect(await page.locator('#controls').isVisible()).toBe(false);
    await context.close();
  });

  it('pages a long report with JavaScript, and shows every card without it', async () => {
    const many = Array.from({ length: 250 }, (_, i) => ({ file: join(dir, `many-${String(i).padStart(3, '0')}.jpg`), width: 64, height: 48, scores: syntheticScores(names, i + 100) }));
    const long = join(dir, 'long.html');
    await writeReport(long, { header: { ...headerFor(names), higherBetter: { quality: true, noisiness: false } }, rows: many }, { thumbnails: false });
    const page = await browser.newPage();
    const seen = watchPage(page);
    await page.goto(`file://${long}`);
    const visible = () => page.locator('article.card:visible').count();
    const firstName = () => page.locator('article.card:visible').first().locator('h3.name').textContent();
    expect(await visible()).toBe(100);
    expect(await page.locator('#page').textContent()).toBe('1–100 of 250');
    expect(await page.locator('#prev').isDisabled()).toBe(true);
    await page.click('#next');
    await page.click('#next');
    expect(await page.locator('#page').textContent()).toBe('201–250 of 250');
    expect(await visible()).toBe(50);
    expect(await page.locator('#next').isDisabled()).toBe(true);
    expect(await page.locator('article.card:visible .rank').first().textContent()).toBe('#201');
    // Sorting and filtering work over every card, not the page shown, and start again at page 1.
    await page.selectOption('#sort-key', { label: 'sharpness' });
    expect(await page.locator('#page').textContent()).toBe('1–100 of 250');
    expect(await firstName()).toBe(base(many.reduce((a, b) => (b.scores.sharpness! > a.scores.sharpness! ? b : a)).file));
    await page.fill('#filter', 'many-24');
    expect(await visible()).toBe(10);
    expect(await page.locator('#shown').textContent()).toBe('10 of 250 shown');
    await page.fill('#filter', '');
    await page.selectOption('#per-page', 'all');
    expect(await visible()).toBe(250);
    // Which way a score points, from the run: an arrow by its name.
    await page.selectOption('#sort-key', { label: 'noisiness ↓' });
    expect(await page.locator('article.card').first().locator('.main-name').textContent()).toBe('noisiness ↓');
    expect(seen.pageErrors).toEqual([]);
    expect(seen.consoleErrors).toEqual([]);
    await page.close();

    const context = await browser.newContext({ javaScriptEnabled: false });
    const still = await context.newPage();
    await still.goto(`file://${long}`);
    expect(await still.locator('article.card').count()).toBe(250);
    expect(await still.locator('article.card:visible').count()).toBe(250);
    await context.close();
  });

  it('runs radar.ts unchanged in the browser, drawing what Node draws', async () => {
    const source = readFileSync(join(repoRoot, 'src', 'report', 'radar.ts'), 'utf8');
    const js = ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 } }).outputText;
    const axes = PAPER.map((name, i) => ({ name, value: i / 11, group: i < 6 ? 'look' : 'feel' }));
    const page = await browser.newPage();
    const seen = watchPage(page);
    await page.setContent('<!doctype html><html><body></body></html>');
    await page.addScriptTag({ type: 'module', content: `${js}\nwindow.__svg = radarSvg(${JSON.stringify(axes)}, { title: 'x' });` });
    await page.waitForFunction(() => typeof (window as unknown as { __svg?: string }).__svg === 'string');
    const svg = await page.evaluate(() => (window as unknown as { __svg: string }).__svg);
    expect(svg).toBe(radarSvg(axes, { title: 'x' }));
    await page.evaluate((s) => (document.body.innerHTML = s), svg);
    expect(await page.locator('svg.radar polygon').count()).toBe(1);
    expect(seen.pageErrors).toEqual([]);
    await page.close();
  });
});

// -- end to end -----------------------------------------------------------------------------------------------------

describe('report end to end with the fixture model', () => {
  const images = (['chelsea.png', 'rocket.jpg', 'camera.png'] as const).map((f) => photo(f));
  const model = fixture('tiny-rn', 'model.safetensors');
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'clip-iqa-e2e-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('turns real scores from the API into a report', async () => {
    const iqa = await ClipIqa.load({ model, vocab: VOCAB });
    try {
      // As src/cli/score.ts builds its header and rows.
      const header = runHeader(iqa, iqa.plan({}));
      const inputs = [...images, join(dir, 'missing.png')];
      const rows: ImageRow[] = [];
      for await (const r of iqa.scoreMany(inputs)) rows.push(imageRow(inputs[r.index]!, r));
      const target = join(dir, 'api.html');
      const info = await writeReport(target, { header, rows });
      expect(info).toMatchObject({ scored: 3, failed: 1 });
      const html = readFileSync(target, 'utf8');
      const ok = rows.filter((r): r is Extract<ImageRow, { scores: unknown }> => 'scores' in r);
      const order = [...ok].sort((a, b) => b.scores.quality! - a.scores.quality!);
      expect(cards(html).map((c) => unescape(c.name))).toEqual(order.map((r) => r.file.toLowerCase()));
      cards(html).forEach((c, i) => c.scores.forEach((v, j) => expect(v).toBeCloseTo(order[i]!.scores[header.names[j]!]!, 6)));
      expect(html.match(/<path class="radar-dots/g)).toHaveLength(6);
      expect([...html.matchAll(/<path class="radar-dots[^"]*" d="([^"]*)"/g)].flatMap((m) => m[1]!.match(/h0/g))).toHaveLength(36);
      expect(html.match(/<img src="data:image\/webp;base64,/g)).toHaveLength(3);
      expect(html).toContain(escapeMarkup(model));
      expect(html).toMatch(/<code>E_NOT_FOUND<\/code>|<code>E_IMAGE<\/code>/);
    } finally {
      await iqa.dispose();
    }
  });

  it('is written by `clip-iqa score --report`', async () => {
    const { main } = await import('../src/cli/main.js');
    const target = join(dir, 'cli.html');
    const json = join(dir, 'cli.json');
    const before = process.exitCode;
    try {
      const code = await main(['node', 'clip-iqa', 'score', '-q', '-m', model, '--vocab', VOCAB, '-a', 'look,feel,warm', '--sort', 'sharpness', '-o', json, '--report', target, ...images]);
      expect(code).toBe(0);
    } finally {
      process.exitCode = before;
    }
    expect(existsSync(target)).toBe(true);
    const doc = JSON.parse(readFileSync(json, 'utf8')) as { images: { file: string; scores: Record<string, number> }[] };
    const html = readFileSync(target, 'utf8');
    expect(cards(html).map((c) => unescape(c.name))).toEqual(doc.images.map((r) => r.file.toLowerCase()));
    // The run records which way each score points: sharper is better.
    expect(html).toMatch(/<span class="main-name"><bdi>sharpness<\/bdi> ↑<\/span>/);
    expect(html).toContain('<section class="run" id="run"');
    expect(html.match(/<svg class="radar"/g)).toHaveLength(3);
    expect(html).toMatch(/<span class="bar-name"><bdi>warm<\/bdi>/);
  });

  it('is made again by `clip-iqa report` from saved JSONL, without scoring, as `--report` made it', async () => {
    const { main } = await import('../src/cli/main.js');
    const jsonl = join(dir, 'saved.jsonl');
    const direct = join(dir, 'direct.html');
    const rebuilt = join(dir, 'rebuilt.html');
    const before = process.exitCode;
    try {
      const missing = join(dir, 'missing.png');
      expect(await main(['node', 'clip-iqa', 'score', '-q', '-m', model, '--vocab', VOCAB, '-a', 'look,feel', '-f', 'jsonl', '-o', jsonl, '--report', direct, ...images, missing])).toBe(1);
      expect(await main(['node', 'clip-iqa', 'report', '-q', jsonl, '-o', rebuilt])).toBe(0);
    } finally {
      process.exitCode = before;
    }
    const [a, b] = [readFileSync(direct, 'utf8'), readFileSync(rebuilt, 'utf8')];
    expect(cards(b)).toEqual(cards(a));
    expect(b.match(/<img src="data:image\/webp;base64,/g)).toHaveLength(3);
    expect(b.match(/<svg class="radar"/g)).toHaveLength(3);
    expect(b).toMatch(/<code>E_NOT_FOUND<\/code>/);
  });
});
