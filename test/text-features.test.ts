import { describe, expect, it } from 'vitest';
import { TextFeatureCache } from '../src/iqa/text-features.js';
import type { ClipEncoder, Features } from '../src/model/types.js';
import type { Tokenizer } from '../src/text/tokenizer.js';

/** An encoder whose feature of a row is [first id, call number], so tests see what ran and when. */
function countingEncoder() {
  const calls: number[][] = [];
  const encoder = {
    async encodeTokens(rows: readonly (readonly number[])[]): Promise<Features> {
      calls.push(rows.map((r) => r[0]!));
      return { count: rows.length, dim: 2, data: Float32Array.from(rows.flatMap((r) => [r[0]!, calls.length])) };
    },
  } as unknown as ClipEncoder;
  const tokenizer = { tokenize: (t: string) => [t.length] } as unknown as Tokenizer;
  return { encoder, tokenizer, calls };
}

describe('text feature cache', () => {
  it('runs each prompt through the tower once, in one batch, and keeps order and duplicates', async () => {
    const { encoder, tokenizer, calls } = countingEncoder();
    const cache = new TextFeatureCache(encoder, tokenizer);
    const a = await cache.features(['aa', 'b', 'aa']);
    expect(Array.from(a.data)).toEqual([2, 1, 1, 1, 2, 1]);
    const b = await cache.features(['b', 'cccc']);
    expect(Array.from(b.data)).toEqual([1, 1, 4, 2]);
    expect(calls).toEqual([[2, 1], [4]]);
  });

  it('forgets the least recently used prompts beyond its capacity', async () => {
    const { encoder, tokenizer, calls } = countingEncoder();
    const cache = new TextFeatureCache(encoder, tokenizer, 2);
    await cache.features(['a', 'bb']);
    await cache.features(['a']); // a is now more recent than bb
    await cache.features(['ccc']); // evicts bb
    expect(cache.size).toBe(2);
    await cache.features(['a']);
    expect(calls).toHaveLength(2);
    await cache.features(['bb']);
    expect(calls).toHaveLength(3);
  });
});
