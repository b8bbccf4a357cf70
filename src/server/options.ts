/** What `clip-iqa serve` can be told, and the defaults: safe for a server on a laptop or behind a proxy. */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import type { ClipIqaOptions, ImageScores, ScoreOptions, ScorePlan } from '../api.js';
import { ClipIqaError } from '../errors.js';
import type { DecodeOptions, ImageSource } from '../image/decode.js';
import type { NoisinessPolarity } from '../iqa/prompts.js';
import type { PositionalMode } from '../model/types.js';
import type { ClipArchitecture } from '../weights/architecture.js';

/**
 * What the server needs of a loaded model: the worker pool (pool.ts) by default; a ClipIqa, or any stand-in with
 * these members, when given as `engine` (tests, applications with their own threading).
 */
export interface Engine {
  readonly name: string;
  readonly architecture: ClipArchitecture;
  readonly logitScale: number;
  /** The CLIP-IQA+ context, when one is loaded. */
  readonly context?: { readonly source: string };
  describe(): string;
  plan(options?: ScoreOptions): ScorePlan;
  score(input: ImageSource, options?: ScoreOptions): Promise<ImageScores>;
  embedImage(input: ImageSource, options?: { positional?: PositionalMode; decode?: DecodeOptions }): Promise<Float32Array>;
  embedText(texts: readonly string[]): Promise<Float32Array[]>;
  dispose(): Promise<void>;
  /** Builds every session the routes may use; without it the server scores a grey image with everything. */
  warmUp?(): Promise<void>;
}

export interface ServerOptions {
  /** How the model is loaded (`ClipIqa.load` options); its noisiness and positional mode are the server's defaults too. */
  readonly model?: ClipIqaOptions;
  /** Gives the loaded model instead of `ClipIqa.load(model)`; the server disposes of it when it closes. */
  readonly engine?: () => Promise<Engine>;
  /**
   * Worker threads, each holding the model (onnxruntime-node runs inferences on the thread that calls it, so the
   * model must not live on the event loop's thread); default 1. Each worker gets `model.runtime.threads`
   * onnxruntime threads, by default the cores divided among the workers.
   */
  readonly workers?: number;
  /** Images in the workers at once; default 2 per worker (one decodes while the other runs). */
  readonly concurrency?: number;
  /** Images that may wait for a free lane; beyond that requests get 429 with Retry-After. Default 32. */
  readonly queue?: number;
  /** Largest upload (each file, a raw body, a fetched URL), bytes; default 20 MiB. */
  readonly maxUploadBytes?: number;
  /** Most images in one request; default 16. */
  readonly maxFiles?: number;
  /**
   * Largest width×height, read from the image header before any pixel is decoded; default 4096² (16.8 MP). A
   * 12 MP phone photo passes; CLIP-IQA scores at native resolution, so the limit also bounds the work per image.
   * Defaults to the model's `decode.limitInputPixels` when that is set.
   */
  readonly maxPixels?: number;
  /** Custom prompt pairs per request, at most; default 16 (their text features are computed and cached). */
  readonly maxPrompts?: number;
  /** Milliseconds to receive a request, and again to answer it once received; default 60 000. */
  readonly timeoutMs?: number;
  /** Bearer token required on /v1/* and /metrics; default none (fine on loopback). */
  readonly token?: string;
  /** Hosts `url=` may fetch from (`example.com`, `*.example.com`, `127.0.0.1:8081`); default none: URL fetching off. */
  readonly allowUrlFetch?: readonly string[];
  /** Milliseconds for a whole URL fetch; default 10 000. */
  readonly fetchTimeoutMs?: number;
  /** Serve the web page and the docs page; default true. */
  readonly ui?: boolean;
  /** Fastify's logger: false (default) or pino options. */
  readonly logger?: boolean | { readonly level?: string };
}

/** ServerOptions with every default filled in. */
export interface Settings {
  readonly model: ClipIqaOptions;
  readonly engine: (() => Promise<Engine>) | undefined;
  readonly workers: number;
  readonly concurrency: number;
  readonly queue: number;
  readonly maxUploadBytes: number;
  readonly maxFiles: number;
  readonly maxPixels: number;
  readonly maxPrompts: number;
  readonly timeoutMs: number;
  readonly token: string | undefined;
  readonly allowUrlFetch: readonly string[] | undefined;
  readonly fetchTimeoutMs: number;
  readonly ui: boolean;
  readonly logger: boolean | { readonly level?: string };
  readonly noisiness: NoisinessPolarity;
  readonly positional: PositionalMode;
}

export const DEFAULTS = {
  workers: 1,
  concurrencyPerWorker: 2,
  queue: 32,
  maxUploadBytes: 20 * 1024 * 1024,
  maxFiles: 16,
  maxPixels: 4096 * 4096,
  maxPrompts: 16,
  timeoutMs: 60_000,
  fetchTimeoutMs: 10_000,
} as const;

function count(name: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min) throw new ClipIqaError('E_OPTION', `${name} must be a whole number of at least ${min}, got ${String(value)}`);
  return v;
}

export function resolveSettings(options: ServerOptions = {}): Settings {
  const model = options.model ?? {};
  const decodeLimit = model.decode?.limitInputPixels;
  const maxPixels = count('maxPixels', options.maxPixels ?? (typeof decodeLimit === 'number' ? decodeLimit : undefined), DEFAULTS.maxPixels);
  const token = options.token === '' ? undefined : options.token;
  const workers = count('workers', options.workers, DEFAULTS.workers);
  const threads = model.runtime?.threads ?? Math.max(1, Math.floor(availableParallelism() / workers));
  if (token !== undefined && token.length < 8) throw new ClipIqaError('E_OPTION', 'the bearer token must be at least 8 characters long');
  // A model file's path stays on the server: clients see its file name.
  const name = model.name ?? (typeof model.model === 'string' && existsSync(model.model) ? basename(model.model) : undefined);
  return {
    // The decoder enforces the same pixel limit again, in case an image reaches it by another way than the routes.
    model: {
      ...model,
      ...(name ? { name } : {}),
      decode: { ...model.decode, limitInputPixels: maxPixels },
      // The runtime's default already stops onnxruntime's threads spinning between runs, which would hold cores
      // that the event loop (HTTP parsing) and libvips (decoding) need.
      runtime: { ...model.runtime, threads },
    },
    engine: options.engine,
    workers,
    concurrency: count('concurrency', options.concurrency, DEFAULTS.concurrencyPerWorker * workers),
    queue: count('queue', options.queue, DEFAULTS.queue, 0),
    maxUploadBytes: count('maxUploadBytes', options.maxUploadBytes, DEFAULTS.maxUploadBytes),
    maxFiles: count('maxFiles', options.maxFiles, DEFAULTS.maxFiles),
    maxPixels,
    maxPrompts: count('maxPrompts', options.maxPrompts, DEFAULTS.maxPrompts, 0),
    timeoutMs: count('timeoutMs', options.timeoutMs, DEFAULTS.timeoutMs),
    token,
    allowUrlFetch: options.allowUrlFetch && options.allowUrlFetch.length > 0 ? options.allowUrlFetch : undefined,
    fetchTimeoutMs: count('fetchTimeoutMs', options.fetchTimeoutMs, DEFAULTS.fetchTimeoutMs),
    ui: options.ui ?? true,
    logger: options.logger ?? false,
    noisiness: model.noisiness ?? 'noisy',
    positional: model.positional ?? 'none',
  };
}
