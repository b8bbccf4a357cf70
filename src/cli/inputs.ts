/**
 * From what the user named (arguments, `--from` lists) to the images of a run, all checked before any model is
 * loaded, so that a typo costs nothing:
 *
 * - a file is taken when it is a regular file (a FIFO, device or socket would hang or never end: refused) with an
 *   image extension or none (its content decides); other extensions are refused, naming the file;
 * - a directory is searched recursively for image extensions, in sorted order; hidden entries are left out,
 *   symbolic links to files are taken, symbolic links to directories are not followed (no loops, no image twice);
 *   every other entry it holds is counted and named as skipped; a directory with no image fails;
 * - a glob is expanded the same way (symbolic links not followed);
 * - `http://` and `https://` are URLs (checked here, fetched by the library); other schemes are refused;
 * - `-` is standard input, read when its turn comes, up to a byte cap.
 *
 * Names in results follow one rule: a path as given, normalised (`./a/../b.jpg` → `b.jpg`); files found in a
 * directory are that directory as given joined with their path under it; glob matches are relative to the working
 * directory (absolute for an absolute pattern); URLs verbatim; standard input is `-`. An image named twice (also
 * through a symbolic link or two spellings) is scored once, under the first name.
 */
import { lstat, opendir, readFile, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { isAbsolute, join, normalize, resolve } from 'node:path';
import { glob, isDynamicPattern } from 'tinyglobby';
import { ClipIqaError, type ErrorCode, errorMessage } from '../errors.js';
import { hostAllowed, isHttpUrl } from '../image/fetch.js';
import { csvText } from './output.js';

/** File extensions taken from directories and globs; a file named explicitly may also have none. */
export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'jfif', 'png', 'webp', 'avif', 'tif', 'tiff', 'gif'] as const;

const IMAGE_RE = new RegExp(`\\.(${IMAGE_EXTENSIONS.join('|')})$`, 'i');
const SUPPORTED = 'JPEG, PNG, WebP, AVIF, TIFF or GIF';

export const isImageName = (path: string): boolean => IMAGE_RE.test(path);

/** The default cap on what is read from standard input (an image or a list): 64 MiB. */
export const DEFAULT_MAX_INPUT_BYTES = 64 * 1024 * 1024;

/** One thing to score, or an input that cannot be (reported as a failed image, the batch goes on). */
export type InputItem =
  | { readonly kind: 'file'; readonly name: string; readonly real: string }
  | { readonly kind: 'url'; readonly name: string }
  | { readonly kind: 'stdin'; readonly name: '-' }
  | { readonly kind: 'bad'; readonly name: string; readonly code: ErrorCode; readonly reason: string };

export const inputName = (item: InputItem): string => item.name;

export interface SkippedFile {
  readonly file: string;
  readonly reason: string;
}

export interface Inputs {
  readonly items: InputItem[];
  /** Entries of directories and glob matches that were left out, with why. */
  readonly skipped: SkippedFile[];
}

export interface ExpandOptions {
  /** `--from` lists: files of paths or URLs, one a line, or CSV with a `file` or `url` column; `-` is stdin. */
  readonly lists?: readonly string[];
  /** Hosts URLs may name (checked here for the URL itself; the library checks every redirect). */
  readonly allowHosts?: readonly string[];
  /** Cap on a list read from standard input. */
  readonly maxStdinBytes?: number;
}

const extensionOf = (path: string): string | undefined => /\.([^./\\]+)$/.exec(path)?.[1];

function kindOf(info: Stats): string {
  if (info.isFIFO()) return 'a named pipe (FIFO)';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device';
  if (info.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Expands arguments and lists into the run's inputs, in order, each image once. Throws only for a bad list. */
export async function expandInputs(args: readonly string[], options: ExpandOptions = {}): Promise<Inputs> {
  const items: InputItem[] = [];
  const skipped: SkippedFile[] = [];
  const seen = new Set<string>();
  const addFile = (name: string, real: string) => {
    if (seen.has(real)) return;
    seen.add(real);
    items.push({ kind: 'file', name, real });
  };
  const bad = (name: string, code: ErrorCode, reason: string) => items.push({ kind: 'bad', name, code, reason });

  /** A file found in a directory or by a glob: taken, or skipped with a reason. */
  const found = async (name: string, info: Stats | undefined) => {
    if (!info) return void skipped.push({ file: name, reason: 'broken symbolic link' });
    if (info.isDirectory()) return void skipped.push({ file: name, reason: 'symbolic link to a directory, not followed' });
    if (!info.isFile()) return void skipped.push({ file: name, reason: kindOf(info) });
    if (!isImageName(name)) return void skipped.push({ file: name, reason: `not an image extension (${SUPPORTED} expected)` });
    const real = await realpath(name).catch(() => resolve(name));
    addFile(name, real);
  };

  const walk = async (dir: string, visited: Set<string>): Promise<void> => {
    let entries: { name: string; isDir: boolean; isLink: boolean }[];
    try {
      const handle = await opendir(dir);
      entries = [];
      for await (const e of handle) entries.push({ name: e.name, isDir: e.isDirectory(), isLink: e.isSymbolicLink() });
    } catch (e) {
      return void skipped.push({ file: dir, reason: `cannot read the directory (${errorMessage(e)})` });
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const path = join(dir, e.name);
      if (e.isDir) {
        // A bind mount can loop without a symbolic link: each directory is entered once.
        const info = await stat(path).catch(() => undefined);
        const key = info ? `${info.dev}:${info.ino}` : path;
        if (visited.has(key)) continue;
        visited.add(key);
        await walk(path, visited);
        continue;
      }
      await found(path, e.isLink ? await stat(path).catch(() => undefined) : await lstat(path).catch(() => undefined));
    }
  };

  const take = async (arg: string) => {
    if (arg === '-') {
      if (seen.has('-')) return;
      seen.add('-');
      items.push({ kind: 'stdin', name: '-' });
      return;
    }
    if (isHttpUrl(arg)) return takeUrl(arg);
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(arg)) return bad(arg, 'E_URL', `${arg}: only http and https URLs are read`);
    const info = await stat(arg).catch(() => undefined);
    const name = normalize(arg);
    if (info?.isDirectory()) {
      const before = items.length;
      const root = `${info.dev}:${info.ino}`;
      await walk(name, new Set([root]));
      if (items.length === before) bad(arg, 'E_NOT_FOUND', `no images (${IMAGE_EXTENSIONS.join(', ')}) in the directory ${arg}`);
    } else if (info?.isFile()) {
      const ext = extensionOf(name);
      if (ext !== undefined && !isImageName(name)) {
        bad(arg, 'E_IMAGE', `${arg}: .${ext} is not an image extension (${SUPPORTED} expected); rename the file if it is one`);
      } else {
        addFile(name, await realpath(arg).catch(() => resolve(arg)));
      }
    } else if (info) {
      bad(arg, 'E_IMAGE', `${arg}: ${kindOf(info)}; only regular files are read (for a stream, use - for standard input)`);
    } else if (isDynamicPattern(arg)) {
      const before = items.length;
      const matches = (await glob(arg, { caseSensitiveMatch: false, onlyFiles: true, followSymbolicLinks: false })).sort();
      for (const m of matches) await found(isAbsolute(arg) ? resolve(m) : m, await stat(m).catch(() => undefined));
      if (items.length === before) bad(arg, 'E_NOT_FOUND', `the pattern ${arg} matches no images`);
    } else {
      bad(arg, 'E_NOT_FOUND', `${arg}: no such file or directory`);
    }
  };

  const takeUrl = (arg: string) => {
    if (seen.has(arg)) return;
    seen.add(arg);
    let url: URL;
    try {
      url = new URL(arg);
    } catch {
      return bad(arg, 'E_URL', `${arg}: not a valid URL`);
    }
    if (url.username || url.password) return bad(arg, 'E_URL', `${arg}: URLs with credentials are not fetched`);
    if (options.allowHosts && !hostAllowed(url, options.allowHosts)) {
      return bad(arg, 'E_URL', `${arg}: ${url.host} is not among the hosts of --allow-hosts (${options.allowHosts.join(', ')})`);
    }
    items.push({ kind: 'url', name: arg });
  };

  for (const arg of args) await take(arg);
  for (const list of options.lists ?? []) for (const entry of await readList(list, options.maxStdinBytes ?? DEFAULT_MAX_INPUT_BYTES)) await take(entry);
  return { items, skipped };
}

/**
 * The entries of a `--from` list: one path or URL a line (blank lines and lines starting with # left out), or,
 * for a `.csv` file or text whose first line has a `file` or `url` column, that column of each row (`file` first
 * where both are filled), so that earlier results can be fed back in.
 */
export async function readList(list: string, maxStdinBytes: number): Promise<string[]> {
  let text: string;
  try {
    text = list === '-' ? (await readStdin(maxStdinBytes, 'the list on standard input')).toString('utf8') : await readFile(list, 'utf8');
  } catch (e) {
    if (e instanceof ClipIqaError) throw e;
    throw new ClipIqaError('E_NOT_FOUND', `--from ${list}: cannot read the list (${errorMessage(e)})`, { cause: e });
  }
  text = text.replace(/^\uFEFF/, '');
  const lines = text.split(/\r?\n/);
  const first = lines.find((l) => l.trim() !== '' && !l.startsWith('#'));
  const titles = (first ?? '').split(',').map((c) => c.trim().replace(/^"|"$/g, '').toLowerCase());
  const csv = /\.csv$/i.test(list) || titles.includes('file') || titles.includes('url');
  if (!csv) return lines.filter((l) => l.trim() !== '' && !l.startsWith('#'));
  let records: Record<string, string>[];
  try {
    const { parse: parseCsv } = await import('csv-parse/sync');
    records = parseCsv(text, { columns: true, comment: '#', comment_no_infix: true, skip_empty_lines: true, relax_column_count: true, bom: true });
  } catch (e) {
    throw new ClipIqaError('E_OPTION', `--from ${list}: not a CSV file that can be read (${errorMessage(e)})`, { cause: e });
  }
  const columns = Object.keys(records[0] ?? {});
  const file = columns.find((c) => c.trim().toLowerCase() === 'file');
  const url = columns.find((c) => c.trim().toLowerCase() === 'url');
  if (records.length > 0 && !file && !url) {
    throw new ClipIqaError('E_OPTION', `--from ${list}: a CSV list needs a "file" or "url" column; its columns are ${columns.join(', ')}`);
  }
  return records.map((r) => csvText(((file && r[file]) || (url && r[url]) || '').trim())).filter((v) => v !== '');
}

/**
 * Standard input, whole, up to `maxBytes` (an endless or huge stream is refused with E_TOO_LARGE instead of
 * filling the memory). `what` names it in the message.
 */
export async function readStdin(maxBytes = DEFAULT_MAX_INPUT_BYTES, what = 'standard input'): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) {
      process.stdin.destroy();
      throw new ClipIqaError('E_TOO_LARGE', `-: ${what} is larger than ${maxBytes} bytes; raise the limit with --max-bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, total);
}
