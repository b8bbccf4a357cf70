import type { ClipEncoder, Features } from '../model/types.js';
import type { Tokenizer } from '../text/tokenizer.js';

/**
 * Text features of prompts, computed once per model and prompt: every CLIP-IQA score reuses the same few
 * prompts, so after the first image the text tower never runs again.
 */
export class TextFeatureCache {
  readonly #encoder: ClipEncoder;
  readonly #tokenizer: Tokenizer;
  readonly #rows = new Map<string, Float32Array>();
  #dim = 0;

  constructor(encoder: ClipEncoder, tokenizer: Tokenizer) {
    this.#encoder = encoder;
    this.#tokenizer = tokenizer;
  }

  get size(): number {
    return this.#rows.size;
  }

  /** Features of `texts` in order, as one (texts.length, D) matrix; only unseen texts go through the tower, in one batch. */
  async features(texts: readonly string[]): Promise<Features> {
    const missing = [...new Set(texts.filter((t) => !this.#rows.has(t)))];
    if (missing.length > 0) {
      // Tokenize everything first, so a text that is too long fails before any work is done.
      const rows = missing.map((t) => this.#tokenizer.tokenize(t));
      const computed = await this.#encoder.encodeTokens(rows);
      this.#dim = computed.dim;
      missing.forEach((t, i) => this.#rows.set(t, computed.data.slice(i * computed.dim, (i + 1) * computed.dim)));
    }
    const dim = this.#dim;
    const data = new Float32Array(texts.length * dim);
    texts.forEach((t, i) => data.set(this.#rows.get(t)!, i * dim));
    return { count: texts.length, dim, data };
  }

  /** Stores features computed elsewhere (a disk cache, learned prompts) under a key. */
  set(key: string, row: Float32Array): void {
    this.#dim = row.length;
    this.#rows.set(key, row);
  }
}
