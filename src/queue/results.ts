/**
 * A batch's results, in input order: each input's row as `clip-iqa score` reports it (scores by name, or the
 * error), or `pending` while no worker has finished it. Read in pages, so that a batch of millions streams.
 */
import type { Redis } from 'ioredis';
import { ClipIqaError } from '../errors.js';
import type { QueueConnection } from './enqueue.js';
import { DEFAULT_PREFIX, batchKeys, checkBatchName, checkPrefix } from './keys.js';
import { open, redisError } from './redis.js';
import { decodeRow } from './rows.js';
import { type BatchSettings, decodeSettings } from './settings.js';
import { readStatus } from './status.js';
import type { ModelRecord } from './worker.js';

export type QueueRow =
  | { readonly index: number; readonly file: string; readonly ok: true; readonly width: number; readonly height: number; readonly scores: Record<string, number> }
  | { readonly index: number; readonly file: string; readonly ok: false; readonly error: { readonly code: string; readonly message: string } }
  | { readonly index: number; readonly file: string; readonly ok: null; readonly pending: true };

export interface BatchInfo {
  readonly settings: BatchSettings;
  readonly created: string;
  /** What the first worker loaded; null until one has. */
  readonly model: ModelRecord | null;
}

export async function readInfo(redis: Redis, prefix: string, batch: string): Promise<BatchInfo> {
  const meta = await redis.hgetall(batchKeys(prefix, batch).meta);
  if (!meta.settings) throw new ClipIqaError('E_NOT_FOUND', `there is no batch "${batch}" (prefix ${prefix}); add images with clip-iqa queue add --batch ${batch}`);
  return { settings: decodeSettings(meta.settings), created: meta.created ?? new Date(0).toISOString(), model: meta.model ? (JSON.parse(meta.model) as ModelRecord) : null };
}

const PAGE = 2000;

/** Rows in input order, on an open connection. */
export async function* readRows(redis: Redis, prefix: string, batch: string, names: readonly string[]): AsyncGenerator<QueueRow> {
  const keys = batchKeys(prefix, batch);
  const total = await redis.llen(keys.inputs);
  for (let start = 0; start < total; start += PAGE) {
    const files = await redis.lrange(keys.inputs, start, start + PAGE - 1);
    const stored = await redis.hmget(keys.results, ...files.map((_, i) => String(start + i)));
    for (const [i, file] of files.entries()) {
      const index = start + i;
      const text = stored[i];
      if (text == null) {
        yield { index, file, ok: null, pending: true };
        continue;
      }
      const row = decodeRow(text);
      if ('code' in row) yield { index, file, ok: false, error: { code: row.code, message: row.message } };
      else yield { index, file, ok: true, width: row.width, height: row.height, scores: Object.fromEntries(names.map((n, k) => [n, row.scores[k]!])) };
    }
  }
}

export interface ResultsOptions extends QueueConnection {
  readonly batch: string;
  /** Wait until every input has its result (polling once a second) before the first row. */
  readonly wait?: boolean;
}

/** Waits until the batch is finished. */
export async function waitFinished(redis: Redis, prefix: string, batch: string, onStatus?: (s: Awaited<ReturnType<typeof readStatus>>) => void): Promise<void> {
  for (;;) {
    const status = await readStatus(redis, prefix, batch);
    onStatus?.(status);
    if (status.finished) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Every input's row, in input order (pending ones too unless `wait`). */
export async function* batchResults(options: ResultsOptions): AsyncGenerator<QueueRow> {
  const batch = checkBatchName(options.batch);
  const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
  const redis = await open(options.redis, 'client');
  try {
    if (options.wait) await waitFinished(redis, prefix, batch);
    const info = await readInfo(redis, prefix, batch);
    yield* readRows(redis, prefix, batch, info.model?.names ?? []);
  } catch (e) {
    throw redisError(options.redis, e);
  } finally {
    redis.disconnect();
  }
}

/** The batch's settings and model, for headers. */
export async function batchInfo(options: QueueConnection & { readonly batch: string }): Promise<BatchInfo> {
  const batch = checkBatchName(options.batch);
  const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
  const redis = await open(options.redis, 'client');
  try {
    return await readInfo(redis, prefix, batch);
  } catch (e) {
    throw redisError(options.redis, e);
  } finally {
    redis.disconnect();
  }
}
