/**
 * `--resume OUT.jsonl`: a results file that a batch appends to as it goes, so that a run cut short (Ctrl-C, a
 * kill, a crash, a reboot) is continued by running the same command again. What the file holds decides:
 *
 * - images with a scored row are skipped; failed rows are dropped and their images tried again;
 * - a torn last line (the process died mid-write) is dropped;
 * - the header line says what produced the rows: a run with other scores, another model (by SHA-256) or other
 *   options that change the numbers is refused rather than mixed in.
 *
 * When rows are dropped, the file is rewritten first (temporary file + rename), then appended to.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ClipIqaError, errorMessage, isErrno } from '../errors.js';
import { isHttpUrl } from '../image/fetch.js';
import type { ImageRow, RunHeader, RunInfo } from './output.js';

export interface ResumeHeader {
  readonly run?: RunInfo;
  readonly prompts?: RunHeader['prompts'];
  readonly higher_better?: Readonly<Record<string, boolean>>;
}

export interface ResumeState {
  readonly path: string;
  /** The file's header line; undefined for a new or empty file. */
  readonly header: ResumeHeader | undefined;
  /** Scored rows kept from the file. */
  readonly rows: ImageRow[];
  /** Keys (see `resumeKey`) of images already scored. */
  readonly done: ReadonlySet<string>;
  /** Whether the file must be rewritten before appending (torn line, failed rows dropped, no header yet). */
  readonly rewrite: boolean;
}

/** How an image is recognised across runs: a URL as is, a path resolved against the working directory. */
export const resumeKey = (file: string): string => (file === '-' || isHttpUrl(file) ? file : resolve(file));

const refuse = (path: string, why: string) =>
  new ClipIqaError('E_OPTION', `--resume ${path}: ${why}`);

/** Reads a results file to resume (a missing file is a new one). */
export async function readResume(path: string): Promise<ResumeState> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return { path, header: undefined, rows: [], done: new Set(), rewrite: true };
    throw refuse(path, `cannot read it (${errorMessage(e)})`);
  }
  const lines = text.split('\n');
  let torn = false;
  if (lines[lines.length - 1] === '') lines.pop();
  else if (lines.length > 0) {
    // No newline at the end: the last line was being written when the run died.
    lines.pop();
    torn = true;
  }
  let header: ResumeHeader | undefined;
  const rows: ImageRow[] = [];
  let dropped = 0;
  for (const [i, line] of lines.entries()) {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw refuse(path, `line ${i + 1} is not JSON; is this a clip-iqa --format jsonl file?`);
    }
    if (!value || typeof value !== 'object') throw refuse(path, `line ${i + 1} is not a JSON object`);
    if (!('file' in value)) {
      if (i !== 0) throw refuse(path, `line ${i + 1} is neither an image row (no "file") nor the header, which comes first`);
      header = value as ResumeHeader;
      continue;
    }
    const row = value as ImageRow;
    if ('error' in row) dropped++;
    else rows.push(row);
  }
  if (!header && rows.length + dropped > 0) {
    throw refuse(path, 'it has no clip-iqa header line, so the options its rows were scored with are unknown; write to a new file');
  }
  const done = new Set(rows.map((r) => resumeKey(r.file)));
  return { path, header, rows, done, rewrite: torn || dropped > 0 || !header };
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Run settings that change the numbers; a resumed file must agree on each. */
const SETTINGS = ['precision', 'positional', 'noisiness', 'resize', 'decode', 'plus'] as const;

/** Refuses a file that holds other scores than `names` (checked before the model loads). */
export function checkScoreNames(state: ResumeState, names: readonly string[]): void {
  const old = state.header?.prompts && Object.keys(state.header.prompts);
  if (old && !same(old, names)) {
    throw refuse(state.path, `it holds the scores ${old.join(', ')}; this run scores ${names.join(', ')}. Use the same -a/-p options, or a new file`);
  }
}

/** Refuses to add this run's rows to a file written with other scores, model or settings. */
export function checkCompatible(state: ResumeState, header: RunHeader): void {
  const old = state.header;
  if (!old) return;
  checkScoreNames(state, header.names);
  if (old.prompts && !same(old.prompts, header.prompts)) throw refuse(state.path, 'its prompts differ from this run\'s; use the same options, or a new file');
  const a = old.run;
  const b = header.run;
  if (!a || !b) return;
  const model = a.model_sha256 && b.model_sha256 ? a.model_sha256 !== b.model_sha256 : a.model !== b.model;
  if (model) throw refuse(state.path, `it was scored with the model ${a.model} (${a.model_sha256 ?? 'no SHA-256'}); this run uses ${b.model} (${b.model_sha256 ?? 'no SHA-256'})`);
  for (const key of SETTINGS) {
    if (!same(a[key], b[key])) throw refuse(state.path, `it was scored with ${key} ${JSON.stringify(a[key])}; this run uses ${JSON.stringify(b[key])}`);
  }
}

/** Rewrites the file as its header and kept rows (temporary file + rename), ready to append to. */
export async function rewriteResume(state: ResumeState, headerLine: string): Promise<void> {
  const target = resolve(state.path);
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const text = headerLine + state.rows.map((r) => `${JSON.stringify(r)}\n`).join('');
  try {
    await writeFile(temp, text, { flag: 'wx' });
    await rename(temp, target);
  } catch (e) {
    await unlink(temp).catch(() => undefined);
    throw new ClipIqaError('E_OUTPUT', `cannot write the results ${state.path}: ${errorMessage(e)}`, { cause: e });
  }
}
