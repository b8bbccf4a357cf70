/**
 * A model process of the server's pool (pool.ts): a child process that holds one ClipIqa, builds and warms its
 * sessions at start-up, then scores and embeds what the server sends over the IPC channel. It is a process, not a
 * thread, so that the server can end it at any moment: onnxruntime-node's `session.run` holds the thread that calls
 * it, and terminating a worker thread in the middle of a run aborts the whole process ("terminate called after
 * throwing an instance of 'Napi::Error'"), as does the kernel's OOM killer when a run outgrows the machine. A process
 * that is killed (deadline passed) or dies is replaced; the server goes on. Failures of a task travel back as plain
 * {code, message}.
 *
 * Messages, server → process: {type: 'load', options}, then {type: 'task', id, task}.
 * Process → server: {type: 'ready', info} or {type: 'failed', code, message}, then {type: 'reply', id, reply}.
 */
import { writeFileSync } from 'node:fs';
import { ClipIqa, type ClipIqaOptions, type ImageScores, type ScoreOptions } from '../api.js';
import { errorMessage, isClipIqaError } from '../errors.js';
import type { DecodeOptions } from '../image/decode.js';
import type { PositionalMode, RawImage } from '../model/types.js';
import type { ClipArchitecture } from '../weights/architecture.js';
import { warmUp } from './warmup.js';

export type WorkerTask =
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

export type ToWorker = { readonly type: 'load'; readonly options: ClipIqaOptions } | { readonly type: 'task'; readonly id: number; readonly task: WorkerTask };

export type FromWorker =
  | { readonly type: 'ready'; readonly info: WorkerInfo }
  | { readonly type: 'failed'; readonly code: string; readonly message: string }
  | { readonly type: 'reply'; readonly id: number; readonly reply: WorkerReply };

const failure = (e: unknown) => ({ code: isClipIqaError(e) ? e.code : 'E_RUNTIME', message: errorMessage(e) });

async function perform(iqa: ClipIqa, task: WorkerTask): Promise<ImageScores | Float32Array | Float32Array[]> {
  switch (task.op) {
    case 'score':
      return iqa.score(task.input, task.options);
    case 'embedImage':
      return iqa.embedImage(task.input, { positional: task.positional, decode: task.decode });
    case 'embedText':
      return iqa.embedText(task.texts);
  }
}

function serve(): void {
  const send = (message: FromWorker, then?: () => void) => process.send!(message, undefined, {}, then);
  let model: Promise<ClipIqa> | undefined;
  process.on('message', (message: ToWorker) => {
    if (message.type === 'load') {
      model = (async () => {
        const iqa = await ClipIqa.load(message.options);
        await warmUp(iqa);
        return iqa;
      })();
      model.then(
        (iqa) =>
          send({
            type: 'ready',
            info: {
              name: iqa.name,
              architecture: iqa.architecture,
              logitScale: iqa.logitScale,
              description: iqa.describe(),
              context: iqa.context ? { source: iqa.context.source } : undefined,
            },
          }),
        (e: unknown) => send({ type: 'failed', ...failure(e) }, () => process.disconnect()),
      );
      return;
    }
    const { id, task } = message;
    void (async () => {
      let reply: WorkerReply;
      try {
        reply = { ok: true, value: await perform(await model!, task) };
      } catch (e) {
        reply = { ok: false, ...failure(e) };
      }
      send({ type: 'reply', id, reply });
    })();
  });
  // The server is gone (or let this process go): nothing more will come.
  process.on('disconnect', () => process.exit(0));
  // When memory runs out, the kernel should end this process, which the server replaces, rather than the server.
  try {
    writeFileSync('/proc/self/oom_score_adj', '1000');
  } catch {
    /* not Linux, or not allowed: the estimate still keeps images within memory */
  }
}

if (process.send) serve();
