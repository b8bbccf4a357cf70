/**
 * Request bodies held in memory, bounded twice:
 *
 * - in bytes, server-wide: every upload chunk, raw body chunk and `url=` download is counted against one budget
 *   (`maxInFlightBytes`) before it is buffered, and given back when its response has gone. Without it, 32 clients ×
 *   16 files × 20 MiB held 8.6 GB. A request that announces more than could ever fit is refused at once (413), one
 *   that does not fit now before it is read (429 with Retry-After), one that outgrows the room while arriving as
 *   soon as it does (429, connection closed);
 * - in time, per request: its body must have arrived `timeoutMs` after its headers did, or it is answered 408 and
 *   the connection closed. Node's own request timeout is checked only every few seconds and answers without the
 *   API's error shape; this one is exact, and a body dripped a byte at a time cannot hold a place for a minute.
 *
 * Multipart bodies are read by inputs.ts (busboy reads the request itself); raw image and JSON bodies pass through
 * the stream installed here (preParsing) on their way to fastify's parsers.
 */
import { Transform, type TransformCallback, pipeline } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { HttpError } from './errors.js';
import type { Settings } from './options.js';

/** Form fields besides files: the options, at most this many and this long (limits.ts gives them to busboy). */
export const MAX_FIELDS = 100;
export const MAX_FIELD_BYTES = 8 * 1024;
/** Multipart framing: part headers and boundaries, generously. */
const MULTIPART_OVERHEAD = 64 * 1024;
/** A client refused for want of room is told to come back after this long: bodies in flight clear in seconds. */
const RETRY_AFTER_S = 2;

/** Bytes server-wide, taken before buffering and given back when the response has gone. */
export class ByteBudget {
  readonly capacity: number;
  readonly #onChange: (used: number) => void;
  #used = 0;

  constructor(capacity: number, onChange: (used: number) => void = () => undefined) {
    this.capacity = capacity;
    this.#onChange = onChange;
  }

  get used(): number {
    return this.#used;
  }

  get free(): number {
    return this.capacity - this.#used;
  }

  /** Takes `n` bytes if they fit. */
  take(n: number): boolean {
    if (n > this.free) return false;
    this.#used += n;
    this.#onChange(this.#used);
    return true;
  }

  give(n: number): void {
    this.#used -= n;
    this.#onChange(this.#used);
  }
}

/** One request's share of the budget and its receiving deadline. */
export class RequestBody {
  readonly #budget: ByteBudget;
  readonly #onRefused: () => void;
  readonly #deadline = new AbortController();
  readonly #timer: NodeJS.Timeout;
  #held = 0;

  constructor(budget: ByteBudget, timeoutMs: number, onRefused: () => void) {
    this.#budget = budget;
    this.#onRefused = onRefused;
    this.#timer = setTimeout(
      () =>
        this.#deadline.abort(
          new HttpError(408, 'E_TIMEOUT', `the request did not arrive within ${timeoutMs / 1000} s; send it faster, or split it`, { connection: 'close' }),
        ),
      timeoutMs,
    );
  }

  /** Aborted with a 408 when the body has not arrived in time. */
  get deadline(): AbortSignal {
    return this.#deadline.signal;
  }

  /** The body has arrived: the deadline no longer applies. */
  received(): void {
    clearTimeout(this.#timer);
  }

  /** Counts `n` more bytes of this request against the budget; throws 429 when they do not fit. */
  take(n: number, what: string): void {
    if (this.#budget.take(n)) {
      this.#held += n;
      return;
    }
    this.#onRefused();
    throw new HttpError(
      429,
      'E_BUSY',
      `the server is receiving as many uploads as it holds at once (${mebibytes(this.#budget.capacity)} MiB); ${what} does not fit now: retry in ${RETRY_AFTER_S} s`,
      { 'retry-after': String(RETRY_AFTER_S), connection: 'close' },
    );
  }

  /** Gives back what was taken beyond `n` bytes (a download that came in smaller than reserved). */
  keep(taken: number, n: number): void {
    const back = Math.min(this.#held, Math.max(0, taken - n));
    this.#held -= back;
    this.#budget.give(back);
  }

  /** The response has gone: everything is given back. */
  release(): void {
    clearTimeout(this.#timer);
    this.#budget.give(this.#held);
    this.#held = 0;
  }
}

const mebibytes = (n: number): string => String(Math.round((n / 1024 / 1024) * 10) / 10);

declare module 'fastify' {
  interface FastifyRequest {
    /** The body's budget share and deadline, on routes that take uploads. */
    uploadBody?: RequestBody;
  }
}

/** Raw and JSON bodies on their way to fastify's parsers: counted, and cut off at the deadline. */
class CountingStream extends Transform {
  readonly #body: RequestBody;
  readonly #onDeadline: () => void;

  constructor(body: RequestBody) {
    super();
    this.#body = body;
    this.#onDeadline = () => this.destroy(body.deadline.reason as Error);
    body.deadline.addEventListener('abort', this.#onDeadline, { once: true });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#body.take(chunk.length, 'this body');
    } catch (e) {
      return callback(e as Error);
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#body.received();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#body.deadline.removeEventListener('abort', this.#onDeadline);
    callback(error);
  }
}

/** The largest body a request to an upload route can have, by content type. */
function largestBody(type: string, settings: Settings): number | undefined {
  if (type.startsWith('multipart/')) return settings.maxFiles * settings.maxUploadBytes + MAX_FIELDS * MAX_FIELD_BYTES + MULTIPART_OVERHEAD;
  if (type.startsWith('image/') || type === 'application/octet-stream') return settings.maxUploadBytes;
  return undefined; // JSON and the rest: fastify's own body limit
}

export const bodiesPlugin = fp<{ settings: Settings }>(
  async (app: FastifyInstance, { settings }) => {
    const metrics = app.metrics;
    const budget = new ByteBudget(settings.maxInFlightBytes, (used) => metrics.bodyBytes.set(used));
    const refused = () => metrics.rejected.inc({ reason: 'bodies' });

    app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      if (request.routeOptions.config.upload !== true) return;
      const declared = Number(request.headers['content-length']);
      if (Number.isFinite(declared)) {
        const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        const largest = Math.min(largestBody(type, settings) ?? Number.POSITIVE_INFINITY, budget.capacity);
        if (declared > largest) {
          throw new HttpError(
            413,
            'E_TOO_LARGE',
            `a body of ${declared} bytes is more than this server takes in one request (${largest}; see the limits in GET /v1/models)`,
            { connection: 'close' },
          );
        }
        if (declared > budget.free) {
          refused();
          throw new HttpError(429, 'E_BUSY', `the server is receiving as many uploads as it holds at once; retry in ${RETRY_AFTER_S} s`, {
            'retry-after': String(RETRY_AFTER_S),
            connection: 'close',
          });
        }
      }
      const body = new RequestBody(budget, settings.timeoutMs, refused);
      request.uploadBody = body;
      reply.raw.once('close', () => body.release());
    });

    app.addHook('preParsing', async (request: FastifyRequest, _reply: FastifyReply, payload) => {
      const body = request.uploadBody;
      // busboy reads multipart bodies from the request itself; inputs.ts counts and times them.
      if (!body || (request.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/')) return payload;
      // (An error on either side destroys the other; the parser reports the counting stream's.)
      return pipeline(payload, new CountingStream(body), () => undefined);
    });
  },
  { name: 'clip-iqa-bodies', dependencies: ['clip-iqa-metrics'] },
);
