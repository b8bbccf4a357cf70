/** Removing a batch: its jobs (BullMQ's obliterate, even with jobs in hand), its results and every key of its own. */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BatchOptions } from './status.js';
import { DEFAULT_PREFIX, batchKeys, batchesKey, checkBatchName, checkPrefix } from './keys.js';
import { open, redisError } from './redis.js';

async function scanDelete(redis: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let removed = 0;
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (found.length > 0) removed += await redis.unlink(...found);
  } while (cursor !== '0');
  return removed;
}

/** Removes the batch; true when there was one. Workers serving it let it go at their next look (a few seconds). */
export async function removeBatch(options: BatchOptions): Promise<boolean> {
  const batch = checkBatchName(options.batch);
  const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
  const redis = await open(options.redis, 'client');
  const queue = new Queue(batch, { connection: redis, prefix });
  queue.on('error', () => undefined);
  try {
    const keys = batchKeys(prefix, batch);
    const existed = (await redis.exists(keys.meta)) === 1;
    await redis.srem(batchesKey(prefix), batch);
    await queue.obliterate({ force: true });
    // What obliterate leaves (its own markers, our keys, a job a worker finished meanwhile) goes by pattern.
    await scanDelete(redis, keys.all);
    return existed;
  } catch (e) {
    throw redisError(options.redis, e);
  } finally {
    await queue.close().catch(() => undefined);
    redis.disconnect();
  }
}
