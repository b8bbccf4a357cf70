/**
 * What a batch is scored with, stored once with the batch (not with each job): the model and how to read images,
 * what to score, and the URL safeguards. Paths in it are absolute, as every worker must find the same files.
 */
import type { ClipIqaOptions, ScoreOptions } from '../api.js';
import type { DecodeOptions } from '../image/decode.js';
import type { UrlFetchOptions } from '../image/fetch.js';
import type { NoisinessPolarity } from '../iqa/prompts.js';
import type { PositionalMode } from '../model/types.js';
import type { Precision } from '../runtime/options.js';

export interface BatchSettings {
  /** A registry name, `hf:` id, URL with `#sha256=`, or a path every worker can read (default RN50). */
  readonly model?: string;
  /** The model's name in results (default: as `model` is written). */
  readonly name?: string;
  readonly vocab?: string;
  /** CLIP-IQA+: `true` for the official context, or a registry name, path or URL. */
  readonly plus?: string | boolean;
  readonly positional?: PositionalMode;
  readonly noisiness?: NoisinessPolarity;
  readonly precision?: Precision;
  /** Decoding: orientation, alpha, background, ICC, resize, pixel limit (`limitInputPixels`). */
  readonly decode?: Omit<DecodeOptions, 'name' | 'limitReason'>;
  /** Attribute names or sets, as `clip-iqa score -a` (default `paper`). */
  readonly attributes?: string | readonly string[];
  /** Your own pairs, `"name=positive|negative"`. */
  readonly prompts?: readonly string[];
  readonly ensemble?: boolean;
  /** Safeguards of URL inputs (fetched by the workers); default any host, 64 MiB, 30 s. */
  readonly fetch?: Pick<UrlFetchOptions, 'allowHosts' | 'maxBytes' | 'timeoutMs'>;
}

/** What a worker loads for a batch; each machine adds its own runtime (threads, device) and cache. */
export function loadOptions(settings: BatchSettings): ClipIqaOptions {
  return {
    model: settings.model,
    ...(settings.name === undefined ? {} : { name: settings.name }),
    vocab: settings.vocab,
    plus: settings.plus,
    positional: settings.positional,
    noisiness: settings.noisiness,
    precision: settings.precision,
    decode: settings.decode,
    fetch: settings.fetch ?? true,
  };
}

export function scoreOptions(settings: BatchSettings): ScoreOptions {
  return { attributes: settings.attributes, prompts: settings.prompts, ensemble: settings.ensemble };
}

/** Models loaded once per machine are shared by the batches that name the same files and options. */
export const modelKey = (settings: BatchSettings): string => JSON.stringify(loadOptions(settings));

/** JSON drops `undefined`; a stored batch reads back as it was given. */
export const encodeSettings = (settings: BatchSettings): string => JSON.stringify(settings);
export const decodeSettings = (text: string): BatchSettings => JSON.parse(text) as BatchSettings;
