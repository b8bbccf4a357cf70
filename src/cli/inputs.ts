import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { glob, isDynamicPattern } from 'tinyglobby';

/** File extensions taken from directories and globs; a file named explicitly is tried whatever its extension. */
export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'jfif', 'png', 'webp', 'avif', 'tif', 'tiff', 'gif'] as const;

const IMAGE_RE = new RegExp(`\\.(${IMAGE_EXTENSIONS.join('|')})$`, 'i');

export const isImageName = (path: string): boolean => IMAGE_RE.test(path);

/** One thing to score: a file, standard input, or an argument that named nothing (reported, not fatal). */
export type InputItem =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'stdin' }
  | { readonly kind: 'missing'; readonly arg: string; readonly reason: string };

export const inputName = (item: InputItem): string => (item.kind === 'file' ? item.path : item.kind === 'stdin' ? '-' : item.arg);

/**
 * Expands command-line arguments into images, in argument order: directories are walked recursively for image
 * extensions (sorted, so runs are repeatable), globs are expanded, `-` is standard input. Duplicates are kept once.
 */
export async function expandInputs(args: readonly string[]): Promise<InputItem[]> {
  const out: InputItem[] = [];
  const seen = new Set<string>();
  const add = (item: InputItem) => {
    const key = inputName(item);
    if (item.kind === 'file' && seen.has(key)) return;
    seen.add(key);
    out.push(item);
  };
  for (const arg of args) {
    if (arg === '-') {
      add({ kind: 'stdin' });
      continue;
    }
    const info = await stat(arg).catch(() => null);
    if (info?.isDirectory()) {
      const files = await glob(`**/*.{${IMAGE_EXTENSIONS.join(',')}}`, { cwd: arg, caseSensitiveMatch: false, dot: false });
      files.sort();
      if (files.length === 0) add({ kind: 'missing', arg, reason: `no images (${IMAGE_EXTENSIONS.join(', ')}) in directory ${arg}` });
      for (const f of files) add({ kind: 'file', path: join(arg, f) });
    } else if (info) {
      add({ kind: 'file', path: arg });
    } else if (isDynamicPattern(arg)) {
      const files = (await glob(arg, { caseSensitiveMatch: false, onlyFiles: true })).filter(isImageName).sort();
      if (files.length === 0) add({ kind: 'missing', arg, reason: `the pattern ${arg} matches no images` });
      for (const f of files) add({ kind: 'file', path: f });
    } else {
      add({ kind: 'missing', arg, reason: `${arg}: no such file or directory` });
    }
  }
  return out;
}

export async function readStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
