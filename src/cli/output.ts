/**
 * Result formats of `clip-iqa score`. The shapes are a documented, stable interface (README, "Output"):
 *
 *   json   {"model", "positional", "run", "prompts", "higher_better", "images": [ImageRow…], "summary"}
 *   jsonl  a header line {"run", "prompts", "higher_better"}, then one ImageRow per line, as each image finishes
 *   csv    "# run: {…}", "# prompts: {…}", "# higher_better: {…}" comment lines, then
 *          file,width,height,<score names…>,error
 *   table  aligned columns for people, fitted to the terminal (./table.ts, loaded only for tables)
 *
 * ImageRow = {"file", "width", "height", "scores": {name: number}} or {"file", "error": {"code", "message"}}.
 * `run` records what produced the numbers (package version, model and its SHA-256, precision, decoding, …), so
 * that results can be trusted, compared and resumed later.
 */

import { randomBytes } from 'node:crypto';
import { createWriteStream, statSync } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { BatchResult, ScorePlan } from '../api.js';
import { PLUS } from '../iqa/plus.js';
import { ENSEMBLE, ENSEMBLE_PAIRS, higherBetter } from '../iqa/prompts.js';
import { outputError } from '../util/output-file.js';

export const FORMATS = ['table', 'json', 'jsonl', 'csv'] as const;
export type OutputFormat = (typeof FORMATS)[number];

export type ImageRow =
  | { readonly file: string; readonly width: number; readonly height: number; readonly scores: Readonly<Record<string, number>> }
  | { readonly file: string; readonly error: { readonly code: string; readonly message: string } };

/** What produced a run's numbers; snake_case, as written in every output. */
export interface RunInfo {
  readonly tool: 'clip-iqa';
  readonly version: string;
  readonly model: string;
  readonly model_sha256: string | null;
  readonly architecture: string;
  readonly precision: string;
  readonly positional: string;
  readonly noisiness: string;
  /** `short:N`, `max:N` (`+` when enlarging too), or null for native resolution. */
  readonly resize: string | null;
  readonly decode: {
    readonly orientation: string;
    readonly alpha: string;
    readonly background: string;
    readonly icc: string;
    readonly max_pixels: number | false;
  };
  /** The CLIP-IQA+ context's source, or null without one. */
  readonly plus: string | null;
  /** ISO 8601 time the run started. */
  readonly created: string;
}

export interface RunHeader {
  readonly model: string;
  readonly positional: string;
  /** What each score name measures: its prompt pair, or a description for aggregate scores. */
  readonly prompts: Readonly<Record<string, readonly string[] | readonly (readonly string[])[] | string>>;
  /** Score names in column order. */
  readonly names: readonly string[];
  /** Which way each score points (as pyiqa's `lower_better`, the other way round). */
  readonly higherBetter?: Readonly<Record<string, boolean>>;
  /** The run's metadata, when known (the CLI's outputs; results read back from them). */
  readonly run?: RunInfo;
}

/**
 * What a run reports: model, positional mode, and each score name with its prompts and direction, in the order
 * `plan` scores them (for the formats, the report and the server's answers alike).
 */
export function runHeader(model: { readonly name: string; readonly context?: { readonly source: string } }, plan: ScorePlan): RunHeader {
  const prompts: Record<string, RunHeader['prompts'][string]> = {};
  const higher: Record<string, boolean> = {};
  // Names in their own array: an object lists integer-like keys ("1=Good|Bad") first, not in insertion order.
  const names: string[] = [];
  const add = (name: string, what: RunHeader['prompts'][string], up: boolean) => {
    prompts[name] = what;
    higher[name] = up;
    names.push(name);
  };
  for (const p of plan.pairs) add(p.name, [p.positive, p.negative], higherBetter(p));
  if (plan.ensemble) add(ENSEMBLE, ENSEMBLE_PAIRS.map((p) => [p.positive, p.negative]), true);
  if (plan.plus) add(PLUS, `learned context ${model.context?.source ?? ''} (Good photo. | Bad photo.)`, true);
  return { model: model.name, positional: plan.positional, prompts, names, higherBetter: higher };
}

/** The header object of a JSONL file (its first line) and the metadata of JSON and CSV outputs. */
export function headerRecord(header: RunHeader): { run?: RunInfo; prompts: RunHeader['prompts']; higher_better?: Readonly<Record<string, boolean>> } {
  return { run: header.run, prompts: header.prompts, higher_better: header.higherBetter };
}

/** Features as reported (`clip-iqa embed`): seven decimals, about what float32 carries. */
export const featureVector = (f: Float32Array): number[] => Array.from(f, (v) => Math.round(v * 1e7) / 1e7);

/** The row of one `scoreMany` result. */
export function imageRow(file: string, r: BatchResult): ImageRow {
  return r.ok ? { file, width: r.width, height: r.height, scores: r.scores } : { file, error: { code: r.error.code, message: r.error.message } };
}

export interface Summary {
  /** Inputs of this run: scored, failed (including inputs that named nothing), not counting skipped files. */
  readonly images: number;
  readonly scored: number;
  readonly failed: number;
  /** Files in directories and glob matches that were not taken (other extensions, symlinked directories, …). */
  readonly skipped: number;
  readonly skipped_files: readonly { readonly file: string; readonly reason: string }[];
  readonly seconds: number;
  /** Mean of each score over the scored images. */
  readonly mean: Readonly<Record<string, number>>;
  /** Present (true) when the run was stopped (Ctrl-C, SIGTERM) before every image was done. */
  readonly interrupted?: true;
  /** Present when --keep/--top left images out of the results. */
  readonly selection?: { readonly keep?: string; readonly top?: number; readonly kept: number };
}

/** Mean of each score over the scored rows, rounded as rows are. */
export function meanScores(rows: Iterable<ImageRow>, names: readonly string[]): Record<string, number> {
  const sum = new Map<string, { total: number; n: number }>();
  for (const r of rows) {
    if ('error' in r) continue;
    for (const n of names) {
      const v = r.scores[n];
      if (v === undefined) continue;
      const s = sum.get(n) ?? { total: 0, n: 0 };
      s.total += v;
      s.n++;
      sum.set(n, s);
    }
  }
  return Object.fromEntries(names.filter((n) => sum.has(n)).map((n) => [n, Math.round((sum.get(n)!.total / sum.get(n)!.n) * 1e6) / 1e6]));
}

/** Writes rows as they come (streaming formats) or at the end (json, or any format when sorted). */
export interface Formatter {
  /** What goes before the first row (a JSONL header line, CSV comments and column titles). */
  start(): string;
  row(row: ImageRow): string;
  end(summary: Summary): string;
}

/** The formatter of a file format; the table is `tableFormatter` in ./table.ts. */
export function createFormatter(format: Exclude<OutputFormat, 'table'>, header: RunHeader): Formatter {
  switch (format) {
    case 'json':
      return jsonFormatter(header);
    case 'jsonl':
      return { start: () => `${JSON.stringify(headerRecord(header))}\n`, row: (r) => `${JSON.stringify(roundRow(r))}\n`, end: () => '' };
    case 'csv':
      return csvFormatter(header);
  }
}

/** The format a results file's name asks for (`.csv`, `.jsonl`/`.ndjson`, `.json`), undefined for other names. */
export function formatOfFileName(path: string): OutputFormat | undefined {
  const m = /\.(csv|jsonl|ndjson|json)$/i.exec(path);
  if (!m) return undefined;
  const ext = m[1]!.toLowerCase();
  return ext === 'ndjson' ? 'jsonl' : (ext as OutputFormat);
}

/** Scores are reported to 1e-6: the fixtures pin them to 1e-4 and nobody reads further. */
export function roundRow(row: ImageRow): ImageRow {
  if ('error' in row) return row;
  return { ...row, scores: Object.fromEntries(Object.entries(row.scores).map(([k, v]) => [k, Math.round(v * 1e6) / 1e6])) };
}

function jsonFormatter(header: RunHeader): Formatter {
  const rows: ImageRow[] = [];
  return {
    start: () => '',
    row(r) {
      rows.push(roundRow(r));
      return '';
    },
    end(summary) {
      const { run, prompts, higher_better } = headerRecord(header);
      const doc = { model: header.model, positional: header.positional, run, prompts, higher_better, images: rows, summary };
      return `${JSON.stringify(doc, null, 2)}\n`;
    },
  };
}

/**
 * One CSV cell. Text that a spreadsheet would run as a formula (a cell starting with =, +, -, @, tab or carriage
 * return: a file named `=HYPERLINK(…).jpg`) gets a leading apostrophe, as OWASP recommends, and is quoted.
 */
export function csvCell(v: string | number): string {
  if (typeof v === 'number') return String(v);
  const s = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\n\r]/.test(s) || s !== v ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Undoes `csvCell`'s formula guard on a parsed cell, for results read back (`--from results.csv`). */
export const csvText = (cell: string): string => (/^'[=+\-@\t\r]/.test(cell) ? cell.slice(1) : cell);

function csvFormatter(header: RunHeader): Formatter {
  const titles = ['file', 'width', 'height', ...header.names, 'error'];
  return {
    start() {
      const { run, prompts, higher_better } = headerRecord(header);
      const meta = Object.entries({ run, prompts, higher_better }).filter(([, v]) => v !== undefined);
      return `${meta.map(([k, v]) => `# ${k}: ${JSON.stringify(v)}\n`).join('')}${titles.map(csvCell).join(',')}\n`;
    },
    row(r) {
      const cells =
        'error' in r
          ? [r.file, '', '', ...header.names.map(() => ''), `${r.error.code}: ${r.error.message}`]
          : [r.file, r.width, r.height, ...header.names.map((n) => (r.scores[n] === undefined ? '' : r.scores[n]!.toFixed(6))), ''];
      return `${cells.map(csvCell).join(',')}\n`;
    },
    end: () => '',
  };
}

/** Orders rows by one score, highest first; failures last, in input order. */
export function sortRows(rows: ImageRow[], by: string): ImageRow[] {
  const value = (r: ImageRow) => ('error' in r ? -Infinity : (r.scores[by] ?? -Infinity));
  return rows
    .map((r, i) => ({ r, i }))
    .sort((a, b) => value(b.r) - value(a.r) || a.i - b.i)
    .map((x) => x.r);
}

/** Where a command's output goes: standard output, or a file. */
export interface Output {
  readonly stream: NodeJS.WritableStream;
  /** The file written (absolute), undefined for standard output. */
  readonly path: string | undefined;
  /** Ends the output; a file is then complete under its name. Throws E_OUTPUT if any write failed. */
  close(): Promise<void>;
  /** Gives up: a file being replaced stays as it was (its temporary file is removed). */
  discard(): Promise<void>;
}

function isSpecialFile(path: string): boolean {
  try {
    return !statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * `path`'s stream. A file is written to a temporary name beside it and renamed over it by `close`, so that a
 * failed or killed run never leaves half a file, nor destroys the previous results, under the name (a device or
 * FIFO such as /dev/stdout is written as it is). `append`
 * (for --resume) adds to the file in place instead: each row is one whole line, and the reader of a cut file
 * drops a torn last line. Write errors (a full disk) end the run with a message at `close` instead of crashing it.
 */
export function openOutput(path: string | undefined, what: string, options: { append?: boolean } = {}): Output {
  if (path === undefined) return { stream: process.stdout, path: undefined, close: async () => undefined, discard: async () => undefined };
  const target = resolve(path);
  // `-o /dev/stdout`, a FIFO, `>(gzip > x)`: not files to replace, but streams to write to, as they are.
  const inPlace = options.append || isSpecialFile(target);
  const temp = inPlace ? target : join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const stream = createWriteStream(temp, { flags: options.append ? 'a' : inPlace ? 'w' : 'wx' });
  let failure: Error | undefined;
  stream.on('error', (e: Error) => (failure ??= e));
  const end = () => new Promise<void>((done) => (stream.closed ? done() : stream.end(() => done())));
  return {
    stream,
    path: target,
    async close() {
      await end();
      if (!failure && temp !== target) await rename(temp, target).catch((e: Error) => (failure ??= e));
      if (failure) {
        if (temp !== target) await unlink(temp).catch(() => undefined);
        throw outputError(what, path, failure.message, failure);
      }
    },
    async discard() {
      await end();
      if (temp !== target) await unlink(temp).catch(() => undefined);
    },
  };
}
