/**
 * Acting on a run's results: `--keep 'quality>=0.6,sharpness>=0.5'` and `--top N` choose images, and
 * `--copy-to DIR`, `--move-to DIR` or `--link-to DIR` put the chosen files there (`--dry-run`: only say what would
 * be done). Files keep their names; a name already in DIR (or chosen twice) becomes `name-1.jpg`, `name-2.jpg`, …:
 * nothing in DIR is ever overwritten, which every step enforces itself (exclusive create, hard link, symlink)
 * rather than trusting a check made earlier. Links are symbolic, to the absolute path of the original.
 */
import { constants } from 'node:fs';
import { copyFile, link, lstat, mkdir, realpath, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { ClipIqaError, errCode, errorMessage } from '../errors.js';
import { isHttpUrl } from '../image/fetch.js';
import type { ImageRow } from './output.js';

export interface Condition {
  readonly name: string;
  readonly op: '>=' | '>' | '<=' | '<';
  readonly value: number;
}

/** Parses `quality>=0.6,sharpness>=0.5`: score names, an operator (>=, >, <=, <) and a number each. */
export function parseKeep(spec: string): Condition[] {
  const parts = spec.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) throw new ClipIqaError('E_OPTION', '--keep: give conditions such as "quality>=0.6,sharpness>=0.5"');
  return parts.map((part) => {
    // The name may not end in an operator character, so that "quality=>0.6" is refused rather than read as "quality=" > 0.6.
    const m = /^(.*?[^=<>!\s])\s*(>=|<=|>|<)\s*(-?\d*\.?\d+(?:e-?\d+)?)$/i.exec(part);
    if (!m) throw new ClipIqaError('E_OPTION', `--keep: "${part}" is not a condition; write a score name, >=, >, <= or <, and a number (quality>=0.6)`);
    return { name: m[1]!.trim(), op: m[2] as Condition['op'], value: Number(m[3]) };
  });
}

/** Fails when a condition names a score this run does not have. */
export function checkConditions(conditions: readonly Condition[], names: readonly string[]): void {
  for (const c of conditions) {
    if (!names.includes(c.name)) throw new ClipIqaError('E_OPTION', `--keep ${c.name}: not among the scores of this run (${names.join(', ')})`);
  }
}

/** Whether a scored row meets every condition (failed rows never do). */
export function passes(row: ImageRow, conditions: readonly Condition[]): boolean {
  if ('error' in row) return false;
  return conditions.every((c) => {
    const v = row.scores[c.name];
    if (v === undefined) return false;
    return c.op === '>=' ? v >= c.value : c.op === '>' ? v > c.value : c.op === '<=' ? v <= c.value : v < c.value;
  });
}

export type FileAction = 'copy' | 'move' | 'link';

export interface ActionStep {
  readonly from: string;
  readonly to: string;
}

export interface ActionResult {
  readonly done: ActionStep[];
  /** Chosen images that were not files, or could not be acted on, with why. */
  readonly skipped: { readonly file: string; readonly reason: string }[];
}

const VERB: Record<FileAction, { present: string; past: string }> = {
  copy: { present: 'copy', past: 'copied' },
  move: { present: 'move', past: 'moved' },
  link: { present: 'link', past: 'linked' },
};

export const actionWords = (action: FileAction) => VERB[action];

/** Fails early (before a model loads) when DIR exists and is not a directory. */
export async function checkActionDir(dir: string, flag: string): Promise<void> {
  const info = await lstat(dir).catch(() => undefined);
  if (info && !info.isDirectory()) throw new ClipIqaError('E_OUTPUT', `${flag} ${dir}: exists and is not a directory`);
}

const exists = (path: string) => lstat(path).then(() => true, () => false);

/** `stem-1.ext`, `stem-2.ext`, … for the nth clash. */
function candidate(dir: string, name: string, n: number): string {
  if (n === 0) return join(dir, name);
  const ext = extname(name);
  return join(dir, `${name.slice(0, name.length - ext.length)}-${n}${ext}`);
}

/** One file into DIR under a name nobody holds; returns the name used. EEXIST from the step itself moves on. */
async function place(action: FileAction, from: string, dir: string, taken: Set<string>): Promise<string> {
  const name = basename(from);
  for (let n = 0; n < 10_000; n++) {
    const to = candidate(dir, name, n);
    if (taken.has(to)) continue;
    try {
      if (action === 'copy') await copyFile(from, to, constants.COPYFILE_EXCL);
      else if (action === 'link') await symlink(resolve(from), to);
      else {
        // rename() would replace an existing target; a hard link never does. Across file systems: copy, then remove.
        try {
          await link(from, to);
        } catch (e) {
          if (errCode(e) !== 'EXDEV' && errCode(e) !== 'EPERM') throw e;
          await copyFile(from, to, constants.COPYFILE_EXCL);
        }
        await unlink(from);
      }
      taken.add(to);
      return to;
    } catch (e) {
      if (errCode(e) === 'EEXIST') continue;
      throw e;
    }
  }
  throw new Error(`no free name for ${name} in ${dir}`);
}

/**
 * Copies, moves or links the chosen images' files into `dir` (created if need be); with `dryRun`, only works out
 * the names it would use. URLs and standard input are not files and are skipped, as are files already in `dir`.
 */
export async function actOnFiles(action: FileAction, dir: string, files: readonly string[], dryRun: boolean): Promise<ActionResult> {
  const done: ActionStep[] = [];
  const skipped: ActionResult['skipped'] = [];
  const taken = new Set<string>();
  if (!dryRun) await mkdir(dir, { recursive: true });
  const realDir = await realpath(dir).catch(() => resolve(dir));
  for (const file of files) {
    if (file === '-' || isHttpUrl(file)) {
      skipped.push({ file, reason: file === '-' ? 'standard input is not a file' : 'a URL is not a file' });
      continue;
    }
    if ((await realpath(dirname(file)).catch(() => undefined)) === realDir) {
      skipped.push({ file, reason: `already in ${dir}` });
      continue;
    }
    try {
      if (dryRun) {
        let n = 0;
        while (taken.has(candidate(dir, basename(file), n)) || (await exists(candidate(dir, basename(file), n)))) n++;
        const to = candidate(dir, basename(file), n);
        taken.add(to);
        done.push({ from: file, to });
      } else {
        done.push({ from: file, to: await place(action, file, dir, taken) });
      }
    } catch (e) {
      skipped.push({ file, reason: errorMessage(e) });
    }
  }
  return { done, skipped };
}
