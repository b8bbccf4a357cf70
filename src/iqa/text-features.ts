import type { ClipEncoder, Features } from '../model/types.js';
import type { Tokenizer } from '../text/tokenizer.js';
// Token rows on disk are the Node build's (token-memo.ts, node:fs); the browser build passes none.
import type { TokenMemo } from './token-memo.js';

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
