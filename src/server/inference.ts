/**
 * The model's life in the server: loaded once (after the server listens, so /healthz answers and /readyz says
 * "loading"), warmed up so that the first real request does not pay for building onnxruntime sessions, then
 * shared by every request through one bounded queue; disposed of when the server closes, after the queue drained.
 *
 * The queue bounds the work (429 beyond it); the engine behind it is, by default, a model process holding the model
 * (pool.ts), because onnxruntime-node's `session.run` holds the calling thread for the whole inference: with the
 * model on the main thread, RN50 stalled the event loop by 265 ms (p99) under load, against 15 ms from a worker, at
 * the same throughput. The README's "Serving" section has the measurements.
 *
 * Each request has a deadline (`timeoutMs` once received): then it is answered 503, its waiting images leave the
 * queue and its running ones are stopped (the pool kills the model process that runs them and starts another).
 * A model process that dies fails the images it held with 503 and is replaced; /metrics counts the restarts.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import fp from 'fastify-plugin';
import { errorMessage } from '../errors.js';
import { availableMemory } from '../model/memory.js';
import { HttpError } from './errors.js';
import { DEFAULTS, type Engine, type Settings, type TaskControl } from './options.js';
import { createPoolEngine } from './pool.js';
import { InferenceQueue, QueueFullError } from './queue.js';
import { warmUp } from './warmup.js';

export type ModelState = 'loading' | 'ready' | 'failed' | 'closing';

export interface ModelService {
  readonly settings: Settings;
  readonly queue: InferenceQueue;
  readonly state: ModelState;
  /** Why loading failed, when it did. */
  readonly failure: Error | undefined;
  /** The loaded model; throws 503 while there is none. */
  readonly engine: Engine;
  /** Loaded, warm, able to take work, and not shutting down. */
  readonly ready: boolean;
  /** Most memory one image may take (maxImageMemory, or what the memory available after loading allows); 0 until loaded. */
  readonly imageMemory: number;
  /** The 503 that says why the server is not ready. */
  notReady(): HttpError;
  /** Loads and warms the model (once; later calls wait for the first). */
  load(): Promise<Engine>;
  /** Stops taking inference requests (readiness turns 503); in-flight ones finish. */
  beginClosing(): void;
  /**
   * Runs one task per image through the queue, each given the engine and the request's deadline; settles when all
   * have, or throws: 429 when they do not fit, 503 when the server's timeout passes first (running tasks are then
   * stopped). A client that disconnects drops its waiting tasks; running ones finish.
   */
  run<T>(reply: FastifyReply, tasks: readonly ((engine: Engine, control: TaskControl) => Promise<T>)[]): Promise<PromiseSettledResult<T>[]>;
}

declare module 'fastify' {
  interface FastifyInstance {
    clip: ModelService;
  }
  interface FastifyContextConfig {
    /** The route uses the model: refused once shutdown began. */
    model?: boolean;
    /** The route queues inference: refused at once (429) while the queue is full. */
    queued?: boolean;
  }
}

class TimeoutReason extends Error {}
class GoneReason extends Error {}

export const inferencePlugin = fp<{ settings: Settings }>(
  async (app: FastifyInstance, { settings }) => {
    const metrics = app.metrics;
    const queue = new InferenceQueue(
      { concurrency: settings.concurrency, capacity: settings.queue },
      {
        onChange: (waiting, running) => {
          metrics.queueWaiting.set(waiting);
          metrics.queueRunning.set(running);
        },
        onDone: (seconds, ok) => metrics.inference.observe({ outcome: ok ? 'ok' : 'error' }, seconds),
      },
    );
    metrics.queueCapacity.set(settings.queue);
    metrics.ready.set(0);

    let state: ModelState = 'loading';
    let engine: Engine | undefined;
    let imageMemory = 0;
    let failure: Error | undefined;
    let loading: Promise<Engine> | undefined;

    const busy = (e: QueueFullError): HttpError => {
      metrics.rejected.inc({ reason: 'full' });
      return new HttpError(429, 'E_BUSY', e.message, { 'retry-after': String(e.retryAfter) });
    };

    const notReady = (): HttpError => {
      if (state === 'closing') return new HttpError(503, 'E_NOT_READY', 'the server is shutting down; retry on another instance', { connection: 'close' });
      if (state === 'failed') return new HttpError(503, 'E_NOT_READY', `the model failed to load: ${failure?.message ?? 'unknown error'}`);
      if (state === 'ready') return new HttpError(503, 'E_NOT_READY', 'the model process is restarting; retry shortly', { 'retry-after': '5' });
      return new HttpError(503, 'E_NOT_READY', 'the model is still loading; retry shortly', { 'retry-after': '5' });
    };

    const service: ModelService = {
      settings,
      queue,
      get state() {
        return state;
      },
      get failure() {
        return failure;
      },
      get engine(): Engine {
        // Requests that arrived before shutdown began are still served (the hook below turns new ones away).
        if ((state !== 'ready' && state !== 'closing') || !engine) throw notReady();
        return engine;
      },
      get ready() {
        return state === 'ready' && engine?.available?.() !== false;
      },
      get imageMemory() {
        return imageMemory;
      },
      notReady,
      load() {
        loading ??= (async () => {
          const started = performance.now();
          try {
            engine = settings.engine
              ? await settings.engine()
              : await createPoolEngine(settings, {
                  onRestart: (reason) => {
                    metrics.workerRestarts.inc({ reason });
                    app.log.warn({ reason }, 'a model process ended; starting another');
                  },
                });
            await (engine.warmUp ? engine.warmUp() : warmUp(engine));
          } catch (e) {
            failure = e instanceof Error ? e : new Error(errorMessage(e));
            state = 'failed';
            // A model that loaded but failed its warm-up still holds sessions or worker threads; onClose only
            // disposes of what `loading` resolved to.
            await engine?.dispose().catch(() => undefined);
            engine = undefined;
            throw failure;
          }
          // Sized once the weights are in memory: what is left then is what images can use.
          imageMemory = settings.maxImageMemory ?? Math.floor((availableMemory() * DEFAULTS.imageMemoryShare) / settings.workers);
          metrics.imageMemory.set(imageMemory);
          if (state === 'loading') state = 'ready';
          metrics.ready.set(state === 'ready' ? 1 : 0);
          metrics.modelInfo.set({ model: engine.name, family: engine.architecture.vision.family }, 1);
          app.log.info({ model: engine.name, architecture: engine.describe(), seconds: Math.round(performance.now() - started) / 1000 }, 'model ready');
          return engine;
        })();
        return loading;
      },
      beginClosing() {
        state = 'closing';
        metrics.ready.set(0);
      },
      async run<T>(reply: FastifyReply, tasks: readonly ((engine: Engine, control: TaskControl) => Promise<T>)[]) {
        const model = service.engine;
        const controller = new AbortController();
        // Only the deadline stops running work (a departed client's running images finish: stopping them costs a
        // model process).
        const deadline = new AbortController();
        const gone = () => {
          if (!reply.raw.writableFinished) controller.abort(new GoneReason('the client disconnected'));
        };
        reply.raw.once('close', gone);
        let promises: Promise<T>[];
        try {
          promises = queue.submit(
            tasks.map((task) => () => task(model, { signal: deadline.signal })),
            controller.signal,
          );
        } catch (e) {
          reply.raw.off('close', gone);
          throw e instanceof QueueFullError ? busy(e) : e;
        }
        const timer = setTimeout(() => {
          const reason = new TimeoutReason(`no answer within ${settings.timeoutMs / 1000} s`);
          controller.abort(reason);
          deadline.abort(reason);
        }, settings.timeoutMs);
        const settled = Promise.allSettled(promises);
        const aborted = new Promise<void>((resolve) => controller.signal.addEventListener('abort', () => resolve(), { once: true }));
        try {
          await Promise.race([settled, aborted]);
        } finally {
          clearTimeout(timer);
          reply.raw.off('close', gone);
        }
        const reason: unknown = controller.signal.reason;
        if (reason instanceof TimeoutReason) {
          metrics.rejected.inc({ reason: 'timeout' });
          throw new HttpError(503, 'E_TIMEOUT', `the server could not score this request in time (${reason.message}); it is overloaded, retry later`, {
            'retry-after': String(queue.retryAfter()),
          });
        }
        if (reason instanceof GoneReason) {
          metrics.rejected.inc({ reason: 'gone' });
          // Nobody is listening; the status is for the log.
          throw new HttpError(499, 'E_BAD_REQUEST', reason.message);
        }
        return settled;
      },
    };
    app.decorate('clip', service);

    app.addHook('onRequest', async (request) => {
      const { config } = request.routeOptions;
      // Once shutdown began, new requests for the model are turned away (on connections kept alive from before).
      if (state === 'closing' && config.model === true) {
        metrics.rejected.inc({ reason: 'closing' });
        throw notReady();
      }
      // A full queue refuses before the upload is read: parsing megabytes only to refuse them would slow the
      // server down exactly when it is overloaded. (Node discards the unread body; the connection stays usable.)
      if (config.queued === true && queue.full) throw busy(new QueueFullError(queue.retryAfter(), queue.waiting, queue.capacity));
    });

    // Keep-alive connections would otherwise hold the process open after the last in-flight answer.
    app.addHook('onSend', async (_request, reply: FastifyReply, payload: unknown) => {
      if (state === 'closing') reply.header('connection', 'close');
      return payload;
    });

    app.addHook('onClose', async () => {
      state = 'closing';
      metrics.ready.set(0);
      await queue.drain();
      // A load still under way is waited for, so that its sessions are released too.
      const loaded = await loading?.catch(() => undefined);
      await loaded?.dispose();
    });
  },
  { name: 'clip-iqa-inference', dependencies: ['clip-iqa-metrics'] },
);
