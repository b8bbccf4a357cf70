/**
 * The server's default Engine: model processes (worker.ts), each holding the model, fed over IPC. onnxruntime-node
 * runs `session.run` synchronously on the calling thread, so the model must not live on the event loop's thread
 * (health checks, uploads and /metrics would wait behind every inference); and it lives in child processes rather
 * than worker threads because only a process can be stopped in the middle of a run:
 *
 * - a deadline: a request whose answer is late has its running images stopped (the process is killed and
 *   replaced), instead of holding the cores for minutes after its client was told 503;
 * - a worker thread terminated during a run aborts the whole server ("terminate called after throwing an instance
 *   of 'Napi::Error'"), measured with onnxruntime-node 1.30; a process is simply killed;
 * - running out of memory: the kernel's OOM killer ends a whole process, all its threads with it. Model processes
 *   volunteer (oom_score_adj 1000), so the server survives them, answers their requests 503 and starts new ones.
 *
 * One process with every core (the default) answers a lone request fastest and holds one copy of the weights; two
 * processes of one thread each score about 20-30% more images per second when saturated, at twice the memory and
 * about 1.7× the latency of a lone request (README, "Serving").
 *
 * Files are fetched (with the CLI's progress bar) here first, so that model processes load from the cache and never
 * download; planning (prompts, options, which model family) stays here too, so that a bad option is refused before
 * it takes a place in the queue.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ClipIqaOptions, type ImageScores, type ScoreOptions, planScore, resolveModelFiles } from '../api.js';
import { ClipIqaError, type ErrorCode } from '../errors.js';
import type { DecodeOptions, ImageSource } from '../image/decode.js';
import type { PositionalMode, RawImage } from '../model/types.js';
import { PACKAGE } from '../util/package.js';
import { StateDict } from '../weights/state-dict.js';
import { HttpError } from './errors.js';
import type { Engine, Settings, TaskControl } from './options.js';
import type { FromWorker, ToWorker, WorkerInfo, WorkerReply, WorkerTask } from './worker.js';

/** Why a model process ended while the server ran: its deadline (we killed it), a signal from elsewhere, or itself. */
export type RestartReason = 'timeout' | 'killed' | 'crashed';

export interface PoolEvents {
  /** A model process ended and is being replaced. */
  onRestart?(reason: RestartReason): void;
}

export interface PoolEngine extends Engine {
  /** The model processes' ids (for operators, and tests that stop one). */
  pids(): number[];
}

/** Longest wait for a model process to exit when the server closes, before it is killed. */
const EXIT_GRACE_MS = 5000;
/** Longest pause between attempts to start a model process that keeps failing to load. */
const MAX_BACKOFF_MS = 30_000;

/** The model process's compiled module: beside this one, or under dist/ when this runs from TypeScript sources (tests). */
function workerFile(): string {
  const here = fileURLToPath(new URL('./worker.js', import.meta.url));
  if (import.meta.url.endsWith('.js') && existsSync(here)) return here;
  const built = join(PACKAGE.root, 'dist', 'server', 'worker.js');
  if (!existsSync(built)) throw new Error(`the server's model process ${built} is missing: build the package first (npm run build)`);
  return built;
}

/**
 * Options a model process can receive: no functions (progress callback, logger) and no AbortSignal, which the
 * IPC channel's structured clone refuses; the cache already filled.
 */
async function workerOptions(model: ClipIqaOptions): Promise<ClipIqaOptions> {
  if (model.model instanceof StateDict) {
    throw new ClipIqaError('E_OPTION', 'the server loads its model in model processes: give the model as a file, a registry name, a URL or bytes, not a StateDict');
  }
  const hub = model.hub ?? {};
  await resolveModelFiles(model);
  const { onProgress: _progress, log: _log, signal: _signal, ...plainHub } = hub;
  return { ...model, hub: { ...plainHub, offline: true, quiet: true } };
}

function plainInput(input: ImageSource): Uint8Array | RawImage {
  if (typeof input === 'string') throw new ClipIqaError('E_OPTION', 'the server scores bytes or pixels, not server-side paths');
  return input;
}

interface Job {
  readonly id: number;
  readonly task: WorkerTask;
  readonly resolve: (reply: WorkerReply) => void;
  readonly reject: (e: unknown) => void;
  /** Forgets the job's abort listener. */
  readonly done: () => void;
  process?: ModelProcess;
}

interface ModelProcess {
  readonly child: ChildProcess;
  readonly jobs: Map<number, Job>;
  info?: WorkerInfo;
  /** Set when the pool killed it at a job's deadline. */
  killed?: boolean;
}

/** A fixed number of model processes, each taking up to `perProcess` jobs at once; dead ones are replaced. */
class ProcessPool {
  readonly #file: string;
  readonly #options: ClipIqaOptions;
  readonly #perProcess: number;
  readonly #events: PoolEvents;
  readonly #slots: (ModelProcess | undefined)[];
  readonly #waiting: Job[] = [];
  #nextId = 1;
  #closing = false;
  /** Starts in a row that failed before the process was ready (backoff). */
  #failedStarts = 0;
  #started: ((outcome: WorkerInfo | Error) => void) | undefined;

  constructor(file: string, options: ClipIqaOptions, processes: number, perProcess: number, events: PoolEvents) {
    this.#file = file;
    this.#options = options;
    this.#perProcess = perProcess;
    this.#events = events;
    this.#slots = Array.from({ length: processes }, () => undefined);
  }

  /** Starts every process; resolves with the model's description once all are ready, rejects if one fails. */
  async start(): Promise<WorkerInfo> {
    let remaining = this.#slots.length;
    let first: WorkerInfo | undefined;
    const outcome = new Promise<WorkerInfo>((resolve, reject) => {
      this.#started = (o) => {
        if (o instanceof Error) return reject(o);
        first ??= o;
        if (--remaining === 0) resolve(first);
      };
    });
    for (let i = 0; i < this.#slots.length; i++) this.#spawn(i);
    try {
      return await outcome;
    } catch (e) {
      await this.close();
      throw e;
    } finally {
      this.#started = undefined;
    }
  }

  get available(): boolean {
    return this.#slots.some((p) => p?.info !== undefined);
  }

  pids(): number[] {
    return this.#slots.flatMap((p) => (p?.child.pid === undefined ? [] : [p.child.pid]));
  }

  /** Runs a task on the first process with room; aborting `signal` drops it if waiting and kills its process if running. */
  run(task: WorkerTask, signal?: AbortSignal): Promise<WorkerReply> {
    if (this.#closing) return Promise.reject(new HttpError(503, 'E_NOT_READY', 'the server is shutting down'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<WorkerReply>((resolve, reject) => {
      const onAbort = () => {
        const running = job.process;
        if (running) {
          running.jobs.delete(job.id);
          this.#kill(running);
        } else {
          const i = this.#waiting.indexOf(job);
          if (i >= 0) this.#waiting.splice(i, 1);
        }
        reject(signal!.reason);
      };
      const job: Job = { id: this.#nextId++, task, resolve, reject, done: () => signal?.removeEventListener('abort', onAbort) };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(job);
      this.#dispatch();
    });
  }

  async close(): Promise<void> {
    this.#closing = true;
    for (const job of this.#waiting.splice(0)) {
      job.done();
      job.reject(new HttpError(503, 'E_NOT_READY', 'the server is shutting down'));
    }
    await Promise.all(
      this.#slots.map(async (p) => {
        if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
        const exited = new Promise((resolve) => p.child.once('exit', resolve));
        // A process waits for its IPC channel to close, then exits; one still inside a run gets the grace period.
        if (p.child.connected) p.child.disconnect();
        const timer = setTimeout(() => p.child.kill('SIGKILL'), EXIT_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  #spawn(slot: number): void {
    const child = fork(this.#file, [], {
      serialization: 'advanced', // typed arrays (images, features) cross as bytes, not JSON
      execArgv: [], // not the server's own flags (a test runner's loader, --inspect)
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const p: ModelProcess = { child, jobs: new Map() };
    this.#slots[slot] = p;
    child.on('message', (m: FromWorker) => this.#message(p, m));
    // Failures to send or spawn end in 'exit' (or never start it); the exit handler does the clean-up.
    child.on('error', () => undefined);
    child.once('exit', (code, signal) => this.#exited(slot, p, code, signal));
    child.send({ type: 'load', options: this.#options } satisfies ToWorker);
  }

  #message(p: ModelProcess, m: FromWorker): void {
    switch (m.type) {
      case 'ready':
        p.info = m.info;
        this.#failedStarts = 0;
        this.#started?.(m.info);
        this.#dispatch();
        return;
      case 'failed':
        this.#started?.(new ClipIqaError(m.code as ErrorCode, m.message));
        return;
      case 'reply': {
        const job = p.jobs.get(m.id);
        if (!job) return; // abandoned at its deadline
        p.jobs.delete(m.id);
        job.done();
        job.resolve(m.reply);
        this.#dispatch();
        return;
      }
    }
  }

  #dispatch(): void {
    while (this.#waiting.length > 0) {
      let best: ModelProcess | undefined;
      for (const p of this.#slots) {
        if (p?.info && !p.killed && p.jobs.size < this.#perProcess && (!best || p.jobs.size < best.jobs.size)) best = p;
      }
      if (!best) return;
      const job = this.#waiting.shift()!;
      job.process = best;
      best.jobs.set(job.id, job);
      best.child.send({ type: 'task', id: job.id, task: job.task } satisfies ToWorker, () => undefined);
    }
  }

  #kill(p: ModelProcess): void {
    p.killed = true;
    p.child.kill('SIGKILL');
  }

  #exited(slot: number, p: ModelProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#slots[slot] === p) this.#slots[slot] = undefined;
    const how = p.killed ? 'was stopped at a request’s deadline' : signal ? `was killed (${signal}; out of memory?)` : `exited with status ${code}`;
    for (const job of p.jobs.values()) {
      job.done();
      job.reject(new HttpError(503, 'E_WORKER', `the model process ${how} while scoring this image; it is being restarted, retry shortly`, { 'retry-after': '5' }));
    }
    p.jobs.clear();
    if (this.#closing) return;
    if (!p.info) {
      // It never got ready: at start-up that fails the server's load; later, it is retried with a growing pause.
      if (this.#started) return this.#started(new ClipIqaError('E_RUNTIME', `the model process ${how} while loading the model`));
      this.#failedStarts++;
    } else {
      this.#events.onRestart?.(p.killed ? 'timeout' : signal ? 'killed' : 'crashed');
    }
    const delay = this.#failedStarts === 0 ? 0 : Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (this.#failedStarts - 1));
    setTimeout(() => {
      if (!this.#closing && this.#slots[slot] === undefined) this.#spawn(slot);
    }, delay).unref();
  }
}

export async function createPoolEngine(settings: Settings, events: PoolEvents = {}): Promise<PoolEngine> {
  const options = await workerOptions(settings.model);
  const pool = new ProcessPool(workerFile(), options, settings.workers, Math.max(1, Math.ceil(settings.concurrency / settings.workers)), events);
  // Each process answers once its model is loaded and warm; one that fails to load fails the start.
  const info = await pool.start();
  const call = async <T>(task: WorkerTask, control: TaskControl = {}): Promise<T> => {
    const reply = await pool.run(task, control.signal);
    if (!reply.ok) throw new ClipIqaError(reply.code as ErrorCode, reply.message);
    return reply.value as T;
  };
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
    // The processes warmed themselves up before they said they were ready.
    warmUp: async () => undefined,
    available: () => pool.available,
    pids: () => pool.pids(),
    score: (input: ImageSource, o: ScoreOptions = {}, control?: TaskControl): Promise<ImageScores> =>
      call({ op: 'score', input: plainInput(input), options: o }, control),
    embedImage: (input: ImageSource, o: { positional?: PositionalMode; decode?: DecodeOptions } = {}, control?: TaskControl): Promise<Float32Array> =>
      call({ op: 'embedImage', input: plainInput(input), positional: o.positional, decode: o.decode }, control),
    embedText: (texts: readonly string[], control?: TaskControl) => call({ op: 'embedText', texts }, control),
    dispose: () => pool.close(),
  };
}
