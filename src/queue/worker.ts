/**
 * A worker: takes the jobs of one, several or every batch, scores each image with the batch's model (loaded once per
 * machine through the hub, shared by batches with the same settings) and stores its result. BullMQ does the rest:
 * a killed worker's jobs go back to the queue when their lock runs out (stalled-job recovery), transient failures
 * are retried with backoff, and `close` lets the jobs in hand finish first.
 */
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { ClipIqa } from '../api.js';
import { ClipIqaError, errorMessage, isClipIqaError } from '../errors.js';
import type { HubOptions } from '../hub/settings.js';
import type { RuntimeOptions } from '../runtime/options.js';
import type { QueueConnection } from './enqueue.js';
import { type BatchKeys, DEFAULT_PREFIX, batchKeys, batchesKey, checkBatchName, checkPrefix } from './keys.js';
import { connect, open } from './redis.js';
import { ScorePipeline } from './pipeline.js';
import { saveRow } from './rows.js';
import { type BatchSettings, decodeSettings, loadOptions, modelKey, scoreOptions } from './settings.js';

/** What a worker loaded for a batch, stored with it (the first worker's), for the results' `run` record. */
export interface ModelRecord {
  readonly name: string;
  readonly sha256: string | null;
  readonly architecture: string;
  readonly family: 'resnet' | 'vit';
  readonly maxPixels: number | false;
  readonly context: string | null;
  readonly positional: string;
  /** Score names, in the order stored results hold them. */
  readonly names: readonly string[];
  readonly plan: ReturnType<ClipIqa['plan']>;
}

export type WorkerEvent =
  | { readonly type: 'serving'; readonly batch: string; readonly model: string }
  | { readonly type: 'released'; readonly batch: string; readonly removed: boolean }
  | { readonly type: 'scored'; readonly batch: string; readonly file: string }
  | { readonly type: 'failed'; readonly batch: string; readonly file: string; readonly code: string; readonly message: string }
  | { readonly type: 'retry'; readonly batch: string; readonly file: string; readonly message: string }
  | { readonly type: 'error'; readonly batch?: string; readonly message: string };

export interface WorkerOptions extends QueueConnection {
  /** Batches to serve; default every batch under the prefix, as they are added. */
  readonly batches?: readonly string[];
  /** Images in hand at once, per batch: one runs the network while the others download and decode; default 4. */
  readonly concurrency?: number;
  /** onnxruntime settings of this machine (threads, device). */
  readonly runtime?: RuntimeOptions;
  /** This machine's model cache and download settings. */
  readonly hub?: HubOptions;
  /** A job whose worker stops answering for this long goes back to the queue; default 30 s. */
  readonly lockSeconds?: number;
  /** How often the worker looks for new and removed batches; default 2 s. */
  readonly scanSeconds?: number;
  readonly onEvent?: (event: WorkerEvent) => void;
}

export interface QueueWorker {
  /** Stops taking jobs, lets those in hand finish and store their results, then releases models and Redis. */
  close(): Promise<void>;
  /** Images scored and failed by this worker. */
  readonly counts: { readonly scored: number; readonly failed: number };
}

interface JobData {
  /** Absolute path or URL. */
  readonly s: string;
  /** Input number. */
  readonly n: number;
}

/** Failures that are the image's (or the batch's), not the moment's: retrying would fail again. */
const PERMANENT = new Set(['E_IMAGE', 'E_IMAGE_TOO_SMALL', 'E_TOO_LARGE', 'E_URL', 'E_NOT_FOUND', 'E_OPTION', 'E_PROMPT', 'E_CONTEXT']);

export function isPermanent(e: ClipIqaError): boolean {
  if (PERMANENT.has(e.code)) return true;
  // An upstream 4xx (but for timeouts and rate limits) will answer the same again.
  const status = /answered (4\d\d)\b/.exec(e.message)?.[1];
  return e.code === 'E_FETCH' && status !== undefined && status !== '408' && status !== '429';
}

interface Served {
  readonly worker: Worker<JobData>;
  readonly keys: BatchKeys;
}

export async function startWorker(options: WorkerOptions): Promise<QueueWorker> {
  const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
  const only = options.batches?.map(checkBatchName);
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
  const lockDuration = Math.max(1000, Math.round((options.lockSeconds ?? 30) * 1000));
  const scanMs = Math.max(100, Math.round((options.scanSeconds ?? 2) * 1000));
  const emit = options.onEvent ?? (() => undefined);
  // A Redis that is not there at the start is a mistake to report; later, an outage to ride out.
  (await open(options.redis, 'client')).disconnect();
  const redis: Redis = connect(options.redis, 'worker');
  redis.on('error', () => undefined);
  await redis.connect();

  const models = new Map<string, Promise<ClipIqa>>();
  const served = new Map<string, Served>();
  const starting = new Set<string>();
  const retryAt = new Map<string, number>();
  const counts = { scored: 0, failed: 0 };
  let closing = false;

  const model = (settings: BatchSettings): Promise<ClipIqa> => {
    const key = modelKey(settings);
    let loaded = models.get(key);
    if (!loaded) {
      loaded = ClipIqa.load({ ...loadOptions(settings), runtime: options.runtime, hub: options.hub });
      loaded.catch(() => models.delete(key));
      models.set(key, loaded);
    }
    return loaded;
  };

  async function serve(batch: string): Promise<void> {
    const keys = batchKeys(prefix, batch);
    const text = await redis.hget(keys.meta, 'settings');
    if (text === null) return; // not added yet, or removed
    const settings = decodeSettings(text);
    const iqa = await model(settings);
    const score = scoreOptions(settings);
    const plan = iqa.plan(score);
    const pipeline = new ScorePipeline(iqa, score, concurrency - 2);
    const names = [...plan.pairs.map((p) => p.name), ...(plan.ensemble ? ['ensemble'] : []), ...(plan.plus ? ['clipiqa+'] : [])];
    const record: ModelRecord = {
      name: iqa.name,
      sha256: iqa.modelSha256,
      architecture: iqa.describe(),
      family: iqa.architecture.vision.family,
      maxPixels: iqa.maxPixels,
      context: iqa.context?.source ?? null,
      positional: plan.positional,
      names,
      plan,
    };
    await redis.hsetnx(keys.meta, 'model', JSON.stringify(record));
    if (closing) return;

    const process = async (job: Job<JobData>): Promise<void> => {
      const { s: source, n: index } = job.data;
      const file = (await redis.lindex(keys.inputs, index)) ?? source;
      // A job run again after its worker died past storing the result: nothing to do.
      if ((await redis.hexists(keys.results, String(index))) === 1) return;
      let error: ClipIqaError;
      try {
        const r = await pipeline.score(source);
        // A job taken over from a worker thought dead (a lock not renewed in time) may have been scored there too:
        // the first result stored counts, and only its worker reports it.
        if (await saveRow(redis, keys, index, { width: r.width, height: r.height, scores: names.map((k) => r.scores[k]!) })) {
          counts.scored++;
          emit({ type: 'scored', batch, file });
        }
        return;
      } catch (e) {
        error = isClipIqaError(e) ? e : new ClipIqaError('E_RUNTIME', errorMessage(e), { cause: e });
      }
      // Messages name the input as it was added, not the absolute path the worker read.
      const message = source === file ? error.message : error.message.split(source).join(file);
      if (isPermanent(error) || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) {
        if (await saveRow(redis, keys, index, { code: error.code, message })) {
          counts.failed++;
          emit({ type: 'failed', batch, file, code: error.code, message });
        }
        throw new UnrecoverableError(`${error.code}: ${message}`);
      }
      emit({ type: 'retry', batch, file, message });
      throw error;
    };

    const worker = new Worker<JobData>(batch, process, {
      connection: redis,
      prefix,
      concurrency,
      lockDuration,
      stalledInterval: lockDuration,
      // A job whose worker died twice (or Redis restarted under it) is still the image's only chance of a result.
      maxStalledCount: 5,
    });
    worker.on('error', (e) => emit({ type: 'error', batch, message: errorMessage(e) }));
    // A job given up by BullMQ itself (stalled too often) still gets its row, so that the batch can end.
    worker.on('failed', (job, e) => {
      if (!job || !/stalled/i.test(e.message)) return;
      void saveRow(redis, keys, (job.data as JobData).n, { code: 'E_QUEUE', message: `${job.data.s}: ${e.message}` }).catch(() => undefined);
    });
    served.set(batch, { worker, keys });
    emit({ type: 'serving', batch, model: iqa.name });
  }

  async function release(batch: string, removed = false): Promise<void> {
    const s = served.get(batch);
    if (!s) return;
    served.delete(batch);
    await s.worker.close();
    emit({ type: 'released', batch, removed });
  }

  async function scan(): Promise<void> {
    const wanted = only ?? (await redis.smembers(batchesKey(prefix)));
    const present = new Set<string>();
    for (const batch of wanted) if ((await redis.hexists(batchKeys(prefix, batch).meta, 'settings')) === 1) present.add(batch);
    for (const batch of served.keys()) if (!present.has(batch)) await release(batch, true);
    for (const batch of present) {
      if (served.has(batch) || starting.has(batch) || (retryAt.get(batch) ?? 0) > Date.now() || closing) continue;
      starting.add(batch);
      try {
        await serve(batch);
        retryAt.delete(batch);
      } catch (e) {
        // A model that cannot be loaded here (offline, no cache, bad path) is tried again later; jobs wait.
        emit({ type: 'error', batch, message: `cannot serve batch ${batch}: ${errorMessage(e)} (trying again in 30 s)` });
        retryAt.set(batch, Date.now() + 30_000);
      } finally {
        starting.delete(batch);
      }
    }
  }

  let scanning: Promise<void> = scan().catch((e: unknown) => emit({ type: 'error', message: errorMessage(e) }));
  await scanning;
  const timer = setInterval(() => {
    scanning = scanning.then(scan).catch((e: unknown) => emit({ type: 'error', message: errorMessage(e) }));
  }, scanMs);

  return {
    counts,
    async close() {
      if (closing) return;
      closing = true;
      clearInterval(timer);
      await scanning;
      await Promise.all([...served.keys()].map((b) => release(b)));
      await Promise.all([...models.values()].map((m) => m.then((iqa) => iqa.dispose(), () => undefined)));
      redis.disconnect();
    },
  };
}
