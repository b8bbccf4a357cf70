/**
 * The bounded queue in front of the model. onnxruntime already spreads one inference over every core, so running
 * more inferences at once only makes them share the cores (and multiplies activation memory); the queue keeps
 * `concurrency` tasks running — enough to overlap one image's decoding with another's inference — and at most
 * `capacity` waiting. Beyond that a request is refused at once (429) instead of waiting for minutes: a client that
 * is told when to come back can spread its load, one that times out cannot.
 *
 * Units are images: a request with five uploads takes five places, all or none, so a batch never half-runs.
 */

export interface QueueOptions {
  /** Tasks running at once. */
  readonly concurrency: number;
  /** Tasks waiting, at most (running ones not counted). */
  readonly capacity: number;
}

export interface QueueEvents {
  /** After every change of the counts (for gauges). */
  onChange?(waiting: number, running: number): void;
  /** After each task, with its running time (not its wait). */
  onDone?(seconds: number, ok: boolean): void;
}

/** Thrown by `submit` when the tasks do not fit; `retryAfter` is in whole seconds. */
export class QueueFullError extends Error {
  readonly retryAfter: number;
  constructor(retryAfter: number, waiting: number, capacity: number) {
    super(`the server is busy (${waiting} images waiting, room for ${capacity}); retry in ${retryAfter} s`);
    this.name = 'QueueFullError';
    this.retryAfter = retryAfter;
  }
}

/** The reason a waiting task was dropped: the caller's signal was aborted (deadline, client gone, shutdown). */
export class TaskCancelledError extends Error {
  constructor(reason: unknown) {
    super(reason instanceof Error ? reason.message : 'the task was cancelled before it started', { cause: reason });
    this.name = 'TaskCancelledError';
  }
}

interface Waiting {
  readonly run: () => Promise<unknown>;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
}

/** First guess of a task's duration before any has finished, for Retry-After. */
const INITIAL_ESTIMATE_S = 1;
const MAX_RETRY_AFTER_S = 120;

export class InferenceQueue {
  readonly concurrency: number;
  readonly capacity: number;
  readonly #events: QueueEvents;
  readonly #waiting: Waiting[] = [];
  #running = 0;
  #estimate = INITIAL_ESTIMATE_S;
  #finished = 0;
  #idle: (() => void)[] = [];

  constructor(options: QueueOptions, events: QueueEvents = {}) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${options.concurrency}`);
    if (!Number.isInteger(options.capacity) || options.capacity < 0) throw new RangeError(`capacity must be a whole number, got ${options.capacity}`);
    this.concurrency = options.concurrency;
    this.capacity = options.capacity;
    this.#events = events;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  get running(): number {
    return this.#running;
  }

  /** No room for even one more image: every lane busy and the waiting room full. */
  get full(): boolean {
    return this.#running >= this.concurrency && this.#waiting.length >= this.capacity;
  }

  /** Seconds until the queue has likely drained enough for a new request: the work ahead over the lanes. */
  retryAfter(): number {
    const ahead = this.#waiting.length + this.#running;
    return Math.min(MAX_RETRY_AFTER_S, Math.max(1, Math.ceil((ahead / this.concurrency) * this.#estimate)));
  }

  /**
   * Queues `tasks` in order and returns their results' promises, or throws QueueFullError when they do not all
   * fit. An idle queue takes any number: a request larger than the capacity must not be refused forever.
   * Aborting `signal` drops the tasks that have not started (their promises reject with TaskCancelledError);
   * started ones run to the end, since onnxruntime cannot stop a run midway.
   */
  submit<T>(tasks: readonly (() => Promise<T>)[], signal?: AbortSignal): Promise<T>[] {
    const free = Math.max(0, this.concurrency - this.#running);
    const idle = this.#waiting.length === 0 && this.#running === 0;
    if (!idle && this.#waiting.length + tasks.length > this.capacity + free) {
      throw new QueueFullError(this.retryAfter(), this.#waiting.length, this.capacity);
    }
    if (signal?.aborted) return tasks.map(() => Promise.reject(new TaskCancelledError(signal.reason)));
    const entries: Waiting[] = [];
    const promises = tasks.map(
      (run) =>
        new Promise<T>((resolve, reject) => {
          const entry: Waiting = { run, resolve: resolve as (v: unknown) => void, reject };
          entries.push(entry);
          this.#waiting.push(entry);
        }),
    );
    if (signal) {
      const cancel = () => {
        let dropped = false;
        for (const entry of entries) {
          const i = this.#waiting.indexOf(entry);
          if (i < 0) continue;
          this.#waiting.splice(i, 1);
          entry.reject(new TaskCancelledError(signal.reason));
          dropped = true;
        }
        if (dropped) this.#changed();
      };
      signal.addEventListener('abort', cancel, { once: true });
      // Forget the listener once every task has settled, so long-lived signals do not pile them up.
      void Promise.allSettled(promises).then(() => signal.removeEventListener('abort', cancel));
    }
    this.#pump();
    return promises;
  }

  /** Resolves when nothing waits and nothing runs (graceful shutdown). */
  drain(): Promise<void> {
    if (this.#waiting.length === 0 && this.#running === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    while (this.#running < this.concurrency && this.#waiting.length > 0) {
      const entry = this.#waiting.shift()!;
      this.#running++;
      const started = performance.now();
      // The task starts on a later tick: a synchronous throw becomes a rejection like any other failure.
      void Promise.resolve()
        .then(entry.run)
        .then(
          (v) => this.#settle(started, true, () => entry.resolve(v)),
          (e: unknown) => this.#settle(started, false, () => entry.reject(e)),
        );
    }
    this.#changed();
  }

  #settle(started: number, ok: boolean, report: () => void): void {
    const seconds = (performance.now() - started) / 1000;
    // A moving average over roughly the last ten tasks: recent enough to follow a change of image sizes. The
    // first task's weight is 1, so its time replaces the initial guess.
    this.#finished++;
    const weight = Math.max(0.1, 1 / this.#finished);
    this.#estimate = this.#estimate * (1 - weight) + seconds * weight;
    this.#running--;
    this.#events.onDone?.(seconds, ok);
    report();
    this.#pump();
    if (this.#waiting.length === 0 && this.#running === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  #changed(): void {
    this.#events.onChange?.(this.#waiting.length, this.#running);
  }
}
