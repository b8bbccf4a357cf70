import { describe, expect, it } from 'vitest';
import { buildLearnedPrompts, loadLearnedContext } from '../src/iqa/plus.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { loadSafetensors } from '../src/weights/safetensors.js';
import { FIXTURE_SETS, VOCAB, fixture } from './helpers/shared.js';

describe('CLIP-IQA+ contexts', () => {
  for (const { name: set, models, path } of FIXTURE_SETS) {
    for (const model of models) {
      it(`${set} ${model}: both context files give the reference context, and the prompts the reference embeddings`, async () => {
        const expected = await loadSafetensors(path(model, 'expected.safetensors'));
        const sd = await loadSafetensors(path(model, 'model.safetensors'));
        const tokenizer = await Tokenizer.fromFile(VOCAB);
        const table = sd.float32('token_embedding.weight');
        const width = sd.shape('token_embedding.weight')[1]!;
        const lookup = (ids: readonly number[]) => {
          const out = new Float32Array(ids.length * width);
          ids.forEach((id, i) => out.set(table.subarray(id * width, (id + 1) * width), i * width));
          return out;
        };
        const ref = expected.float32('fp32/clipiqa+/ctx');
        for (const file of ['clipiqa+-ctx.pth', 'clipiqa+-mmedit.pth']) {
          const ctx = await loadLearnedContext(path(model, file));
          expect([ctx.prompts, ctx.tokens, ctx.width]).toEqual([1, 16, width]);
          expect(ctx.data).toEqual(ref);
          const prompts = buildLearnedPrompts(ctx, tokenizer, lookup, width);
          expect(prompts.eot).toEqual([20, 20]);
          const L = 77;
          ['Good photo.', 'Bad photo.'].forEach((cls, p) => {
            const want = expected.float32(`fp32/clipiqa+/embeddings/${cls}`);
            expect(prompts.embeddings.subarray(p * L * width, (p + 1) * L * width)).toEqual(want);
          });
        }
        expect((await loadLearnedContext(path(model, 'clipiqa+-mmedit.pth'))).key).toBe('state_dict.generator.clipmodel_0.prompt_learner.ctx');
      });
    }
  }

  it('takes one context per prompt, shape (2, 16, W), as pyiqa\'s _512 checkpoints carry', async () => {
    const tokenizer = await Tokenizer.fromFile(VOCAB);
    const first = await loadLearnedContext(fixture('tiny-rn', 'clipiqa+-ctx.pth'));
    const w = first.width;
    const second = first.data.map((v) => v * 2);
    const data = new Float32Array([...first.data, ...second]);
    const header = new TextEncoder().encode(
      JSON.stringify({ 'params.prompt_learner.ctx': { dtype: 'F32', shape: [2, 16, w], data_offsets: [0, data.byteLength] } }),
    );
    const bytes = new Uint8Array(8 + header.length + data.byteLength);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
    bytes.set(header, 8);
    bytes.set(new Uint8Array(data.buffer), 8 + header.length);
    const ctx = await loadLearnedContext(bytes, 'two.safetensors');
    expect([ctx.prompts, ctx.tokens, ctx.width]).toEqual([2, 16, w]);
    const lookup = (ids: readonly number[]) => new Float32Array(ids.length * w);
    const prompts = buildLearnedPrompts(ctx, tokenizer, lookup, w);
    // Slot 1 of each prompt holds its own context's first row.
    const L = 77;
    expect(prompts.embeddings.subarray(w, 2 * w)).toEqual(first.data.subarray(0, w));
    expect(prompts.embeddings.subarray((L + 1) * w, (L + 2) * w)).toEqual(second.subarray(0, w));
  });

  it('rejects a context of the wrong width and a file without a context', async () => {
    const tokenizer = await Tokenizer.fromFile(VOCAB);
    const ctx = await loadLearnedContext(fixture('tiny-rn', 'clipiqa+-ctx.pth'));
    expect(() => buildLearnedPrompts(ctx, tokenizer, () => new Float32Array(0), 512)).toThrowError(`${ctx.width} wide, but this model's text tower is 512 wide`);
    await expect(loadLearnedContext(fixture('tiny-rn', 'model.pt'))).rejects.toThrowError(/no CLIP-IQA\+ context found/);
  });
});
