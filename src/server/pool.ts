/**
 * The server's default Engine: worker threads (piscina), each holding the model. onnxruntime-node runs
 * `session.run` synchronously on the calling thread, so a model on the main thread stops the event loop for every
 * inference (health checks, uploads and /metrics wait behind it); in a worker the main thread only does HTTP.
 *
 * One worker with every core (the default) answers a lone request fastest and holds one copy of the weights; two
 * workers of one thread each score about 20-30% more images per second when saturated, at twice the memory and
 * about 1.7× the latency of a lone request (README, "Serving").
 *
 * Files are fetched (with the CLI's progress bar) on the main thread first, so that workers load from the cache and
 * never download; planning (prompts, options, which model family) stays on the main thread too, so that a bad option
 * is refused before it takes a place in the queue.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { type ClipIqaOptions, type ImageScores, type ScoreOptions, planScore, resolveModelFiles } from '../api.js';
import { ClipIqaError, type ErrorCode } from '../errors.js';
import type { DecodeOptions, ImageSource } from '../image/decode.js';
import type { PositionalMode, RawImage } from '../model/types.js';
import { StateDict } from '../weights/state-dict.js';
import type { Engine, Settings } from './options.js';
import { PACKAGE } from '../util/package.js';
import type { WorkerInfo, WorkerReply, WorkerTask } from './worker.js';

/** The worker's compiled module: beside this one, or under dist/ when this runs from TypeScript sources (tests). */
function workerFile(): string {
  const here = new URL('./worker.js', import.meta.url);
  if (import.meta.url.endsWith('.js') && existsSync(here)) return here.href;
  const built = join(PACKAGE.root, 'dist', 'server', 'worker.js');
  if (!existsSync(built)) throw new Error(`the server's worker ${built} is missing: build the package first (npm run build)`);
  return built;
}

/**
 * Options a worker can receive: no functions (progress callback, logger) and no AbortSignal, which workerData's
 * structured clone refuses; the cache already filled.
 */
async function workerOptions(model: ClipIqaOptions): Promise<ClipIqaOptions> {
  if (model.model instanceof StateDict) {
    throw new ClipIqaError('E_OPTION', 'the server loads its model in worker threads: give the model as a file, a registry name, a URL or bytes, not a StateDict');
  }
  const hub = model.hub ?? {};
  await resolveModelFiles(model);
  const { onProgress: _progress, log: _log, signal: _signal, ...plainHub } = hub;
  return { ...model, hub: { ...plainHub, offline: true, quiet: true } };
}

/** Pixels are cloned; bytes are copied once and moved (a Buffer may share a pooled ArrayBuffer, which must not move). */
function transferable(input: ImageSource): { input: Uint8Array | RawImage; transferList?: ArrayBuffer[] } {
  if (typeof input === 'string') throw new ClipIqaError('E_OPTION', 'the server scores bytes or pixels, not server-side paths');
  if (input instanceof Uint8Array) {
    const copy = Uint8Array.from(input);
    return { input: copy, transferList: [copy.buffer] };
  }
  return { input };
}

export async function createPoolEngine(settings: Settings): Promise<Engine> {
  const options = await workerOptions(settings.model);
  const pool = new Piscina({
    filename: workerFile(),
    minThreads: settings.workers,
    maxThreads: settings.workers,
    // Two tasks per worker: one decodes (libvips, on libuv's pool) while the other holds the thread in onnxruntime.
    concurrentTasksPerWorker: Math.max(1, Math.ceil(settings.concurrency / settings.workers)),
    idleTimeout: Number.POSITIVE_INFINITY,
    workerData: options,
  });
  const call = async <T>(task: WorkerTask, transferList?: ArrayBuffer[]): Promise<T> => {
    const reply = (await pool.run(task, transferList ? { transferList } : {})) as WorkerReply;
    if (!reply.ok) throw new ClipIqaError(reply.code as ErrorCode, reply.message);
    return reply.value as T;
  };
  let info: WorkerInfo;
  try {
    // One call per worker: each answers once its model is loaded and warm; a worker that fails to load rejects.
    const infos = await Promise.all(Array.from({ length: settings.workers }, () => call<WorkerInfo>({ op: 'info' })));
    info = infos[0]!;
  } catch (e) {
    await pool.destroy();
    throw e;
  }
  const planModel = {
    family: info.architecture.vision.family,
    plus: info.context !== undefined,
    noisiness: settings.noisiness,
    positional: settings.positional,
  };
  return {
    name: info.name,
    architecture: info.architecture,
    logitScale: info.logitScale,
    context: info.context,
    describe: () => info.description,
    plan: (o: ScoreOptions = {}) => planScore(o, planModel),
    // The workers warmed themselves before answering `info`.
    warmUp: async () => undefined,
    score(input: ImageSource, o: ScoreOptions = {}): Promise<ImageScores> {
      const { input: data, transferList } = transferable(input);
      return call({ op: 'score', input: data, options: o }, transferList);
    },
    embedImage(input: ImageSource, o: { positional?: PositionalMode; decode?: DecodeOptions } = {}): Promise<Float32Array> {
      const { input: data, transferList } = transferable(input);
      return call({ op: 'embedImage', input: data, positional: o.positional, decode: o.decode }, transferList);
    },
    embedText: (texts: readonly string[]) => call({ op: 'embedText', texts }),
    dispose: () => pool.destroy(),
  };
}
