/**
 * Models and the photo for the serving benchmarks. The models: the tiny fixture (tiny-rn: the HTTP, queue and decode
 * paths dominate) and RN50-shaped random weights (bench/random-clip.ts: real RN50 arithmetic, no download; the scores
 * mean nothing), written once as a safetensors file so that the server's workers can load it like any checkpoint.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { CONFIGS, randomClip, toSafetensors } from '../bench/random-clip.js';
import type { ClipIqaOptions } from '../src/api.js';
import { PACKAGE } from '../src/util/package.js';

export const ROOT = PACKAGE.root;
export const SHARED = resolve(process.env.CLIP_IQA_SHARED ?? join(ROOT, '..', 'shared'));
export const VOCAB = join(SHARED, 'clip', 'bpe_simple_vocab_16e6.txt.gz');
export const TINY_RN = join(SHARED, 'fixtures', 'tiny-rn', 'model.safetensors');
const RN50_RANDOM = join(ROOT, '.bench', 'rn50-random.safetensors');

export function modelOptions(model: string): ClipIqaOptions {
  if (model === 'tiny-rn') return { model: TINY_RN, vocab: VOCAB, name: 'tiny-rn' };
  if (model === 'rn50-random') {
    if (!existsSync(RN50_RANDOM)) {
      mkdirSync(join(ROOT, '.bench'), { recursive: true });
      // float32 on disk, as the serving figures in the README were measured.
      writeFileSync(RN50_RANDOM, toSafetensors(randomClip(CONFIGS.rn50), 'F32'));
    }
    return { model: RN50_RANDOM, vocab: VOCAB, name: 'rn50-random' };
  }
  throw new Error(`unknown bench model ${model}: tiny-rn or rn50-random`);
}

/** The photo posted: one of ../shared/images as it is, or squashed to `size`×`size` as a JPEG when `size` is given. */
export async function benchImage(image: string, size: string): Promise<{ bytes: Buffer; type: string }> {
  const bytes = await sharp(join(SHARED, 'images', image)).toBuffer();
  if (!size) return { bytes, type: image.endsWith('.png') ? 'image/png' : 'image/jpeg' };
  const n = Number(size);
  return { bytes: await sharp(bytes).resize(n, n, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer(), type: 'image/jpeg' };
}
