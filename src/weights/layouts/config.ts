/**
 * What a model's config file says that its weights cannot: the MLP activation, attention heads and LayerNorm
 * epsilon of each tower, and sizes to cross-check against the tensors. open_clip and transformers configs are
 * both read into this one shape (layouts/open-clip.ts, layouts/transformers.ts).
 */
import { ClipIqaError } from '../../errors.js';
import type { Activation } from '../architecture.js';

export interface TowerConfig {
  readonly activation: Activation;
  /** Attention heads, when the config states them (or a head width they follow from). */
  readonly heads?: number;
  readonly layerNormEps?: number;
  readonly width?: number;
  readonly layers?: number;
}

export interface ModelConfig {
  readonly layout: 'open_clip' | 'transformers';
  /** The config file, for messages. */
  readonly source: string;
  readonly text: TowerConfig & { readonly contextLength?: number; readonly vocabSize?: number };
  readonly vision: TowerConfig & { readonly family?: 'vit' | 'resnet'; readonly imageSize?: number; readonly patch?: number };
  readonly embedDim?: number;
  /** Pixel mean and std when the config gives others than CLIP's. */
  readonly normalization?: { readonly mean: readonly number[]; readonly std: readonly number[] };
}

/** What clip-iqa runs, for the end of every refusal. */
export const SUPPORTED =
  'clip-iqa runs CLIP models: a ViT or modified-ResNet image tower and the CLIP text transformer with QuickGELU or GELU, ' +
  "CLIP's BPE tokenizer (77 tokens, 49,408 ids), in OpenAI's, open_clip's or transformers' CLIPModel layout";

/** A refusal: which file, what was found, what is supported. */
export function unsupported(source: string, found: string): ClipIqaError {
  return new ClipIqaError('E_ARCHITECTURE', `${source}: ${found}, which clip-iqa cannot run. ${SUPPORTED}.`);
}

export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A positive integer field, or undefined when absent; anything else is a malformed config. */
export function intField(o: Json, key: string, source: string, where: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: ${where}${key} is ${JSON.stringify(v)}; a positive integer was expected.`);
  }
  return v;
}

/** A positive number field (LayerNorm epsilon), or undefined when absent. */
export function numberField(o: Json, key: string, source: string, where: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: ${where}${key} is ${JSON.stringify(v)}; a positive number was expected.`);
  }
  return v;
}

/** Checks CLIP's tokenizer: anything else would be tokenized with the wrong vocabulary, silently. */
export function checkTokenizer(source: string, contextLength: number | undefined, vocabSize: number | undefined): void {
  if ((contextLength !== undefined && contextLength !== 77) || (vocabSize !== undefined && vocabSize !== 49408)) {
    throw unsupported(source, `the text tower takes ${contextLength ?? '?'} tokens from a vocabulary of ${vocabSize ?? '?'} ids (another tokenizer than CLIP's)`);
  }
}
