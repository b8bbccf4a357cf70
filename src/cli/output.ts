/**
 * Result formats of `clip-iqa score`. The JSON shapes are a documented, stable interface (README, "Output"):
 *
 *   json   {"model", "positional", "prompts": {name: [positive, negative] | …}, "images": [ImageRow…], "summary"}
 *   jsonl  one ImageRow per line, as each image finishes
 *   csv    file,width,height,<score names…>,error
 *   table  aligned columns for people
 *
 * ImageRow = {"file", "width", "height", "scores": {name: number}} or {"file", "error": {"code", "message"}}.
 */

import { createWriteStream } from 'node:fs';
import type { BatchResult, ScorePlan } from '../api.js';
import { PLUS } from '../iqa/plus.js';
import { ENSEMBLE, ENSEMBLE_PAIRS } from '../iqa/prompts.js';
import { outputError } from '../util/output-file.js';

export const FORMATS = ['table', 'json', 'jsonl', 'csv'] as const;
export type OutputFormat = (typeof FORMATS)[number];

export type ImageRow =
  | { readonly file: string; readonly width: number; readonly height: number; readonly scores: Readonly<Record<string, number>> }
  | { readonly file: string; readonly error: { readonly code: string; readonly message: string } };

export interface RunHeader {
  readonly model: string;
  readonly positional: string;
  /** What each score name measures: its prompt pair, or a description for aggregate scores. */
  readonly prompts: Readonly<Record<string, readonly string[] | readonly (readonly string[])[] | string>>;
  /** Score names in column order. */
  readonly names: readonly string[];
  /** Run metadata (package version, model SHA-256, precision, decode options, …; snake_case keys), when recorded. */
  readonly run?: Readonly<Record<string, unknown>>;
  /** Which way each score points: true when higher is better (as `higher_better` in the outputs), when recorded. */
  readonly higherBetter?: Readonly<Record<string, boolean>>;
}

/**
 * What a run reports: model, positional mode, and each score name with its prompts, in the order `plan` scores
 * them (for the formats, the report and the server's answers alike).
 */
export function runHeader(model: { readonly name: string; readonly context?: { readonly source: string } }, plan: ScorePlan): RunHeader {
  const prompts: Record<string, RunHeader['prompts'][string]> = {};
  // Names in their own array: an object lists integer-like keys ("1=Good|Bad") first, not in insertion order.
  const names: string[] = [];
  const add = (name: string, what: RunHeader['prompts'][string]) => {
    prompts[name] = what;
    names.push(name);
  };
  for (const p of plan.pairs) add(p.name, [p.positive, p.negative]);
  if (plan.ensemble) add(ENSEMBLE, ENSEMBLE_PAIRS.map((p) => [p.positive, p.negative]));
  if (plan.plus) add(PLUS, `learned context ${model.context?.source ?? ''} (Good photo. | Bad photo.)`);
  return { model: model.name, positional: plan.positional, prompts, names };
}

/** Features as reported (`clip-iqa embed`): seven decimals, about what float32 carries. */
export const featureVector = (f: Float32Array): number[] => Array.from(f, (v) => Math.round(v * 1e7) / 1e7);

/** The row of one `scoreMany` result. */
export function imageRow(file: string, r: BatchResult): ImageRow {
  return r.ok ? { file, width: r.width, height: r.height, scores: r.scores } : { file, error: { code: r.error.code, message: r.error.message } };
}

export interface Summary {
  readonly images: number;
  readonly failed: number;
  readonly seconds: number;
}

/** Writes rows as they come (streaming formats) or at the end (json, or any format when sorted). */
export interface Formatter {
  row(row: ImageRow): string;
  end(summary: Summary): string;
}

const DIGITS = 4;

export function createFormatter(format: OutputFormat, header: RunHeader, options: { color?: boolean; fileWidth?: number } = {}): Formatter {
  switch (format) {
    case 'json':
      return jsonFormatter(header);
    case 'jsonl':
      return { row: (r) => `${JSON.stringify(roundRow(r))}\n`, end: () => '' };
    case 'csv':
      return csvFormatter(header);
    case 'table':
      return tableFormatter(header, options.color ?? false, options.fileWidth ?? 24);
  }
}

/** Scores are reported to 1e-6: the fixtures pin them to 1e-4 and nobody reads further. */
export function roundRow(row: ImageRow): ImageRow {
  if ('error' in row) return row;
  return { ...row, scores: Object.fromEntries(Object.entries(row.scores).map(([k, v]) => [k, Math.round(v * 1e6) / 1e6])) };
}

function jsonFormatter(header: RunHeader): Formatter {
  const rows: ImageRow[] = [];
  return {
    row(r) {
      rows.push(roundRow(r));
      return '';
    },
    end(summary) {
      const doc = { model: header.model, positional: header.positional, prompts: header.prompts, images: rows, summary };
      return `${JSON.stringify(doc, null, 2)}\n`;
    },
  };
}

function csvCell(v: string | number): string {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csvFormatter(header: RunHeader): Formatter {
  let first = true;
  return {
    row(r) {
      const head = first ? `${['file', 'width', 'height', ...header.names, 'error'].map(csvCell).join(',')}\n` : '';
      first = false;
      const cells =
        'error' in r
          ? [r.file, '', '', ...header.names.map(() => ''), `${r.error.code}: ${r.error.message}`]
          : [r.file, r.width, r.height, ...header.names.map((n) => (r.scores[n] === undefined ? '' : r.scores[n]!.toFixed(6))), ''];
      return `${head}${cells.map(csvCell).join(',')}\n`;
    },
    end: () => (first ? `${['file', 'width', 'height', ...header.names, 'error'].map(csvCell).join(',')}\n` : ''),
  };
}

/** Column title: score names can be long ("vivid", "Good photo.|Bad photo."), so titles are cut to the column. */
function title(name: string, width: number): string {
  return name.length <= width ? name.padStart(width) : `${name.slice(0, width - 1)}…`;
}

function shortenPath(path: string, width: number): string {
  return path.length <= width ? path.padEnd(width) : `…${path.slice(path.length - width + 1)}`;
}

function tableFormatter(header: RunHeader, color: boolean, fileWidth: number): Formatter {
  const col = Math.max(DIGITS + 2, Math.min(12, Math.max(...header.names.map((n) => n.length), 0)));
  const width = Math.max(8, Math.min(fileWidth, 48));
  let first = true;
  // Green for high, red for low: a glance tells which images stand out. Off for pipes and NO_COLOR.
  const paint = (v: number, text: string) => {
    if (!color) return text;
    const code = v >= 0.66 ? 32 : v <= 0.33 ? 31 : 0;
    return code ? `\x1b[${code}m${text}\x1b[0m` : text;
  };
  const head = () => `${'image'.padEnd(width)}  ${'size'.padStart(9)}  ${header.names.map((n) => title(n, col)).join('  ')}\n`;
  return {
    row(r) {
      const prefix = first ? head() : '';
      first = false;
      const file = shortenPath(r.file, width);
      if ('error' in r) return `${prefix}${file}  ${'—'.padStart(9)}  error: ${r.error.message}\n`;
      const size = `${r.width}×${r.height}`.padStart(9);
      const cells = header.names.map((n) => {
        const v = r.scores[n];
        return v === undefined ? ''.padStart(col) : paint(v, v.toFixed(DIGITS).padStart(col));
      });
      return `${prefix}${file}  ${size}  ${cells.join('  ')}\n`;
    },
    end: () => (first ? head() : ''),
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
  /** Ends a file and throws E_OUTPUT if any write to it failed (standard output stays open). */
  close(): Promise<void>;
}

/** `path`'s stream, whose write errors (a full disk) end the run with a message at `close` instead of crashing it. */
export function openOutput(path: string | undefined, what: string): Output {
  if (path === undefined) return { stream: process.stdout, close: async () => undefined };
  const stream = createWriteStream(path);
  let failure: Error | undefined;
  stream.on('error', (e: Error) => (failure ??= e));
  return {
    stream,
    async close() {
      await new Promise<void>((resolve) => stream.end(() => resolve()));
      if (failure) throw outputError(what, path, failure.message, failure);
    },
  };
}
