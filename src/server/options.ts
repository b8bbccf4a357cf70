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

/** How a running task can be stopped. */
export interface TaskControl {
  /**
   * Aborted when the request's deadline passes: work not started is dropped, work running is stopped (the pool
   * kills the model process running it and starts another).
   */
  readonly signal?: AbortSignal;
}

/**
 * What the server needs of a loaded model: the model processes (pool.ts) by default; a ClipIqa, or any stand-in with
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
  score(input: ImageSource, options?: ScoreOptions, control?: TaskControl): Promise<ImageScores>;
  embedImage(input: ImageSource, options?: { positional?: PositionalMode; decode?: DecodeOptions }, control?: TaskControl): Promise<Float32Array>;
  embedText(texts: readonly string[], control?: TaskControl): Promise<Float32Array[]>;
  dispose(): Promise<void>;
  /** Builds every session the routes may use; without it the server scores a grey image with everything. */
  warmUp?(): Promise<void>;
  /** Whether it can take work now (false while its model processes restart); default always. */
  available?(): boolean;
}

export interface ServerOptions {
  /** How the model is loaded (`ClipIqa.load` options); its noisiness and positional mode are the server's defaults too. */
  readonly model?: ClipIqaOptions;
  /** Gives the loaded model instead of `ClipIqa.load(model)`; the server disposes of it when it closes. */
  readonly engine?: () => Promise<Engine>;
  /**
   * Model processes, each holding the model (onnxruntime-node runs inferences on the thread that calls it, so the
   * model must not live on the event loop's thread, and only a process can be stopped mid-run); default 1. Each
   * gets `model.runtime.threads` onnxruntime threads, by default the cores divided among them.
   */
  readonly workers?: number;
  /** Images in the model processes at once; default 2 per process (one decodes while the other runs). */
  readonly concurrency?: number;
  /** Images that may wait for a free lane; beyond that requests get 429 with Retry-After. Default 32. */
  readonly queue?: number;
  /** Largest upload (each file, a raw body, a fetched URL), bytes; default 20 MiB. */
  readonly maxUploadBytes?: number;
  /** Most images in one request; default 16. */
  readonly maxFiles?: number;
  /**
   * Largest width×height, read from the image header before any pixel is decoded; default 4096² (16.8 MP), what
   * the decoder may allocate. Defaults to the model's `decode.limitInputPixels` when that is set.
   */
  readonly maxPixels?: number;
  /**
   * Most memory one image may take, bytes, as estimated from its header for the loaded model (decoded pixels and the
   * network's activations at that size, architecture and precision: src/model/memory.ts); larger images are refused
   * with 413 before decoding. CLIP-IQA scores at native resolution, so this is what bounds the work per image.
   * Default: half the memory available once the model has loaded, shared among the model processes.
   */
  readonly maxImageMemory?: number;
  /**
   * Bytes of request bodies and `url=` downloads held in memory at once, server-wide; default 512 MiB. A request
   * that would go beyond is refused before its bytes are buffered: 429 with Retry-After, or 413 if it could never
   * fit. At least `maxUploadBytes`.
   */
  readonly maxInFlightBytes?: number;
  /** Custom prompt pairs per request, at most; default 16 (their text features are computed and cached). */
  readonly maxPrompts?: number;
  /**
   * Milliseconds to receive a request (headers and body: a body still arriving then gets 408), and again to answer
   * it once received (503; images still being scored are stopped); default 60 000.
   */
  readonly timeoutMs?: number;
  /** Bearer token required on /v1/* and /metrics; default none (fine on loopback). */
  readonly token?: string;
  /** Hosts `url=` may fetch from (`example.com`, `*.example.com`, `127.0.0.1:8081`); default none: URL fetching off. */
  readonly allowUrlFetch?: readonly string[];
  /** Milliseconds for a whole URL fetch; default 10 000. */
  readonly fetchTimeoutMs?: number;
  /**
   * Host header values the server answers (DNS-rebinding protection): names or patterns as for `allowUrlFetch`
   * (`example.com`, `*.example.com`, optionally with `:port`), or `['*']` for any. Default: `localhost`, `127.0.0.1`
   * and `[::1]` when the server listens on a loopback address, any host otherwise.
   */
  readonly allowedHosts?: readonly string[];
  /**
   * Origins whose web pages may call the API (`https://app.example.com`, or `*` for any): they get CORS headers.
   * Default none: a browser request from another origin is refused (403) before its body is read, so that pages
   * elsewhere cannot make this server work, and no CORS headers are sent.
   */
  readonly cors?: readonly string[];
  /** Serve the web page and the docs page; default true. */
  readonly ui?: boolean;
  /** Fastify's logger: false (default), true (info), or a level and where the JSON lines go (default standard output). */
  readonly logger?: boolean | LoggerOptions;
}

export interface LoggerOptions {
  readonly level?: string;
  readonly stream?: { write(line: string): void };
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
  /** Set, or undefined until the model has loaded (inference.ts sizes it to the memory then available). */
  readonly maxImageMemory: number | undefined;
  readonly maxInFlightBytes: number;
  readonly maxPrompts: number;
  readonly timeoutMs: number;
  readonly token: string | undefined;
  readonly allowUrlFetch: readonly string[] | undefined;
  readonly fetchTimeoutMs: number;
  /** Undefined: decided by the address the server listens on. */
  readonly allowedHosts: readonly string[] | undefined;
  readonly cors: readonly string[];
  readonly ui: boolean;
  readonly logger: boolean | LoggerOptions;
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
  maxInFlightBytes: 512 * 1024 * 1024,
  /** Share of the memory available after loading that images may take (the rest: the system, decoding, bodies). */
  imageMemoryShare: 0.5,
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
  const maxUploadBytes = count('maxUploadBytes', options.maxUploadBytes, DEFAULTS.maxUploadBytes);
  const maxInFlightBytes = count('maxInFlightBytes', options.maxInFlightBytes, DEFAULTS.maxInFlightBytes);
  if (maxInFlightBytes < maxUploadBytes) {
    throw new ClipIqaError('E_OPTION', `maxInFlightBytes (${maxInFlightBytes}) must be at least maxUploadBytes (${maxUploadBytes}): one upload must fit`);
  }
  const list = (name: string, v: readonly string[] | undefined): readonly string[] | undefined => {
    const items = v?.map((x) => x.trim()).filter(Boolean);
    if (v !== undefined && items!.length === 0) throw new ClipIqaError('E_OPTION', `${name} needs at least one entry`);
    return items;
  };
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
    maxUploadBytes,
    maxFiles: count('maxFiles', options.maxFiles, DEFAULTS.maxFiles),
    maxPixels,
    maxImageMemory: options.maxImageMemory === undefined ? undefined : count('maxImageMemory', options.maxImageMemory, 0),
    maxInFlightBytes,
    maxPrompts: count('maxPrompts', options.maxPrompts, DEFAULTS.maxPrompts, 0),
    timeoutMs: count('timeoutMs', options.timeoutMs, DEFAULTS.timeoutMs),
    token,
    allowUrlFetch: options.allowUrlFetch && options.allowUrlFetch.length > 0 ? options.allowUrlFetch : undefined,
    fetchTimeoutMs: count('fetchTimeoutMs', options.fetchTimeoutMs, DEFAULTS.fetchTimeoutMs),
    allowedHosts: list('allowedHosts', options.allowedHosts),
    cors: list('cors', options.cors) ?? [],
    ui: options.ui ?? true,
    logger: options.logger ?? false,
    noisiness: model.noisiness ?? 'noisy',
    positional: model.positional ?? 'none',
  };
}
