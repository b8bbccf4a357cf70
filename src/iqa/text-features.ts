import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ClipEncoder, Features } from '../model/types.js';
import type { Tokenizer } from '../text/tokenizer.js';

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

/**
 * Text features of prompts, computed once per model and prompt: every CLIP-IQA score reuses the same few
 * prompts, so after the first image the text tower never runs again. Bounded, least recently used first out,
 * so that a long-running server fed ever new custom pairs does not grow without end.
 */
export class TextFeatureCache {
  readonly #encoder: ClipEncoder;
  readonly #tokenizer: Pick<Tokenizer, 'tokenize' | 'contextLength'>;
  readonly #memo: TokenMemo | undefined;
  readonly #rows = new Map<string, Float32Array>();
  readonly #capacity: number;
  #dim = 0;

  constructor(encoder: ClipEncoder, tokenizer: Pick<Tokenizer, 'tokenize' | 'contextLength'>, capacity = 4096, memo?: TokenMemo) {
    this.#encoder = encoder;
    this.#tokenizer = tokenizer;
    this.#memo = memo;
    this.#capacity = Math.max(1, capacity);
  }

  get size(): number {
    return this.#rows.size;
  }

  /** Features of `texts` in order, as one (texts.length, D) matrix; only unseen texts go through the tower, in one batch. */
  async features(texts: readonly string[]): Promise<Features> {
    const missing = [...new Set(texts.filter((t) => !this.#rows.has(t)))];
    if (missing.length > 0) {
      // Tokenize everything first, so a text that is too long fails before any work is done.
      const memo = await this.#memo?.rows();
      const fresh = new Map<string, number[]>();
      const rows = missing.map((t) => {
        const known = memo?.get(t);
        if (known && known.length === this.#tokenizer.contextLength) return known;
        const row = this.#tokenizer.tokenize(t);
        fresh.set(t, row);
        return row;
      });
      if (fresh.size > 0) await this.#memo?.add(fresh);
      const computed = await this.#encoder.encodeTokens(rows);
      this.#dim = computed.dim;
      missing.forEach((t, i) => this.#rows.set(t, computed.data.slice(i * computed.dim, (i + 1) * computed.dim)));
    }
    const dim = this.#dim;
    const data = new Float32Array(texts.length * dim);
    texts.forEach((t, i) => {
      const row = this.#rows.get(t)!;
      data.set(row, i * dim);
      // Re-inserting marks the prompt as recently used; Map iteration order is insertion order.
      this.#rows.delete(t);
      this.#rows.set(t, row);
    });
    this.#evict();
    return { count: texts.length, dim, data };
  }

  #evict(): void {
    for (const key of this.#rows.keys()) {
      if (this.#rows.size <= this.#capacity) break;
      this.#rows.delete(key);
    }
  }
}
