/**
 * `clip-iqa/queue`: scoring on many workers through Redis (BullMQ). Add a batch's images with `enqueue`, run
 * `startWorker` on as many machines as you like, follow it with `batchStatus`, read `batchResults` in input order,
 * and `removeBatch` when collected.
 *
 *   import { enqueue, startWorker, batchStatus, batchResults } from 'clip-iqa/queue';
 *   await enqueue({ redis: 'redis://localhost:6379', batch: 'photos', inputs: ['a.jpg', 'https://…/b.png'], settings: { attributes: 'quality' } });
 *   const worker = await startWorker({ redis: 'redis://localhost:6379' });   // on each machine
 *   for await (const row of batchResults({ redis: 'redis://localhost:6379', batch: 'photos', wait: true })) console.log(row);
 *   await worker.close();
 */
export { type EnqueueOptions, type EnqueueResult, type QueueConnection, type QueueInput, enqueue } from './enqueue.js';
export { DEFAULT_PREFIX } from './keys.js';
export { removeBatch } from './remove.js';
export { type BatchInfo, type QueueRow, type ResultsOptions, batchInfo, batchResults } from './results.js';
export type { BatchSettings } from './settings.js';
export { type BatchOptions, type BatchStatus, batchStatus } from './status.js';
export { type ModelRecord, type QueueWorker, type WorkerEvent, type WorkerOptions, startWorker } from './worker.js';
