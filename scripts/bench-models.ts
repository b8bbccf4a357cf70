/**
 * Models for the serving benchmarks: the tiny fixture (tiny-rn: the HTTP, queue and decode paths dominate) and
 * RN50-shaped random weights (bench/random-clip.ts: real RN50 arithmetic, no download; the scores mean nothing),
 * written once as a safetensors file so that the server's workers can load it like any checkpoint.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CONFIGS, randomClip } from '../bench/random-clip.js';
import type { ClipIqaOptions } from '../src/api.js';
import { PACKAGE } from '../src/server/package-root.js';
import type { StateDict } from '../src/weights/state-dict.js';

export const ROOT = PACKAGE.root;
export const SHARED = resolve(process.env.CLIP_IQA_SHARED ?? join(ROOT, '..', 'shared'));
export const VOCAB = join(SHARED, 'clip', 'bpe_simple_vocab_16e6.txt.gz');
export const TINY_RN = join(SHARED, 'fixtures', 'tiny-rn', 'model.safetensors');
const RN50_RANDOM = join(ROOT, '.bench', 'rn50-random.safetensors');

const SAFETENSORS_DTYPES: Record<string, string> = { float32: 'F32', float16: 'F16', int64: 'I64' };

/** A state dict as safetensors bytes (the format: 8-byte header length, JSON header, tensor data). */
function toSafetensors(sd: StateDict): Uint8Array {
  const header: Record<string, unknown> = {};
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of sd.entries()) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: SAFETENSORS_DTYPES[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(new TextEncoder().encode(json), 8);
  let at = 8 + json.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function modelOptions(model: string): ClipIqaOptions {
  if (model === 'tiny-rn') return { model: TINY_RN, vocab: VOCAB, name: 'tiny-rn' };
  if (model === 'rn50-random') {
    if (!existsSync(RN50_RANDOM)) {
      mkdirSync(join(ROOT, '.bench'), { recursive: true });
      writeFileSync(RN50_RANDOM, toSafetensors(randomClip(CONFIGS.rn50)));
    }
    return { model: RN50_RANDOM, vocab: VOCAB, name: 'rn50-random' };
  }
  throw new Error(`unknown bench model ${model}: tiny-rn or rn50-random`);
}
