/**
 * A worker thread of the server's pool (pool.ts): it holds one ClipIqa, builds and warms its sessions at start-up,
 * then scores and embeds what the main thread sends. onnxruntime-node's `session.run` occupies the thread that
 * calls it for the whole inference, so it must be this thread and never the event loop's. Failures travel back as
 * plain {code, message} (class instances do not cross threads).
 */
import { workerData } from 'node:worker_threads';
import { ClipIqa, type ClipIqaOptions, type ImageScores, type ScoreOptions } from '../api.js';
import { errorMessage, isClipIqaError } from '../errors.js';
import type { DecodeOptions } from '../image/decode.js';
import type { PositionalMode, RawImage } from '../model/types.js';
import type { ClipArchitecture } from '../weights/architecture.js';
import { warmUp } from './warmup.js';

export type WorkerTask =
  | { readonly op: 'info' }
  | { readonly op: 'score'; readonly input: Uint8Array | RawImage; readonly options: ScoreOptions }
  | { readonly op: 'embedImage'; readonly input: Uint8Array | RawImage; readonly positional?: PositionalMode; readonly decode?: DecodeOptions }
  | { readonly op: 'embedText'; readonly texts: readonly string[] };

export interface WorkerInfo {
  readonly name: string;
  readonly architecture: ClipArchitecture;
  readonly logitScale: number;
  readonly description: string;
  readonly context: { readonly source: string } | undefined;
}

export type WorkerReply = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly code: string; readonly message: string };

const iqa = await ClipIqa.load(workerData as ClipIqaOptions);
await warmUp(iqa);

async function perform(task: WorkerTask): Promise<WorkerInfo | ImageScores | Float32Array | Float32Array[]> {
  switch (task.op) {
    case 'info':
      return {
        name: iqa.name,
        architecture: iqa.architecture,
        logitScale: iqa.logitScale,
        description: iqa.describe(),
        context: iqa.context ? { source: iqa.context.source } : undefined,
      };
    case 'score':
      return iqa.score(task.input, task.options);
    case 'embedImage':
      return iqa.embedImage(task.input, { positional: task.positional, decode: task.decode });
    case 'embedText':
      return iqa.embedText(task.texts);
  }
}

export default async function run(task: WorkerTask): Promise<WorkerReply> {
  try {
    return { ok: true, value: await perform(task) };
  } catch (e) {
    return { ok: false, code: isClipIqaError(e) ? e.code : 'E_RUNTIME', message: errorMessage(e) };
  }
}
