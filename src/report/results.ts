/**
 * Saved results, read back for `clip-iqa report`: the JSON document of `clip-iqa score --format json`, or the
 * lines of `--format jsonl` (an optional header line `{"run", "prompts", "higher_better"}`, then one image row a
 * line). Files written before runs recorded their metadata load too: the score names then come from the rows.
 *
 * A file that is not results at all is refused (E_RESULTS, saying what it looks like). Inside a file that is, a
 * line or entry that is not a valid image row is skipped and listed with its line number, never a crash: a JSONL
 * file cut short by an interrupted run still gives a report of what it holds.
 */
import { readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import type { ImageRow, RunHeader, RunInfo } from '../cli/output.js';
import { ClipIqaError, errorMessage, isErrno } from '../errors.js';
import { PLUS } from '../iqa/plus.js';
import { ATTRIBUTES, ENSEMBLE, ENSEMBLE_PAIRS } from '../iqa/prompts.js';

export interface SkippedEntry {
  /** `line 7` (JSONL) or `images[3]` (JSON). */
  readonly where: string;
  readonly reason: string;
}

export interface SavedResults {
  readonly format: 'json' | 'jsonl';
  readonly header: RunHeader;
  /** Every image row, in file order; a file listed twice keeps its last row. */
  readonly rows: ImageRow[];
  /** Entries that were not image rows, skipped. */
  readonly skipped: readonly SkippedEntry[];
  /** What had to be assumed (prompts not recorded, duplicate files), for the user to know. */
  readonly notes: readonly string[];
  /** Wall time of the run, when recorded. */
  readonly seconds?: number;
  /** When the run happened, when recorded. */
  readonly date?: Date;
}

/** Larger files are refused rather than read: a million rows is far beyond what a report page can show anyway. */
export const MAX_RESULTS_BYTES = 512 * 2 ** 20;

const resultsError = (name: string, reason: string): ClipIqaError =>
  new ClipIqaError('E_RESULTS', `${name}: ${reason}; clip-iqa report reads what clip-iqa score writes with --format json or --format jsonl`);

/** Reads a results file (JSON or JSONL, told by its extension, else by its content). */
export async function readResults(path: string): Promise<SavedResults> {
  let text: string;
  try {
    const info = await stat(path);
    if (info.isDirectory()) throw new ClipIqaError('E_NOT_FOUND', `${path} is a directory; give the results file (results.json or results.jsonl)`);
    if (info.size > MAX_RESULTS_BYTES) throw resultsError(path, `${info.size} bytes is more than the ${MAX_RESULTS_BYTES / 2 ** 20} MiB a report is made from`);
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof ClipIqaError) throw e;
    if (isErrno(e, 'ENOENT')) throw new ClipIqaError('E_NOT_FOUND', `${path}: no such file`, { cause: e });
    throw new ClipIqaError('E_NOT_FOUND', `${path}: cannot be read (${errorMessage(e)})`, { cause: e });
  }
  const ext = extname(path).toLowerCase();
  const format = ext === '.jsonl' || ext === '.ndjson' ? 'jsonl' : ext === '.json' ? 'json' : undefined;
  if (ext === '.csv') throw resultsError(path, 'CSV results record no prompts or run details, so no report is made from them');
  const results = parseResults(text, path, format);
  const mtime = results.date ? undefined : await stat(path).then((s) => s.mtime, () => undefined);
  return mtime ? { ...results, date: mtime } : results;
}

type Json = unknown;
const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A line that does not parse: the message, shortened (V8 quotes the whole line back). */
function parseFailure(e: unknown): string {
  const m = errorMessage(e);
  const cut = m.indexOf(', "');
  return cut > 0 ? m.slice(0, cut) : m.length > 120 ? `${m.slice(0, 117)}…` : m;
}

/**
 * Parses results text. `format` forces JSON or JSONL; by default a text that parses as one JSON document with
 * `images` is JSON, and anything else is read as JSONL.
 */
export function parseResults(text: string, name: string, format?: 'json' | 'jsonl'): SavedResults {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (body.trim() === '') throw resultsError(name, 'the file is empty');
  if (format !== 'jsonl') {
    let doc: Json;
    let failure: unknown;
    try {
      doc = JSON.parse(body);
    } catch (e) {
      failure = e;
    }
    if (failure === undefined) {
      if (isObject(doc) && Array.isArray(doc.images)) return fromDocument(doc, name);
      if (isObject(doc) && 'file' in doc) return fromLines(body, name); // a one-row JSONL file
      throw resultsError(name, isObject(doc) ? 'a JSON object without an "images" list' : `JSON, but ${Array.isArray(doc) ? 'a list' : typeof doc}, not results`);
    }
    // Not one document: JSONL under another name, when its first line is a JSON object on its own.
    const first = body.split('\n').find((l) => l.trim() !== '') ?? '';
    let firstIsObject = false;
    try {
      firstIsObject = isObject(JSON.parse(first));
    } catch {
      /* not JSONL either */
    }
    if (!firstIsObject) throw resultsError(name, `not valid JSON (${parseFailure(failure)})`);
  }
  return fromLines(body, name);
}

/** One saved image row, checked; a string says why it is not one. */
function imageRow(v: Json): ImageRow | string {
  if (!isObject(v)) return 'not a JSON object';
  if (typeof v.file !== 'string' || v.file === '') return 'no "file"';
  const file = v.file;
  if ('error' in v) {
    const e = v.error;
    if (!isObject(e)) return '"error" is not an object';
    return { file, error: { code: typeof e.code === 'string' ? e.code : 'E_UNKNOWN', message: typeof e.message === 'string' ? e.message : String(e.message ?? '') } };
  }
  if (!isObject(v.scores)) return 'neither "scores" nor "error"';
  const scores: Record<string, number> = {};
  for (const [k, x] of Object.entries(v.scores)) {
    // JSON has no NaN: a score that was not a number was written as null.
    if (x === null) scores[k] = NaN;
    else if (typeof x === 'number') scores[k] = x;
    else return `the score "${k}" is not a number`;
  }
  const size = (x: Json) => (typeof x === 'number' && Number.isInteger(x) && x >= 0 ? x : undefined);
  const width = size(v.width);
  const height = size(v.height);
  if (width === undefined || height === undefined) return 'no "width" and "height"';
  return { file, width, height, scores };
}

type Prompts = RunHeader['prompts'];

/** A recorded `prompts` object, if it has the shape runs write: name → pair, list of pairs, or description. */
function promptsOf(v: Json): Prompts | undefined {
  if (!isObject(v)) return undefined;
  const isPair = (x: Json) => Array.isArray(x) && x.every((s) => typeof s === 'string');
  for (const x of Object.values(v)) {
    if (typeof x === 'string' || isPair(x)) continue;
    if (Array.isArray(x) && x.every(isPair)) continue;
    return undefined;
  }
  return v as Prompts;
}

function higherBetterOf(v: Json): Record<string, boolean> | undefined {
  if (!isObject(v)) return undefined;
  return Object.values(v).every((x) => typeof x === 'boolean') ? (v as Record<string, boolean>) : undefined;
}

const DATE_KEYS = ['created', 'date', 'started', 'started_at', 'finished', 'finished_at'];

function runDate(run: Record<string, Json> | undefined): Date | undefined {
  for (const k of DATE_KEYS) {
    const v = run?.[k];
    if (typeof v !== 'string' && typeof v !== 'number') continue;
    const d = new Date(v);
    if (!Number.isNaN(d.getTime())) return d;
  }
  return undefined;
}

/** What the run recorded, before the header is put together. */
interface Recorded {
  model?: Json;
  positional?: Json;
  prompts?: Json;
  higherBetter?: Json;
  run?: Json;
  seconds?: Json;
}

function assemble(format: 'json' | 'jsonl', rec: Recorded, all: readonly ImageRow[], skipped: SkippedEntry[], notes: string[]): SavedResults {
  // A file listed twice (a resumed run that retried a failure) keeps its last row, in the place of its first.
  const last = new Map<string, ImageRow>();
  for (const r of all) last.set(r.file, r);
  if (last.size < all.length) notes.push(`${all.length - last.size} rows repeat a file listed before; the last row of each file is used`);
  const rows = [...last.values()];

  const run = isObject(rec.run) ? rec.run : undefined;
  if (rec.run !== undefined && !run) notes.push('"run" is not an object; ignored');
  let prompts = promptsOf(rec.prompts);
  if (rec.prompts !== undefined && !prompts) notes.push('"prompts" does not have the shape runs write; ignored');
  const higherBetter = higherBetterOf(rec.higherBetter);
  if (rec.higherBetter !== undefined && !higherBetter) notes.push('"higher_better" is not an object of true/false; ignored');

  // Score names: the recorded ones in their order, then any the rows have besides.
  const names = Object.keys(prompts ?? {});
  for (const r of rows) if ('scores' in r) for (const k of Object.keys(r.scores)) if (!names.includes(k)) names.push(k);
  if (!prompts) {
    const assumed: Record<string, Prompts[string]> = {};
    for (const n of names) {
      const a = ATTRIBUTES.find((x) => x.name === n);
      if (a) assumed[n] = [a.positive, a.negative];
      else if (n === ENSEMBLE) assumed[n] = ENSEMBLE_PAIRS.map((p) => [p.positive, p.negative]);
      else if (n === PLUS) assumed[n] = 'CLIP-IQA+ (learned prompts)';
      else assumed[n] = 'prompts not recorded in the results';
    }
    prompts = assumed;
    if (names.some((n) => ATTRIBUTES.some((a) => a.name === n))) notes.push("the results do not record their prompts: the attributes' standard prompts are assumed");
  } else {
    const missing = names.filter((n) => !(n in prompts!));
    if (missing.length > 0) prompts = { ...prompts, ...Object.fromEntries(missing.map((n) => [n, 'prompts not recorded in the results'])) };
  }

  const text = (v: Json) => (typeof v === 'string' && v !== '' ? v : undefined);
  const header: RunHeader = {
    model: text(rec.model) ?? text(run?.model) ?? 'not recorded',
    positional: text(rec.positional) ?? text(run?.positional) ?? 'not recorded',
    prompts,
    names,
    // As recorded: files of other versions may lack fields or have more; the report shows whatever is there.
    ...(run ? { run: run as unknown as RunInfo } : {}),
    ...(higherBetter ? { higherBetter } : {}),
  };
  const seconds = typeof rec.seconds === 'number' && Number.isFinite(rec.seconds) && rec.seconds >= 0 ? rec.seconds : undefined;
  return { format, header, rows, skipped, notes, ...(seconds !== undefined ? { seconds } : {}), ...(runDate(run) ? { date: runDate(run) } : {}) };
}

function fromDocument(doc: Record<string, Json>, name: string): SavedResults {
  const skipped: SkippedEntry[] = [];
  const rows: ImageRow[] = [];
  (doc.images as Json[]).forEach((v, i) => {
    const row = imageRow(v);
    if (typeof row === 'string') skipped.push({ where: `images[${i}]`, reason: row });
    else rows.push(row);
  });
  if (rows.length === 0 && skipped.length > 0) throw resultsError(name, `none of its ${skipped.length} images is a valid row (images[0]: ${skipped[0]!.reason})`);
  const summary = isObject(doc.summary) ? doc.summary : {};
  return assemble(
    'json',
    { model: doc.model, positional: doc.positional, prompts: doc.prompts, higherBetter: doc.higher_better, run: doc.run, seconds: summary.seconds },
    rows,
    skipped,
    [],
  );
}

/** Keys a header line may carry (it has no `file`). */
const HEADER_KEYS = new Set(['run', 'prompts', 'higher_better', 'model', 'positional', 'summary']);

function fromLines(body: string, name: string): SavedResults {
  const lines = body.split('\n');
  const skipped: SkippedEntry[] = [];
  const rows: ImageRow[] = [];
  const rec: Recorded = {};
  let headerSeen = false;
  let lastContent = lines.length - 1;
  while (lastContent >= 0 && lines[lastContent]!.trim() === '') lastContent--;
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const where = `line ${i + 1}`;
    let v: Json;
    try {
      v = JSON.parse(line);
    } catch (e) {
      const cut = i === lastContent && !raw.endsWith('}') ? ' (the last line is cut short: an interrupted run?)' : '';
      skipped.push({ where, reason: `not valid JSON (${parseFailure(e)})${cut}` });
      return;
    }
    if (isObject(v) && !('file' in v) && Object.keys(v).length > 0 && Object.keys(v).every((k) => HEADER_KEYS.has(k))) {
      if ('summary' in v && isObject(v.summary)) rec.seconds = v.summary.seconds;
      const isHeader = Object.keys(v).some((k) => k !== 'summary');
      if (!isHeader) return;
      if (headerSeen) {
        skipped.push({ where, reason: 'a second header line; the first one is used' });
        return;
      }
      headerSeen = true;
      Object.assign(rec, { model: v.model, positional: v.positional, prompts: v.prompts, higherBetter: v.higher_better, run: v.run });
      return;
    }
    const row = imageRow(v);
    if (typeof row === 'string') skipped.push({ where, reason: row });
    else rows.push(row);
  });
  if (rows.length === 0 && !headerSeen) {
    throw resultsError(name, skipped.length > 0 ? `no line is an image row (${skipped[0]!.where}: ${skipped[0]!.reason})` : 'no image rows');
  }
  return assemble('jsonl', rec, rows, skipped, []);
}
