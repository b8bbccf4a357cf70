/**
 * A result as stored in Redis: small, since a batch of millions keeps every one until it is collected. A scored
 * image is `[width, height, [score…]]` in the order of the batch's score names (stored once, with the model); a
 * failure is `{"c": code, "m": message}`. Each input's result is written once: a job run twice (a worker killed
 * after scoring, before BullMQ heard of it) finds its result there and counts nothing twice.
 */
import type { Redis } from 'ioredis';
import type { BatchKeys } from './keys.js';

export type StoredRow = { readonly width: number; readonly height: number; readonly scores: readonly number[] } | { readonly code: string; readonly message: string };

export function encodeRow(row: StoredRow): string {
  return 'code' in row ? JSON.stringify({ c: row.code, m: row.message }) : JSON.stringify([row.width, row.height, row.scores]);
}

export function decodeRow(text: string): StoredRow {
  const v = JSON.parse(text) as [number, number, number[]] | { c: string; m: string };
  return Array.isArray(v) ? { width: v[0], height: v[1], scores: v[2] } : { code: v.c, message: v.m };
}

// KEYS: results, stats, meta; ARGV: input number, row, 'scored'|'failed', now (ms). 1 when written, 0 when already
// there or the batch was removed meanwhile (a job finishing after `queue rm` must not leave keys behind).
const SAVE = `
if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
redis.call('HSETNX', KEYS[2], 'first', ARGV[4])
redis.call('HSET', KEYS[2], 'last', ARGV[4])
return 1`;

/** Stores an input's result unless it has one; true when this call stored it. */
export async function saveRow(redis: Redis, keys: BatchKeys, index: number, row: StoredRow): Promise<boolean> {
  const written = await redis.eval(SAVE, 3, keys.results, keys.stats, keys.meta, String(index), encodeRow(row), 'code' in row ? 'failed' : 'scored', String(Date.now()));
  return written === 1;
}
