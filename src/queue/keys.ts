/**
 * Where a batch lives in Redis. A batch is one BullMQ queue (named after the batch) plus a few keys of its own beside
 * BullMQ's, all under `<prefix>:<batch>:` so that `queue rm` can find every one. For Redis Cluster, a prefix in
 * braces (`{clip-iqa}`) puts all of them in one hash slot, as BullMQ requires.
 */
import { createHash } from 'node:crypto';
import { ClipIqaError } from '../errors.js';

export const DEFAULT_PREFIX = 'clip-iqa';

export interface BatchKeys {
  /** Hash: `settings` (what to score with), `model` (what a worker loaded), `created`. */
  readonly meta: string;
  /** List: the inputs' names, in input order (a result's number is its index here). */
  readonly inputs: string;
  /** Hash: job id → input number, so that adding an input twice adds it once. */
  readonly ids: string;
  /** Hash: input number → compact result (see ./rows.ts). */
  readonly results: string;
  /** Hash: scored, failed (counters), first and last (ms of the first and latest result). */
  readonly stats: string;
  /** Pattern of every key of the batch, BullMQ's included. */
  readonly all: string;
}

/** Set of the batch names under a prefix, for workers that serve every batch. */
export const batchesKey = (prefix: string): string => `${prefix}:batches`;

export function checkBatchName(batch: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(batch)) {
    throw new ClipIqaError('E_OPTION', `batch name "${batch}": use letters, digits, ".", "_" and "-" (up to 128, starting with a letter or digit)`);
  }
  return batch;
}

export function checkPrefix(prefix: string): string {
  if (!/^[A-Za-z0-9{}._-]{1,64}$/.test(prefix)) throw new ClipIqaError('E_OPTION', `key prefix "${prefix}": use letters, digits, braces, ".", "_" and "-"`);
  return prefix;
}

export function batchKeys(prefix: string, batch: string): BatchKeys {
  const base = `${prefix}:${batch}`;
  // `cq-` keeps these apart from BullMQ's own names under the same base.
  return { meta: `${base}:cq-meta`, inputs: `${base}:cq-inputs`, ids: `${base}:cq-ids`, results: `${base}:cq-results`, stats: `${base}:cq-stats`, all: `${base}:*` };
}

/** The job id of an input: the same input added to the same batch again is the same job (BullMQ adds it once). */
export function jobId(batch: string, source: string): string {
  return `i${createHash('sha256').update(batch).update('\0').update(source).digest('hex').slice(0, 32)}`;
}
