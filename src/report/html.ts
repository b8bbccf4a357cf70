/**
 * The HTML report of a run (`clip-iqa score --report`, `clip-iqa report`): one self-contained page, to look at
 * rather than read.
 *
 * - Self-contained and offline: inline CSS, SVG and one small script; thumbnails are `data:` WebP images. A Content
 *   Security Policy in the page forbids every fetch (`default-src 'none'`, images only from `data:`), and the
 *   script runs by its hash alone, so even a file name that slipped past escaping could not run code.
 * - Works without JavaScript: every card, chart and table is in the HTML, in score order. The script adds
 *   re-sorting by any score, filtering by name, and pages of 100 cards.
 * - Scales to thousands of images: the page is streamed to its file card by card while a bounded window of
 *   thumbnails is made (smaller ones beyond 1000 images). Cards are lean: the radar's grid, spokes and labels are
 *   drawn once and shown through `<use>`, a chart holds only its values. With JavaScript only the page shown is in
 *   the document; without, cards off screen are not laid out (`content-visibility: auto`). scripts/bench-report.ts
 *   measures it.
 * - Written atomically: a temporary file beside the target, renamed over it once complete.
 */
import { createHash, randomBytes } from 'node:crypto';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { type ImageRow, type RunHeader, sortRows } from '../cli/output.js';
import { checkWritableFile, outputError } from '../util/output-file.js';
import { ClipIqaError, errorMessage } from '../errors.js';
import { ATTRIBUTES, type AttributeGroup } from '../iqa/prompts.js';
import { RADAR_CSS, escapeMarkup as esc, type RadarAxis, radarBackground, radarSvg } from './radar.js';
import { type NoThumbnail, type ThumbnailOptions, type ThumbnailResult, type ThumbnailSource, isThumbnail, thumbnailsInOrder } from './thumbnails.js';

export interface ReportInput {
  readonly header: RunHeader;
  /** Every image of the run, scored or failed, in any order. */
  readonly rows: readonly ImageRow[];
  /** The score cards are ordered by (highest first); default `quality` when scored, else the first score. */
  readonly sortBy?: string;
  /** Page heading; default "CLIP-IQA report". */
  readonly title?: string;
  /** When the run happened; default now. */
  readonly date?: Date;
  /** Wall time of the run in seconds, shown when given. */
  readonly seconds?: number;
}

export interface ReportOptions {
  /** Thumbnail size and quality (default 240 px longest side, 160 px beyond 1000 images; JPEG quality 75). */
  readonly thumbnail?: Pick<ThumbnailOptions, 'size' | 'quality' | 'limitInputPixels'>;
  /** Thumbnails made at once; default the cores, at most 4. */
  readonly concurrency?: number;
  /** Directory relative file names are resolved against; default the working directory. */
  readonly cwd?: string;
  /** Further directories a relative file name is looked up in when it is not found under `cwd` (in order). */
  readonly alsoIn?: readonly string[];
  /**
   * Fetches the bytes of an `http(s)://` image for its thumbnail. Default: none, and such images get a
   * placeholder that says they were not fetched (a report never reaches the network unless asked).
   */
  readonly fetchUrl?: (url: string) => Promise<Uint8Array>;
  /** Called as each card is written (with its thumbnail), e.g. for a progress bar. */
  readonly onCard?: (done: number, total: number) => void;
  /** `false` leaves out thumbnails altogether (placeholders), e.g. when the images are not at hand. */
  readonly thumbnails?: boolean;
}

export interface ReportInfo {
  /** Absolute path written. */
  readonly path: string;
  readonly bytes: number;
  /** Images shown as cards and images listed as failed. */
  readonly scored: number;
  readonly failed: number;
}

type ScoredRow = Extract<ImageRow, { scores: unknown }>;
type FailedRow = Extract<ImageRow, { error: unknown }>;

/** What a score measures, from the run header, for the prompt table, the radar and the card hints. */
interface ScoreInfo {
  readonly name: string;
  /** look/feel/extra for the paper's attributes with their own prompts; otherwise what kind of score. */
  readonly kind: AttributeGroup | 'custom' | 'ensemble' | 'other';
  /** Prompt pairs (one, or several for an ensemble). */
  readonly pairs: readonly (readonly [string, string])[];
  /** Free text for scores that are not a plain pair (CLIP-IQA+). */
  readonly description?: string;
  /** One line on what high and low mean, for cards: "1 = noisy · 0 = clean". */
  readonly hint: string;
  /** Which way is better, when the run recorded it: true when higher is. */
  readonly higherBetter?: boolean;
}

const KIND_LABEL: Record<ScoreInfo['kind'], string> = {
  look: 'look',
  feel: 'feel',
  extra: 'extra',
  custom: 'your prompt',
  ensemble: 'ensemble',
  other: 'learned',
};

/** "Noisy photo." → "noisy": the word a person reads on an axis end. */
const promptWord = (prompt: string): string => prompt.replace(/\s+(photo|image)\.?$/i, '').replace(/\.$/, '').trim().toLowerCase() || prompt;

function describeScores(header: RunHeader): ScoreInfo[] {
  return header.names.map((name) => ({ ...describeScore(header, name), higherBetter: header.higherBetter?.[name] }));
}

function describeScore(header: RunHeader, name: string): ScoreInfo {
  const p = header.prompts[name];
  if (typeof p === 'string' || p === undefined) {
    return { name, kind: 'other', pairs: [], description: p ?? '', hint: p ?? '' };
  }
  if (p.length > 0 && p.every((x) => Array.isArray(x))) {
    const pairs = (p as readonly (readonly string[])[]).map((x) => [x[0] ?? '', x[1] ?? ''] as const);
    return { name, kind: 'ensemble', pairs, hint: `mean of ${pairs.length} prompt pairs` };
  }
  const [positive = '', negative = ''] = p as readonly string[];
  // A paper attribute counts as such only with its own prompts (either way round: --noisiness clean flips it);
  // a custom pair that merely reuses the name is the user's own.
  const attr = ATTRIBUTES.find((a) => a.name === name && ((a.positive === positive && a.negative === negative) || (a.positive === negative && a.negative === positive)));
  return {
    name,
    kind: attr ? attr.group : 'custom',
    pairs: [[positive, negative]],
    hint: `1 = ${promptWord(positive)} · 0 = ${promptWord(negative)}`,
  };
}

/** " ↑" or " ↓" after a score name when the run says which way is better; "" when it does not. */
const arrowText = (s: ScoreInfo): string => (s.higherBetter === undefined ? '' : s.higherBetter ? ' ↑' : ' ↓');

function arrowHtml(s: ScoreInfo): string {
  if (s.higherBetter === undefined) return '';
  const [arrow, what] = s.higherBetter ? ['↑', 'higher is better'] : ['↓', 'lower is better'];
  return ` <span class="arrow" title="${what}" aria-label="${what}">${arrow}</span>`;
}

/** The radar's axes: the paper's look and feel attributes this run has, in the paper's order (comparable across runs). */
function radarNames(scores: readonly ScoreInfo[]): string[] {
  const byName = new Map(scores.map((s) => [s.name, s]));
  const names = ATTRIBUTES.filter((a) => (a.group === 'look' || a.group === 'feel') && byName.get(a.name)?.kind === a.group).map((a) => a.name);
  return names.length >= 3 ? names : [];
}

/** The score cards are ordered by: the one asked for, else quality, else the first. */
export function reportSortKey(header: RunHeader, sortBy?: string): string | undefined {
  if (sortBy !== undefined) {
    if (!header.names.includes(sortBy)) {
      throw new ClipIqaError('E_OPTION', `the report cannot be sorted by "${sortBy}": not among the scores of this run (${header.names.join(', ')})`);
    }
    return sortBy;
  }
  return header.names.includes('quality') ? 'quality' : header.names[0];
}

const fmt = (v: number | undefined): string => (v !== undefined && Number.isFinite(v) ? v.toFixed(3) : '—');
const meterValue = (v: number | undefined): string => (v !== undefined && Number.isFinite(v) ? String(Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000) : '0');

/**
 * Splits a path for display: the folder every image of the run shares goes into the page header once, so a card
 * shows the file name and only what differs. Only the platform's separators split (a backslash is a legal
 * character of a Linux file name).
 */
const SEPARATORS = sep === '\\' ? /[\\/]/ : /\//;

function lastSeparator(path: string): number {
  let i = path.length - 1;
  while (i >= 0 && !SEPARATORS.test(path[i]!)) i--;
  return i;
}

function fileParts(file: string, common: string): { base: string; dir: string } {
  const cut = lastSeparator(file);
  const base = file.slice(cut + 1) || file;
  const dir = cut < 0 ? '' : file.slice(0, cut + 1);
  return { base, dir: dir.startsWith(common) ? dir.slice(common.length) : dir };
}

/** The longest folder prefix (ending in a separator) of all these paths, or '' when they share none. */
export function commonFolder(files: readonly string[]): string {
  if (files.length === 0) return '';
  let prefix = files[0]!.slice(0, lastSeparator(files[0]!) + 1);
  for (const f of files) {
    while (prefix && !f.startsWith(prefix)) prefix = prefix.slice(0, lastSeparator(prefix.slice(0, -1)) + 1);
    if (!prefix) break;
  }
  return prefix;
}

function stats(rows: readonly ScoredRow[], name: string): { mean: number; min: number; max: number } | undefined {
  let n = 0;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const r of rows) {
    const v = r.scores[name];
    if (v === undefined || !Number.isFinite(v)) continue;
    n++;
    sum += v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  return n ? { mean: sum / n, min, max } : undefined;
}

function formatDate(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

// -- page parts ------------------------------------------------------------------------------------------------------

/** What every part of the page needs to know about the run. */
interface Page {
  readonly input: ReportInput;
  readonly title: string;
  readonly scores: readonly ScoreInfo[];
  readonly byName: ReadonlyMap<string, ScoreInfo>;
  /** Names on the radar, in the paper's order; empty when fewer than 3 (then everything is a bar). */
  readonly radar: readonly string[];
  readonly key: string | undefined;
  /** Scored rows, highest `key` first. */
  readonly scored: readonly ScoredRow[];
  /** Failed rows, in the run's order. */
  readonly failed: readonly FailedRow[];
  /** Folder shared by every scored image, shown once. */
  readonly folder: string;
}

function headerHtml(page: Page): string {
  const { input, scored, failed, key, folder } = page;
  const date = input.date ?? new Date();
  const facts: [string, string][] = [
    ['Model', `<bdi>${esc(input.header.model)}</bdi>`],
    ['Positional embedding', esc(input.header.positional)],
    ['Date', `<time datetime="${esc(date.toISOString())}">${esc(formatDate(date))}</time>`],
    ['Images', `${input.rows.length}`],
    ['Scored', `${scored.length}`],
    ['Failed', failed.length > 0 ? `<a href="#failed">${failed.length}</a>` : '0'],
  ];
  const version = input.header.run?.version;
  if (typeof version === 'string') facts.push(['clip-iqa', esc(version)]);
  if (input.seconds !== undefined) facts.push(['Run time', `${input.seconds.toFixed(1)} s`]);
  if (folder) facts.push(['Folder', `<bdi>${esc(folder)}</bdi>`]);
  facts.push(['Scores', `<a href="#scores">${page.scores.length}, prompts below</a>`]);
  if (input.header.run) facts.push(['Run', '<a href="#run">details below</a>']);
  const sorted = key === undefined ? '' : ` Cards are ordered by <b>${esc(key)}</b>, highest first.`;
  return `<header class="page-head">
<h1>${esc(page.title)}</h1>
<p class="lede">${scored.length} ${scored.length === 1 ? 'image' : 'images'} scored by CLIP-IQA${failed.length > 0 ? `, <a href="#failed">${failed.length} failed</a>` : ''}. Each score is the probability CLIP gives the first prompt of a pair over the second: near 1 the image is closer to the first prompt.${sorted}${page.scores.some((x) => x.higherBetter !== undefined) ? ' ↑ marks a score where higher is better, ↓ one where lower is.' : ''}</p>
<dl class="facts">${facts.map(([k, v]) => `<div><dt>${k}</dt><dd>${v}</dd></div>`).join('')}</dl>
</header>
`;
}

function scoresTableHtml(page: Page): string {
  const rows = page.scores
    .map((s) => {
      const st = stats(page.scored, s.name);
      const prompts =
        s.kind === 'other'
          ? `<td colspan="2">${esc(s.description ?? '')}</td>`
          : `<td>${s.pairs.map((p) => esc(p[0])).join('<br>')}</td><td>${s.pairs.map((p) => esc(p[1])).join('<br>')}</td>`;
      return (
        `<tr><th scope="row"><bdi>${esc(s.name)}</bdi>${arrowHtml(s)}</th><td><span class="kind kind-${s.kind}">${KIND_LABEL[s.kind]}</span></td>${prompts}` +
        `<td class="num">${fmt(st?.mean)}</td><td class="num">${fmt(st?.min)}</td><td class="num">${fmt(st?.max)}</td></tr>`
      );
    })
    .join('\n');
  return `<section class="scores" id="scores" aria-labelledby="scores-title">
<h2 id="scores-title">Scores and their prompts</h2>
<div class="table-wrap"><table>
<thead><tr><th scope="col">Score</th><th scope="col">Kind</th><th scope="col">Near 1: <span class="sub">first prompt</span></th><th scope="col">Near 0: <span class="sub">second prompt</span></th><th scope="col" class="num">Mean</th><th scope="col" class="num">Min</th><th scope="col" class="num">Max</th></tr></thead>
<tbody>
${rows}
</tbody></table></div>
</section>
`;
}

/** One line under the images heading that says how to read a radar, naming the polarity of one axis as example. */
function legendHtml(page: Page): string {
  if (page.radar.length === 0) return '';
  const kinds = new Set(page.radar.map((n) => page.byName.get(n)!.kind));
  const example = page.byName.get(page.radar.includes('noisiness') ? 'noisiness' : page.radar[0]!)!;
  const outward = promptWord(example.pairs[0]![0]);
  return (
    `<p class="legend">Radar: centre 0, rim 1; a point lies further out the closer the image is to the first prompt ` +
    `(<b>${esc(example.name)}</b> outward = ${esc(outward)}).` +
    `${kinds.has('look') ? ' <span class="key look">look</span>' : ''}${kinds.has('feel') ? ' <span class="key feel">feel</span>' : ''}</p>\n`
  );
}

function thumbHtml(base: string, thumb: ThumbnailResult): string {
  if (isThumbnail(thumb)) {
    return `<div class="thumb"><img src="${thumb.uri}" width="${thumb.width}" height="${thumb.height}" alt="${esc(`Thumbnail of ${base}`)}" decoding="async" loading="lazy"></div>`;
  }
  return (
    `<div class="thumb placeholder" role="img" aria-label="${esc(`No preview of ${base}: ${thumb.reason.replace(/^no preview: /, '')}`)}" title="${esc(thumb.reason)}">` +
    `<svg viewBox="0 0 24 24" width="40" height="40" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.5" stroke-linecap="round" stroke-linejoin="round">` +
    `<rect x="3" y="4" width="18" height="16" rx="2"/><circle cx="9" cy="10" r="1.8"/><path d="M4 18l5-5 4 4 3-3 4 4"/><path d="M3 3l18 18"/></svg>` +
    `<span>no preview</span></div>`
  );
}

function cardHtml(page: Page, row: ScoredRow, rank: number, thumb: ThumbnailResult): string {
  const { base, dir } = fileParts(row.file, page.folder);
  const { key, byName } = page;
  const main = key === undefined ? undefined : row.scores[key];
  // Full precision for the client-side re-sort; 'NaN' for a score this row lacks.
  const values = page.scores.map((s) => {
    const v = row.scores[s.name];
    return v !== undefined && Number.isFinite(v) ? String(Math.round(v * 1e6) / 1e6) : 'NaN';
  });
  const mainHtml =
    key === undefined
      ? ''
      : `<div class="main"><span class="main-value">${fmt(main)}</span><span class="main-text"><span class="main-name"><bdi>${esc(key)}</bdi>${esc(arrowText(byName.get(key)!))}</span>` +
        `<span class="main-hint">${esc(byName.get(key)!.hint)}</span></span><span class="meter" style="--v:${meterValue(main)}"></span></div>`;
  let radar = '';
  if (page.radar.length > 0) {
    const axes = page.radar.map((name): RadarAxis => ({ name, value: row.scores[name] ?? NaN, group: byName.get(name)!.kind, hint: byName.get(name)!.hint }));
    const title = `Look and feel of ${base}: ${page.radar.map((n) => `${n} ${fmt(row.scores[n])}`).join(', ')}`;
    // The numbers behind the chart, for print and for readers who want them; folded to keep cards short. One line
    // of text each rather than elements: a thousand cards of a dozen elements less each is what keeps a page light.
    const list = page.radar.map((n) => `${esc(n)} ${fmt(row.scores[n])}`).join('\n');
    radar = `${radarSvg(axes, { title, background: RADAR_BACKGROUND })}<details class="values"><summary>${page.radar.length} values</summary><p>${list}</p></details>`;
  }
  const others = page.scores.filter((s) => !page.radar.includes(s.name));
  const bars = others.length
    ? `<ul class="bars">${others
        .map(
          (s) =>
            `<li title="${esc(`${s.name}: ${s.hint}`)}"><span class="bar-name"><bdi>${esc(s.name)}</bdi>${esc(arrowText(s))}</span><span class="meter" style="--v:${meterValue(row.scores[s.name])}"></span><span class="bar-value">${fmt(row.scores[s.name])}</span></li>`,
        )
        .join('')}</ul>`
    : '';
  return `<article class="card" data-name="${esc(row.file.toLowerCase())}" data-scores="${values.join(' ')}">
${thumbHtml(base, thumb)}
<div class="body">
<div class="title"><span class="rank">#${rank}</span><h3 class="name" title="${esc(row.file)}"><bdi>${esc(base)}</bdi></h3></div>
<p class="meta">${dir ? `<span class="dir" title="${esc(dir)}"><bdi>${esc(dir)}</bdi></span>` : ''}<span class="size">${row.width} × ${row.height}</span></p>
${mainHtml}
${radar}${bars}
</div>
</article>
`;
}

/** Run metadata as rows of dotted keys (`decode.orientation`) and plain values. */
function flattenRun(value: unknown, prefix: string, out: [string, string][]): [string, string][] {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value);
    if (entries.length === 0 && prefix) out.push([prefix, '—']);
    for (const [k, v] of entries) flattenRun(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.push([prefix, value === null || value === undefined ? '—' : typeof value === 'string' ? value : JSON.stringify(value)]);
  }
  return out;
}

function runHtml(run: unknown): string {
  if (!run) return '';
  const rows = flattenRun(run, '', [])
    .map(([k, v]) => `<tr><th scope="row"><bdi>${esc(k)}</bdi></th><td><bdi>${esc(v)}</bdi></td></tr>`)
    .join('\n');
  return `<section class="run" id="run" aria-labelledby="run-title">
<h2 id="run-title">Run</h2>
<div class="table-wrap"><table>
<tbody>
${rows}
</tbody></table></div>
</section>
`;
}

function failuresHtml(failed: readonly FailedRow[]): string {
  if (failed.length === 0) return '';
  const rows = failed
    .map((r) => `<tr><td class="file"><bdi>${esc(r.file)}</bdi></td><td><code>${esc(r.error.code)}</code></td><td class="message">${esc(r.error.message)}</td></tr>`)
    .join('\n');
  return `<section class="failures" id="failed" aria-labelledby="failed-title">
<h2 id="failed-title">Failed <span class="count">${failed.length}</span></h2>
<div class="table-wrap"><table>
<thead><tr><th scope="col">File</th><th scope="col">Code</th><th scope="col">Message</th></tr></thead>
<tbody>
${rows}
</tbody></table></div>
</section>`;
}

/** Options of the re-sort menu: every score, then the file name. Values are indexes into `data-scores`. */
function controlsHtml(scores: readonly ScoreInfo[], key: string | undefined, count: number): string {
  const options = scores.map((s, i) => `<option value="${i}"${s.name === key ? ' selected' : ''}>${esc(s.name + arrowText(s))}</option>`).join('');
  const sizes = PAGE_SIZES.map((n) => `<option value="${n}"${n === PAGE_SIZE ? ' selected' : ''}>${n}</option>`).join('');
  // The pager exists only where there is more than a page; the script shows it (and the form) when it runs.
  const pager =
    count > PAGE_SIZE
      ? `<span class="pager" role="group" aria-label="Pages"><button type="button" id="prev">‹ Previous</button><output id="page" aria-live="polite"></output>` +
        `<button type="button" id="next">Next ›</button><label>Per page <select id="per-page">${sizes}<option value="all">all</option></select></label></span>`
      : '';
  return `<form class="controls" id="controls" hidden role="search" aria-label="Sort and filter images">
<label>Sort by <select id="sort-key">${options}<option value="name">file name</option></select></label>
<label>Order <select id="sort-dir"><option value="desc">highest first</option><option value="asc">lowest first</option></select></label>
<label class="filter">Filter <input id="filter" type="search" placeholder="file name contains…" autocomplete="off"></label>
<output id="shown" aria-live="polite">${count} shown</output>${pager}
</form>`;
}

/**
 * Cards a page shows when the script runs, and the choices offered. Without JavaScript every card is in the page;
 * with it, one page at a time is displayed, so that re-sorting, filtering and scrolling lay out and paint a hundred
 * cards rather than thousands (measured by scripts/bench-report.ts; see the README).
 */
const PAGE_SIZE = 100;
const PAGE_SIZES = [50, 100, 250, 500] as const;

// Static: data reaches it through data- attributes, never through the script text, so its CSP hash is fixed and
// nothing a user controls is ever parsed as code.
const SCRIPT = `(() => {
  'use strict';
  const grid = document.getElementById('cards');
  const form = document.getElementById('controls');
  if (!grid || !form) return;
  const $ = (id) => document.getElementById(id);
  const names = JSON.parse(grid.dataset.names);
  const arrows = JSON.parse(grid.dataset.arrows);
  const hints = JSON.parse(grid.dataset.hints);
  const cards = Array.from(grid.querySelectorAll('.card'));
  const values = new Map(cards.map((c) => [c, c.dataset.scores.split(' ').map(Number)]));
  const key = $('sort-key');
  const dir = $('sort-dir');
  const filter = $('filter');
  const shown = $('shown');
  const perPage = $('per-page');
  const prev = $('prev');
  const next = $('next');
  const pageOut = $('page');
  const fmt = (v) => (Number.isFinite(v) ? v.toFixed(3) : '\\u2014');
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  // Only the cards of the page shown are in the document: the rest wait here, so that sorting, filtering and
  // scrolling cost what a page costs, however long the report. Ranks and main scores are brought up to date as a
  // card is shown.
  let order = cards;
  let matching = cards;
  let page = 0;
  let main = key.value === 'name' ? -1 : Number(key.value);
  const rank = new Map(cards.map((c, n) => [c, n + 1]));
  const state = new Map(cards.map((c) => [c, { rank: rank.get(c), main }]));
  form.hidden = false;
  form.addEventListener('submit', (e) => e.preventDefault());
  const size = () => (!perPage || perPage.value === 'all' ? Infinity : Number(perPage.value));
  function refresh(c) {
    const s = state.get(c);
    if (s.rank !== rank.get(c)) {
      s.rank = rank.get(c);
      c.querySelector('.rank').textContent = '#' + s.rank;
    }
    const box = c.querySelector('.main');
    if (s.main === main || main < 0 || !box) return;
    s.main = main;
    const x = values.get(c)[main];
    const name = document.createElement('bdi');
    name.textContent = names[main];
    box.querySelector('.main-value').textContent = fmt(x);
    box.querySelector('.main-name').replaceChildren(name, arrows[main]);
    box.querySelector('.main-hint').textContent = hints[main];
    box.querySelector('.meter').style.setProperty('--v', Number.isFinite(x) ? String(Math.min(1, Math.max(0, x))) : '0');
  }
  function render() {
    const n = size();
    const pages = Math.max(1, Math.ceil(matching.length / n));
    page = Math.min(Math.max(page, 0), pages - 1);
    const from = Number.isFinite(n) ? page * n : 0;
    const to = Math.min(matching.length, from + n);
    const list = matching.slice(from, to);
    list.forEach(refresh);
    // Typing in the filter often leaves the page as it is: then the document is not touched.
    const now = grid.children;
    if (now.length !== list.length || list.some((c, i) => now[i] !== c)) grid.replaceChildren(...list);
    if (pageOut) {
      pageOut.textContent = matching.length === 0 ? 'none' : (from + 1) + '\\u2013' + to + ' of ' + matching.length;
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
    }
    shown.textContent = matching.length === cards.length ? cards.length + ' shown' : matching.length + ' of ' + cards.length + ' shown';
  }
  function turn(by) {
    page += by;
    render();
    $('images').scrollIntoView();
  }
  function sort() {
    const k = key.value;
    const sign = dir.value === 'asc' ? 1 : -1;
    order = cards.slice();
    if (k === 'name') {
      order.sort((a, b) => sign * collator.compare(a.dataset.name, b.dataset.name));
    } else {
      const i = Number(k);
      const v = (c) => values.get(c)[i];
      // Missing values last whichever the direction; ties keep the report's order.
      order.sort((a, b) => (Number.isNaN(v(a)) - Number.isNaN(v(b))) || sign * (v(a) - v(b)) || 0);
      main = i;
    }
    order.forEach((c, n) => rank.set(c, n + 1));
    applyFilter();
  }
  function applyFilter() {
    const q = filter.value.trim().toLowerCase();
    matching = q === '' ? order : order.filter((c) => c.dataset.name.includes(q));
    page = 0;
    render();
  }
  key.addEventListener('change', sort);
  dir.addEventListener('change', sort);
  filter.addEventListener('input', applyFilter);
  if (perPage) {
    perPage.addEventListener('change', () => {
      page = 0;
      render();
    });
    prev.addEventListener('click', () => turn(-1));
    next.addEventListener('click', () => turn(1));
  }
  render();
})();`;

const SCRIPT_HASH = `sha256-${createHash('sha256').update(SCRIPT).digest('base64')}`;

/** The id of the radar background every card's chart shows. */
const RADAR_BACKGROUND = 'radar-axes';

/** Beyond this many cards thumbnails default to 160 px instead of 240 px: about half the bytes (~3 KB a card). */
const SMALL_THUMBNAILS_FROM = 1000;

/** From this many cards on, cards off screen are not laid out (`content-visibility: auto`). */
const LAZY_FROM = 48;

const CSP = `default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src '${SCRIPT_HASH}'; base-uri 'none'; form-action 'none'`;

const CSS = `
:root{--bg:#f4f5f7;--surface:#fff;--text:#1b1f24;--muted:#56606d;--line:#e1e4e9;--accent:#4338ca;--look:#1d4ed8;--feel:#a21caf;--meter:#e6e8ee;--thumb:#eceef2;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#111317;--surface:#1a1d23;--text:#e7e9ed;--muted:#a1a9b6;--line:#2c313a;--accent:#a5b4fc;--look:#93c5fd;--feel:#f0abfc;--meter:#2c313a;--thumb:#23272e}}
*{box-sizing:border-box}
[hidden]{display:none!important}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--text);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue","Noto Sans",Arial,sans-serif;font-variant-numeric:tabular-nums}
.wrap{max-width:1480px;margin:0 auto;padding:28px clamp(12px,3vw,32px) 48px}
a{color:var(--accent)}
h1{font-size:clamp(1.5rem,3vw,2rem);line-height:1.2;margin:0 0 6px;letter-spacing:-.01em}
h2{font-size:1.1rem;margin:0 0 10px}
.lede{margin:0 0 16px;color:var(--muted);max-width:75ch}
.facts{display:flex;flex-wrap:wrap;gap:8px;margin:0;padding:0}
.facts div{background:var(--surface);border:1px solid var(--line);border-radius:8px;padding:6px 12px;min-width:0}
.facts dt{font-size:.72rem;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.facts dd{margin:0;font-weight:600;overflow-wrap:anywhere}
section{margin-top:28px}
.table-wrap{overflow-x:auto;background:var(--surface);border:1px solid var(--line);border-radius:10px}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:7px 12px;border-bottom:1px solid var(--line);vertical-align:top}
tbody tr:last-child>*{border-bottom:0}
thead th{font-size:.75rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);font-weight:600;white-space:nowrap}
thead .sub{text-transform:none;letter-spacing:0;font-weight:400}
.num{text-align:right;white-space:nowrap}
.kind{display:inline-block;font-size:.75rem;padding:1px 8px;border-radius:999px;border:1px solid currentColor;color:var(--muted);white-space:nowrap}
.kind-look{color:var(--look)}.kind-feel{color:var(--feel)}
.controls{display:flex;flex-wrap:wrap;gap:10px 18px;align-items:center;margin:14px 0 0;padding:10px 14px;background:var(--surface);border:1px solid var(--line);border-radius:10px;position:sticky;top:0;z-index:1}
.controls label{display:flex;gap:8px;align-items:center;font-size:.9rem;color:var(--muted)}
.controls select,.controls input{font:inherit;color:var(--text);background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:4px 8px}
.controls .filter{flex:1 1 220px}.controls .filter input{flex:1;min-width:0}
.controls output{font-size:.85rem;color:var(--muted)}
.section-head{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 16px}
.section-head h2{margin:0}
h2 .sub{font-weight:400;color:var(--muted)}
.legend{margin:0;font-size:.85rem;color:var(--muted);flex:1 1 30ch}
.legend b{font-weight:600;color:var(--text)}
.key{display:inline-flex;align-items:center;gap:5px;margin-left:10px;font-weight:600}
.key::before{content:"";width:9px;height:9px;border-radius:50%;background:currentColor}
.key.look{color:var(--look)}.key.feel{color:var(--feel)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,272px),1fr));gap:16px;margin-top:12px}
.card{display:flex;flex-direction:column;background:var(--surface);border:1px solid var(--line);border-radius:12px;overflow:hidden;box-shadow:0 1px 2px rgba(16,24,40,.05)}
.lazy .card{content-visibility:auto;contain-intrinsic-size:auto 640px}
.thumb{aspect-ratio:4/3;position:relative;background:var(--thumb);display:flex;align-items:center;justify-content:center}
.thumb img{position:absolute;inset:0;width:100%;height:100%;object-fit:contain}
.placeholder{flex-direction:column;gap:4px;color:var(--muted);font-size:.8rem}
.body{padding:12px 14px 14px;display:flex;flex-direction:column;gap:8px;min-width:0}
.title{display:flex;align-items:baseline;gap:8px;min-width:0}
.rank{font-size:.8rem;color:var(--muted);font-weight:600}
.name{font-size:1rem;margin:0;min-width:0;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.meta{margin:0;display:flex;gap:10px;font-size:.8rem;color:var(--muted);min-width:0}
.dir{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;min-width:0;flex:1 1 auto}
.size{white-space:nowrap}
.dir+.size{margin-left:auto}
.main{display:grid;grid-template-columns:auto 1fr;align-items:center;column-gap:10px;row-gap:6px}
.main-value{font-size:1.9rem;font-weight:700;line-height:1;color:var(--accent);letter-spacing:-.02em}
.main-text{display:flex;flex-direction:column;min-width:0;line-height:1.25}
.main-name{font-weight:600}
.main-hint{font-size:.78rem;color:var(--muted);overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.main .meter{grid-column:1/-1}
.meter{display:block;height:6px;border-radius:3px;background:var(--meter);position:relative;overflow:hidden;print-color-adjust:exact;-webkit-print-color-adjust:exact}
.meter::before{content:"";position:absolute;inset:0 auto 0 0;width:calc(var(--v,0)*100%);background:var(--accent);border-radius:3px}
.radar{display:block;width:100%;max-width:300px;height:auto;margin:2px auto 0;color:var(--accent);overflow:visible}
.radar-label{fill:var(--muted)}
.radar-label.radar-look,.radar-point.radar-look{fill:var(--look)}
.radar-label.radar-feel,.radar-point.radar-feel{fill:var(--feel)}
.radar-dots.radar-look{stroke:var(--look)}.radar-dots.radar-feel{stroke:var(--feel)}
${RADAR_CSS}
.values{font-size:.8rem;color:var(--muted)}
.values summary{cursor:pointer;width:max-content}
.values p{white-space:pre-line;columns:2;column-gap:14px;margin:6px 0 0;color:var(--text)}
.arrow{color:var(--muted);font-weight:400}
.pager{display:flex;flex-wrap:wrap;align-items:center;gap:8px;margin-left:auto}
.pager button{font:inherit;font-size:.85rem;color:var(--text);background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:3px 10px;cursor:pointer}
.pager button:disabled{opacity:.45;cursor:default}
.run th{font-weight:600;white-space:nowrap}
.run td{overflow-wrap:anywhere}
.bars{list-style:none;margin:0;padding:8px 0 0;border-top:1px solid var(--line);display:grid;gap:5px}
.bars li{display:grid;grid-template-columns:minmax(0,9em) 1fr 3.4em;align-items:center;gap:8px;font-size:.82rem}
.bar-name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:var(--muted)}
.bar-value{text-align:right}
.failures .file{overflow-wrap:anywhere;min-width:12em}
.failures .message{overflow-wrap:anywhere;color:var(--muted)}
.failures code{font-size:.8rem;white-space:nowrap}
.count{display:inline-block;min-width:1.6em;padding:0 6px;border-radius:999px;background:var(--line);font-size:.85rem;text-align:center}
.empty{color:var(--muted);padding:24px;text-align:center;background:var(--surface);border:1px dashed var(--line);border-radius:12px}
footer{margin-top:36px;font-size:.8rem;color:var(--muted)}
@media (max-width:520px){.wrap{padding-top:18px}.main-value{font-size:1.6rem}.facts div{flex:1 1 auto}.controls{position:static}}
@media print{
:root{--bg:#fff;--surface:#fff;--text:#000;--muted:#444;--line:#ccc;--thumb:#f2f2f2}
body{font-size:10.5pt}
.wrap{max-width:none;padding:0}
.controls{display:none!important}
.grid{grid-template-columns:repeat(3,1fr);gap:10px}
.card,.lazy .card{break-inside:avoid;box-shadow:none;content-visibility:visible}
.values summary{display:none}
.values::details-content{content-visibility:visible;display:block}
.table-wrap{overflow:visible;border-radius:0}
a{color:inherit;text-decoration:none}
@page{margin:12mm}
}
`;

// -- assembly ---------------------------------------------------------------------------------------------------------

/**
 * The page, piece by piece: head and tables first, then one card per scored image (highest score first) as its
 * thumbnail becomes ready, then failures and the script. Thumbnails are made `concurrency` at a time.
 */
export async function* reportChunks(input: ReportInput, options: ReportOptions = {}): AsyncGenerator<string> {
  const key = reportSortKey(input.header, input.sortBy);
  const ordered = key === undefined ? [...input.rows] : sortRows([...input.rows], key);
  const scored = ordered.filter((r): r is ScoredRow => !('error' in r));
  const scores = describeScores(input.header);
  const page: Page = {
    input,
    title: input.title ?? 'CLIP-IQA report',
    scores,
    byName: new Map(scores.map((s) => [s.name, s])),
    radar: radarNames(scores),
    key,
    scored,
    // Failures in the order of the run, as the other formats list them.
    failed: input.rows.filter((r): r is FailedRow => 'error' in r),
    folder: commonFolder(scored.filter((r) => r.file !== '-').map((r) => r.file)),
  };

  yield `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="generator" content="clip-iqa">
<meta name="referrer" content="no-referrer">
<title>${esc(`${page.title}: ${scored.length} ${scored.length === 1 ? 'image' : 'images'}`)}</title>
<style>${CSS}</style>
</head>
<body>
<div class="wrap">
${headerHtml(page)}<main>
<section class="images" id="images" aria-labelledby="images-title">
<div class="section-head"><h2 id="images-title">Images${key === undefined ? '' : ` <span class="sub">by ${esc(key)}</span>`}</h2>${legendHtml(page)}</div>
`;
  if (scored.length === 0) {
    yield `<p class="empty">No image was scored.</p>\n`;
  } else {
    yield controlsHtml(scores, key, scored.length);
    const names = esc(JSON.stringify(scores.map((s) => s.name)));
    const hints = esc(JSON.stringify(scores.map((s) => s.hint)));
    const arrows = esc(JSON.stringify(scores.map(arrowText)));
    // Below a screenful or two, skipping off-screen layout gains nothing and only blanks full-page screenshots.
    const lazy = scored.length > LAZY_FROM ? ' lazy' : '';
    // The radar's grid, spokes and labels, once for all cards.
    if (page.radar.length > 0) {
      yield `${radarBackground(
        page.radar.map((n) => ({ name: n, group: page.byName.get(n)!.kind })),
        RADAR_BACKGROUND,
      )}\n`;
    }
    yield `<div class="grid${lazy}" id="cards" data-names="${names}" data-arrows="${arrows}" data-hints="${hints}">\n`;
    const sources = scored.map((r) => thumbnailSource(r.file, options));
    let rank = 0;
    const size = options.thumbnail?.size ?? (scored.length > SMALL_THUMBNAILS_FROM ? 160 : 240);
    for await (const thumb of thumbnailsInOrder(sources, { ...options.thumbnail, size, concurrency: options.concurrency })) {
      const row = scored[rank]!;
      yield cardHtml(page, row, ++rank, thumb);
      options.onCard?.(rank, scored.length);
    }
    yield `</div>\n`;
  }
  yield `</section>
${scoresTableHtml(page)}${failuresHtml(page.failed)}${runHtml(input.header.run)}</main>
<footer>Made by clip-iqa. CLIP-IQA: J. Wang, K. C. K. Chan, C. C. Loy, “Exploring CLIP for Assessing the Look and Feel of Images”, AAAI 2023.</footer>
</div>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

const isUrl = (file: string): boolean => /^https?:\/\//i.test(file);

/** Where a card's thumbnail comes from, or why it has none. */
function thumbnailSource(file: string, options: ReportOptions): ThumbnailSource | NoThumbnail {
  if (options.thumbnails === false) return { reason: 'thumbnails were not made' };
  if (file === '-') return { reason: 'read from standard input' };
  if (isUrl(file)) {
    const fetchUrl = options.fetchUrl;
    return fetchUrl ? () => fetchUrl(file) : { reason: 'a URL, not fetched (clip-iqa report --fetch-urls fetches it)' };
  }
  const cwd = options.cwd ?? process.cwd();
  const first = resolve(cwd, file);
  if (!options.alsoIn?.length || isAbsolute(file) || existsSync(first)) return first;
  const found = options.alsoIn.map((dir) => resolve(dir, file)).find((p) => existsSync(p));
  return found ?? { reason: `no preview: no such file ${file} (looked for in ${[cwd, ...options.alsoIn].join(' and ')})` };
}

/** The whole page as one string (tests, or callers that serve it rather than write it). */
export async function renderReport(input: ReportInput, options: ReportOptions = {}): Promise<string> {
  let html = '';
  for await (const chunk of reportChunks(input, options)) html += chunk;
  return html;
}

const writeError = (path: string, reason: string, cause?: unknown) => outputError('the report', path, reason, cause);

/** Fails early when a report could not be written to `path`; cheap enough to call before a long run. */
export const checkReportPath = (path: string): Promise<void> => checkWritableFile(path, 'the report', 'report.html');

/**
 * Writes the report to `path` atomically: the page is streamed into a temporary file in the same directory, which
 * is renamed over `path` only once complete, so a reader never sees half a page and a failed run leaves any
 * previous report as it was. Refuses to overwrite one of the run's own images.
 */
export async function writeReport(path: string, input: ReportInput, options: ReportOptions = {}): Promise<ReportInfo> {
  reportSortKey(input.header, input.sortBy); // a bad sort key fails before anything touches the disk
  await checkReportPath(path);
  const target = resolve(path);
  const cwd = options.cwd ?? process.cwd();
  if (input.rows.some((r) => r.file !== '-' && !isUrl(r.file) && resolve(cwd, r.file) === target)) {
    throw writeError(path, 'that is one of the images of this run; choose another file name');
  }
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let handle: FileHandle;
  try {
    handle = await open(temp, 'wx');
  } catch (e) {
    throw writeError(path, errorMessage(e), e);
  }
  let bytes = 0;
  try {
    for await (const chunk of reportChunks(input, options)) {
      const buf = Buffer.from(chunk, 'utf8');
      await handle.write(buf);
      bytes += buf.length;
    }
    await handle.sync();
    await handle.close();
    await rename(temp, target);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw e instanceof ClipIqaError ? e : writeError(path, errorMessage(e), e);
  }
  const scored = input.rows.filter((r) => !('error' in r)).length;
  return { path: target, bytes, scored, failed: input.rows.length - scored };
}
