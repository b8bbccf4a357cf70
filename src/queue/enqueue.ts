/**
 * Adding inputs to a batch: the batch's settings are stored once (a second `add` must name the same ones), each
 * input gets its number in input order and one job. Adding is idempotent: an input already in the batch (the same
 * absolute path or URL) is left alone, so an interrupted `add` is simply run again.
 */
import { resolve } from 'node:path';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { ClipIqaError } from '../errors.js';
import { isHttpUrl } from '../image/fetch.js';
import { DEFAULT_PREFIX, batchKeys, batchesKey, checkBatchName, checkPrefix, jobId } from './keys.js';
import { open, redisError } from './redis.js';
import { saveRow } from './rows.js';
import { type BatchSettings, decodeSettings, encodeSettings } from './settings.js';

/** A path or URL (named in results as given), or an input already known to be bad (a row of its own). */
export type QueueInput = string | { readonly name: string; readonly source: string } | { readonly name: string; readonly error: { readonly code: string; readonly message: string } };

export interface QueueConnection {
  /** `redis://[:password@]host[:port][/db]`, or `rediss://…` for TLS. */
  readonly redis: string;
  /** Prefix of every key (default `clip-iqa`); `{name}` in braces for Redis Cluster. */
  readonly prefix?: string;
}

export interface EnqueueOptions extends QueueConnection {
  readonly batch: string;
  readonly inputs: Iterable<QueueInput>;
  /** What to score with; stored by the first `enqueue` of a batch, checked by later ones (default: `clip-iqa score`'s). */
  readonly settings?: BatchSettings;
  /** How often a transient failure (network, Redis) is tried before the image fails; default 3. */
  readonly attempts?: number;
}

export interface EnqueueResult {
  /** Inputs new to the batch. */
  readonly added: number;
  /** Inputs that were there already. */
  readonly already: number;
  /** Inputs in the batch now. */
  readonly total: number;
}

/** Job options of every image: retries with backoff; finished jobs leave Redis (the result is kept apart, compactly). */
export function jobOptions(attempts: number) {
  return { attempts, backoff: { type: 'exponential' as const, delay: 1000 }, removeOnComplete: true, removeOnFail: true };
}

const CHUNK = 1000;

// KEYS: ids, inputs; ARGV: id1, name1, id2, name2… → for each pair, the input's number and 1 if new, 0 if known.
const REGISTER = `
local out = {}
for i = 1, #ARGV, 2 do
  local n = redis.call('HGET', KEYS[1], ARGV[i])
  if n then
    table.insert(out, tonumber(n)); table.insert(out, 0)
  else
    n = redis.call('RPUSH', KEYS[2], ARGV[i + 1]) - 1
    redis.call('HSET', KEYS[1], ARGV[i], n)
    table.insert(out, n); table.insert(out, 1)
  end
end
return out`;

/** Stores the batch's settings, or checks them against those stored. */
async function settle(redis: Redis, prefix: string, batch: string, settings: BatchSettings): Promise<void> {
  const keys = batchKeys(prefix, batch);
  const text = encodeSettings(settings);
  const created = await redis.hsetnx(keys.meta, 'settings', text);
  if (created === 1) {
    await redis.hset(keys.meta, 'created', new Date().toISOString());
    return;
  }
  const stored = (await redis.hget(keys.meta, 'settings')) ?? text;
  if (stored !== text) {
    throw new ClipIqaError(
      'E_OPTION',
      `batch "${batch}" was created with other settings (${JSON.stringify(decodeSettings(stored))}); add with the same model and score options, or use another --batch`,
    );
  }
}

function normalise(input: QueueInput): { name: string; source: string } | { name: string; error: { code: string; message: string } } {
  if (typeof input === 'string') return { name: input, source: isHttpUrl(input) ? input : resolve(input) };
  return input;
}

export async function enqueue(options: EnqueueOptions): Promise<EnqueueResult> {
  const batch = checkBatchName(options.batch);
  const prefix = checkPrefix(options.prefix ?? DEFAULT_PREFIX);
  const redis = await open(options.redis, 'client');
  const queue = new Queue(batch, { connection: redis, prefix });
  queue.on('error', () => undefined);
  const keys = batchKeys(prefix, batch);
  const opts = jobOptions(options.attempts ?? 3);
  let added = 0;
  let already = 0;
  try {
    await settle(redis, prefix, batch, options.settings ?? {});
    await redis.sadd(batchesKey(prefix), batch);
    let chunk: ReturnType<typeof normalise>[] = [];
    const flush = async () => {
      if (chunk.length === 0) return;
      const ids = chunk.map((c) => jobId(batch, 'source' in c ? c.source : c.name));
      const numbers = (await redis.eval(REGISTER, 2, keys.ids, keys.inputs, ...chunk.flatMap((c, i) => [ids[i]!, c.name]))) as number[];
      const jobs = [];
      for (const [i, c] of chunk.entries()) {
        const index = numbers[2 * i]!;
        if (numbers[2 * i + 1] === 1) added++;
        else already++;
        if ('error' in c) await saveRow(redis, keys, index, { code: c.error.code, message: c.error.message });
        // Known inputs get their job again unless they have a result: an `add` cut between the two steps is mended,
        // and BullMQ ignores a job id it holds already.
        else jobs.push({ index, c, id: ids[i]! });
      }
      if (jobs.length > 0) {
        const done = await redis.hmget(keys.results, ...jobs.map((j) => String(j.index)));
        const todo = jobs.filter((_, i) => done[i] === null);
        if (todo.length > 0) await queue.addBulk(todo.map((j) => ({ name: 'score', data: { s: 'source' in j.c ? j.c.source : '', n: j.index }, opts: { ...opts, jobId: j.id } })));
      }
      chunk = [];
    };
    for (const input of options.inputs) {
      chunk.push(normalise(input));
      if (chunk.length >= CHUNK) await flush();
    }
    await flush();
    const total = await redis.llen(keys.inputs);
    return { added, already, total };
  } catch (e) {
    throw redisError(options.redis, e);
  } finally {
    await queue.close().catch(() => undefined);
    redis.disconnect();
  }
}
