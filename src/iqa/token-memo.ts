import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Token rows kept on disk at most; the built-in prompts are 46. */
const MEMO_ROWS = 4096;

/**
 * Token rows of prompts kept on disk per vocabulary (keyed by its SHA-256 in the file name), so that a run whose
 * prompts were all seen before never parses the vocabulary's 49k merges. Written by temporary file + rename;
 * unreadable or malformed files are ignored (the prompts are then tokenized).
 */
export class TokenMemo {
  readonly path: string;
  #rows: Promise<Map<string, number[]>> | undefined;

  constructor(path: string) {
    this.path = path;
  }

  async #read(): Promise<Map<string, number[]>> {
    try {
      const doc = JSON.parse(await readFile(this.path, 'utf8')) as { version?: number; rows?: Record<string, unknown> };
      if (doc?.version !== 1 || !doc.rows || typeof doc.rows !== 'object') return new Map();
      return new Map(Object.entries(doc.rows).filter((e): e is [string, number[]] => Array.isArray(e[1]) && e[1].every((x) => Number.isInteger(x))));
    } catch {
      return new Map();
    }
  }

  rows(): Promise<Map<string, number[]>> {
    this.#rows ??= this.#read();
    return this.#rows;
  }

  async add(rows: ReadonlyMap<string, number[]>): Promise<void> {
    if (rows.size === 0) return;
    const known = await this.rows();
    for (const [k, v] of rows) known.set(k, v);
    // Re-read before writing, so that rows another process stored meanwhile are kept.
    const merged = new Map([...(await this.#read()), ...rows]);
    const kept = [...merged].slice(-MEMO_ROWS);
    const tmp = `${this.path}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`;
    try {
      await mkdir(dirname(this.path), { recursive: true });
      await writeFile(tmp, JSON.stringify({ version: 1, rows: Object.fromEntries(kept) }));
      await rename(tmp, this.path);
    } catch {
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}
