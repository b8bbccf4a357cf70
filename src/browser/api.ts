/**
 * CLIP-IQA in the browser, with the Node API's options, score names, errors and result shapes; nothing leaves the
 * page. The model lives in a Web Worker by default (clip-iqa-worker.js beside this file), so that building graphs
 * and running them never freezes the page; `worker: false` keeps it in the calling thread.
 *
 *   import { ClipIqa } from './clip-iqa.js';
 *   const iqa = await ClipIqa.load({ model: 'models/model.safetensors', onProgress });
 *   const { width, height, scores } = await iqa.score(file, { attributes: 'all' });
 *
 * Built by scripts/build-browser.mjs, which swaps the Node-only modules for their `*.browser.ts` siblings.
 */
import type { BatchResult, ImageScores, ScoreManyOptions, ScoreOptions, ScorePlan } from '../engine.js';
import { ClipIqaError, errorMessage } from '../errors.js';
import type { DecodeOptions } from '../image/decode.js';
import type { ScoreMap } from '../iqa/dense.js';
import { PLUS } from '../iqa/plus.js';
import type { PositionalMode } from '../model/types.js';
import type { ClipArchitecture } from '../weights/architecture.js';
import type { BrowserImageSource } from './decode.js';
import { type FileSpec, absoluteUrl, isFileSpec } from './files.js';
import type { BrowserLoadOptions, LocalClipIqa } from './local.js';
import { type BrokenInput, type ModelInfo, type Reply, type Request, type SerializedError, deserializeError } from './protocol.js';

export { ClipIqaError, PLUS };
export { CACHE_NAME, clearCache } from './files.js';
export type { BrowserImageSource, BrowserLoadOptions, FileSpec };
export type { LoadProgress } from './files.js';
export type { BatchResult, ImageFailure, ImageScores, ScoreManyOptions, ScoreOptions, ScorePlan } from '../engine.js';
export type { ScoreMap };
export type { DecodeOptions };
export type { Backend, RuntimeOptions } from '../runtime/options.browser.js';

/** Where the calls go: the model in this thread, or in the worker. */
interface Target {
  call<T>(method: Request['method'], args: unknown[], transfer?: Transferable[]): Promise<T>;
  many(inputs: Iterable<BrowserImageSource> | AsyncIterable<BrowserImageSource>, options: ScoreManyOptions): AsyncGenerator<BatchResult>;
  terminate(): void;
}

/** A worker running clip-iqa-worker.js, with request/reply bookkeeping. */
class WorkerTarget implements Target {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: ClipIqaError): void; progress?(p: unknown): void; item?(i: unknown): void }>();
  #next = 1;

  constructor(worker: Worker) {
    this.#worker = worker;
    worker.onmessage = (event: MessageEvent<Reply>) => {
      const reply = event.data;
      const p = this.#pending.get(reply.id);
      if (!p) return;
      if ('progress' in reply) p.progress?.(reply.progress);
      else if ('item' in reply) p.item?.(reply.item);
      else {
        this.#pending.delete(reply.id);
        if (reply.ok) p.resolve(reply.value);
        else p.reject(deserializeError(reply.error));
      }
    };
    worker.onerror = (event) => {
      const error = new ClipIqaError('E_RUNTIME', `the clip-iqa worker failed: ${event.message || 'could not start clip-iqa-worker.js (is it beside clip-iqa.js, served as JavaScript?)'}`);
      for (const p of this.#pending.values()) p.reject(error);
      this.#pending.clear();
    };
  }

  send<T>(method: Request['method'], args: unknown[], hooks: { progress?(p: unknown): void; item?(i: unknown): void } = {}, transfer: Transferable[] = []): { id: number; done: Promise<T> } {
    const id = this.#next++;
    const done = new Promise<T>((resolve, reject) => this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, ...hooks }));
    this.#worker.postMessage({ id, method, args } satisfies Request, transfer);
    return { id, done };
  }

  call<T>(method: Request['method'], args: unknown[], transfer: Transferable[] = []): Promise<T> {
    return this.send<T>(method, args, {}, transfer).done;
  }

  async *many(inputs: Iterable<BrowserImageSource> | AsyncIterable<BrowserImageSource>, options: ScoreManyOptions): AsyncGenerator<BatchResult> {
    const items: unknown[] = [];
    let wake: (() => void) | undefined;
    const { id, done } = this.send<undefined>('manyStart', [options], {
      item: (i) => {
        items.push(i);
        wake?.();
      },
    });
    let finished = false;
    let failure: ClipIqaError | undefined;
    done.then(
      () => (finished = true),
      (e: ClipIqaError) => ((failure = e), (finished = true)),
    ).finally(() => wake?.());
    // The inputs go over as they come (the worker decodes ahead and batches as scoreMany does in one thread).
    const feed = (async () => {
      for await (const input of inputs) {
        const sendable = await handOver(input);
        this.#worker.postMessage({ id: this.#next++, method: 'manyItem', args: [id, sendable] } satisfies Request);
      }
      this.#worker.postMessage({ id: this.#next++, method: 'manyEnd', args: [id] } satisfies Request);
    })();
    feed.catch((e: unknown) => {
      failure = e instanceof ClipIqaError ? e : new ClipIqaError('E_OPTION', `scoreMany: reading the inputs failed: ${errorMessage(e)}`);
      this.#worker.postMessage({ id: this.#next++, method: 'manyEnd', args: [id] } satisfies Request);
    });
    for (;;) {
      if (items.length > 0) {
        const r = items.shift() as BatchResult | (Omit<BatchResult, 'error'> & { ok: false; error: SerializedError });
        yield r.ok ? r : ({ ...r, error: deserializeError(r.error) } as BatchResult);
      } else if (finished) break;
      else await new Promise<void>((resolve) => (wake = resolve));
    }
    if (failure) throw failure;
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

/** The model in this thread. */
class LocalTarget implements Target {
  readonly model: LocalClipIqa;

  constructor(model: LocalClipIqa) {
    this.model = model;
  }

  async call<T>(method: Request['method'], args: unknown[]): Promise<T> {
    const m = this.model as unknown as Record<string, (...a: unknown[]) => unknown>;
    return (await m[method]!.apply(this.model, args)) as T;
  }

  many(inputs: Iterable<BrowserImageSource> | AsyncIterable<BrowserImageSource>, options: ScoreManyOptions): AsyncGenerator<BatchResult> {
    return this.model.scoreMany(inputs, options);
  }

  terminate(): void {}
}

/**
 * What a worker can be sent: elements (an <img>, a <canvas>) cannot cross threads, so their pixels go as an
 * ImageBitmap; everything else a page holds (Blob, File, ImageBitmap, ImageData, typed arrays) is cloned.
 */
async function handOver(input: BrowserImageSource): Promise<BrowserImageSource | BrokenInput> {
  const isElement = (typeof HTMLImageElement !== 'undefined' && input instanceof HTMLImageElement) || (typeof HTMLCanvasElement !== 'undefined' && input instanceof HTMLCanvasElement);
  if (!isElement) return input;
  try {
    return await createImageBitmap(input as HTMLImageElement | HTMLCanvasElement, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (e) {
    return { clipIqaBrokenInput: `the image element cannot be read (${errorMessage(e)}); is it loaded, and from this origin (or CORS-enabled)?` };
  }
}

/** URLs resolved against the page, since the worker's own location is the bundle's folder. */
function resolveFiles(options: BrowserLoadOptions): BrowserLoadOptions {
  const resolve = (spec: FileSpec | undefined): FileSpec | undefined => (typeof spec === 'string' || spec instanceof URL ? absoluteUrl(spec) : spec);
  const model =
    options.model !== null && typeof options.model === 'object' && !isFileSpec(options.model)
      ? Object.fromEntries(Object.entries(options.model).map(([k, v]) => [k, resolve(v)!]))
      : resolve(options.model as FileSpec);
  const { onProgress: _, ...rest } = options;
  return { ...rest, model: model!, ...(options.vocab !== undefined ? { vocab: resolve(options.vocab) } : {}), ...(options.plus !== undefined ? { plus: resolve(options.plus) } : {}) };
}

/** CLIP-IQA over one loaded checkpoint, in the browser. Create with `ClipIqa.load`; release with `dispose`. */
export class ClipIqa {
  readonly name: string;
  /** Where the graphs run: `webgpu` or `wasm`. */
  readonly backend: 'webgpu' | 'wasm';
  /** WASM threads (1 unless the page is cross-origin isolated). */
  readonly threads: number;
  /** The model runs in a Web Worker. */
  readonly worker: boolean;
  readonly architecture: ClipArchitecture;
  readonly logitScale: number;
  /** A CLIP-IQA+ context is loaded (the `clipiqa+` score). */
  readonly plus: boolean;
  readonly #description: string;
  readonly #target: Target;

  private constructor(info: ModelInfo, target: Target, worker: boolean) {
    this.name = info.name;
    this.backend = info.backend;
    this.threads = info.threads;
    this.architecture = info.architecture;
    this.logitScale = info.logitScale;
    this.plus = info.plus;
    this.#description = info.description;
    this.#target = target;
    this.worker = worker;
  }

  static async load(options: BrowserLoadOptions): Promise<ClipIqa> {
    if (options === null || typeof options !== 'object') throw new ClipIqaError('E_OPTION', 'ClipIqa.load needs options: { model: URL | bytes | File, … }');
    if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw new ClipIqaError('E_OPTION', 'onProgress must be a function');
    const inWorker = (options.worker ?? true) && typeof Worker !== 'undefined';
    if (!inWorker) {
      const { LocalClipIqa } = await import('./local.js');
      const model = await LocalClipIqa.load(options);
      const info: ModelInfo = { name: model.name, backend: model.backend, threads: model.threads, architecture: model.architecture, logitScale: model.logitScale, description: model.describe(), plus: model.context !== undefined };
      return new ClipIqa(info, new LocalTarget(model), false);
    }
    const target = new WorkerTarget(new Worker(new URL('./clip-iqa-worker.js', import.meta.url), { type: 'module', name: 'clip-iqa' }));
    try {
      const { done } = target.send<ModelInfo>('load', [resolveFiles(options)], { progress: (p) => options.onProgress?.(p as never) });
      return new ClipIqa(await done, target, true);
    } catch (e) {
      target.terminate();
      throw e;
    }
  }

  /** e.g. "ResNet [3,4,6,3] width 64 @224, text 512×12, embed 1024". */
  describe(): string {
    return this.#description;
  }

  /** The attributes and pairs a call with these options reports, in order. */
  plan(options: ScoreOptions = {}): Promise<ScorePlan> {
    return this.#target.call('plan', [options]);
  }

  /** Scores one image. */
  async score(input: BrowserImageSource, options: ScoreOptions = {}): Promise<ImageScores> {
    return this.#target.call('score', await this.#args(input, options));
  }

  /** Scores many images, yielding each result in input order; a bad image yields a failure and the batch goes on. */
  scoreMany(inputs: Iterable<BrowserImageSource> | AsyncIterable<BrowserImageSource>, options: ScoreManyOptions = {}): AsyncGenerator<BatchResult> {
    return this.#target.many(inputs, options);
  }

  /** The image's CLIP features (embedDim floats, not normalised). */
  async embedImage(input: BrowserImageSource, options: { positional?: PositionalMode; decode?: DecodeOptions } = {}): Promise<Float32Array> {
    return this.#target.call('embedImage', await this.#args(input, options));
  }

  /** Text features of each text (embedDim floats each, not normalised). */
  embedText(texts: readonly string[]): Promise<Float32Array[]> {
    return this.#target.call('embedText', [texts]);
  }

  /** Per-region score maps of one image for attributes or prompt pairs (ResNet models). */
  async scoreMaps(input: BrowserImageSource, attributes: readonly string[] | string, options: Omit<ScoreOptions, 'maps' | 'attributes'> = {}): Promise<ScoreMap[]> {
    const [sendable, rest] = await this.#args(input, options);
    return this.#target.call('scoreMaps', [sendable, attributes, rest]);
  }

  /** Frees the sessions (and ends the worker). */
  async dispose(): Promise<void> {
    try {
      await this.#target.call('dispose', []);
    } finally {
      this.#target.terminate();
    }
  }

  /** The input as the worker can take it, and the options, naming an element's pixels as the element would be named. */
  async #args<O extends { decode?: DecodeOptions }>(input: BrowserImageSource, options: O): Promise<[BrowserImageSource, O]> {
    if (!this.worker) return [input, options];
    const name = options.decode?.name ?? (typeof HTMLImageElement !== 'undefined' && input instanceof HTMLImageElement ? input.currentSrc || input.src || '<img>' : undefined);
    const sendable = await handOver(input);
    if ('clipIqaBrokenInput' in sendable) throw new ClipIqaError('E_IMAGE', `${name ?? '<image>'}: ${sendable.clipIqaBrokenInput}`);
    return [sendable, name === undefined ? options : { ...options, decode: { ...options.decode, name } }];
  }
}
