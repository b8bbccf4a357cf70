import { describe, expect, it } from 'vitest';
import { buildLearnedPrompts, loadLearnedContext } from '../src/iqa/plus.js';
import { Tokenizer } from '../src/text/tokenizer.js';
import { loadSafetensors } from '../src/weights/safetensors.js';
import { MODELS, VOCAB, fixture } from './helpers/shared.js';

describe('CLIP-IQA+ contexts', () => {
  for (const model of MODELS) {
    it(`${model}: both context files give the reference context, and the prompts the reference embeddings`, async () => {
      const expected = await loadSafetensors(fixture(model, 'expected.safetensors'));
      const sd = await loadSafetensors(fixture(model, 'model.safetensors'));
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
        const ctx = await loadLearnedContext(fixture(model, file));
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
      expect((await loadLearnedContext(fixture(model, 'clipiqa+-mmedit.pth'))).key).toBe('state_dict.generator.clipmodel_0.prompt_learner.ctx');
    });
  }

  it('rejects a context of the wrong width and a file without a context', async () => {
    const tokenizer = await Tokenizer.fromFile(VOCAB);
    const ctx = await loadLearnedContext(fixture('tiny-rn', 'clipiqa+-ctx.pth'));
    expect(() => buildLearnedPrompts(ctx, tokenizer, () => new Float32Array(0), 512)).toThrowError(/64 wide, but this model's text tower is 512 wide/);
    await expect(loadLearnedContext(fixture('tiny-rn', 'model.pt'))).rejects.toThrowError(/no CLIP-IQA\+ context found/);
  });
});
