/** Where a batch stands: inputs, results (scored, failed), jobs waiting, active and retrying, and the pace. */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { ClipIqaError } from '../errors.js';
import type { QueueConnection } from './enqueue.js';
import { DEFAULT_PREFIX, batchKeys, checkBatchName, checkPrefix } from './keys.js';
import { open, redisError } from './redis.js';

export interface BatchStatus {
  readonly batch: string;
  /** Inputs in the batch. */
  readonly total: number;
  readonly scored: number;
  readonly failed: number;
  /** Jobs not yet taken, being scored, and waiting to be retried after a transient failure. */
  readonly waiting: number;
  readonly active: number;
  readonly retrying: number;
  /** Every input has its result. */
  readonly finished: boolean;
  /** Results a second since the first one, null before two; seconds left at that pace, null when unknown. */
  readonly rate: number | null;
  readonly eta: number | null;
  /** When the batch was created (ISO 8601). */
  readonly created: string | null;
}

/** The status on an open connection (for `--watch` and `--wait`, which ask again and again). */
export async function readStatus(redis: Redis, prefix: string, batch: string): Promise<BatchStatus> {
  const keys = batchKeys(prefix, batch);
  const [[, created], [, total], [, stats]] = (await redis.multi().hget(keys.meta, 'created').llen(keys.inputs).hgetall(keys.stats).exec())! as [
    [unknown, string | null],
    [unknown, number],
    [unknown, Record<string, string>],
  ];
  if (created === null) throw new ClipIqaError('E_NOT_FOUND', `there is no batch "${batch}" (prefix ${prefix}); add images with clip-iqa queue add --batch ${batch}`);
  const queue = new Queue(batch, { connection: redis, prefix });
  queue.on('error', () => undefined);
  const counts = await queue.getJobCounts('wait', 'prioritized', 'active', 'delayed', 'waiting-children');
  await queue.close();
  const scored = Number(stats.scored ?? 0);
  const failed = Number(stats.failed ?? 0);
  const done = scored + failed;
  const first = Number(stats.first ?? 0);
  const last = Number(stats.last ?? 0);
  const finished = done >= total && total > 0;
  const span = ((finished ? last : Date.now()) - first) / 1000;
  const rate = done >= 2 && span > 0 ? (done - 1) / span : null;
  return {
    batch,
    total,
    scored,
    failed,
    waiting: (counts.wait ?? 0) + (counts.prioritized ?? 0),
    active: counts.active ?? 0,
    retrying: counts.delayed ?? 0,
    finished,
    rate,
    eta: finished ? 0 : rate ? (total - done) / rate : null,
    created,
  };
}

export interface BatchOptions extends QueueConnection {
  readonly batch: string;
}

export async function batchStatus(options: BatchOptions): Promise<BatchStatus> {
  const batch = checkBatchName(options.batch);
  const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
  const redis = await open(options.redis, 'client');
  try {
    return await readStatus(redis, prefix, batch);
  } catch (e) {
    throw redisError(options.redis, e);
  } finally {
    redis.disconnect();
  }
}
