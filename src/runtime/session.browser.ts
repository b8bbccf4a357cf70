/** The browser build's `session.ts`: the same session wrapper on onnxruntime-web. */
import { InferenceSession, type Tensor } from 'onnxruntime-web';
import { ClipIqaError, errorMessage } from '../errors.js';
import type { SerializedModel } from '../graph/builder.js';
import { type RuntimeOptions, sessionOptions } from './options.js';

/**
 * onnxruntime-web runs one inference at a time ("Session already started" for a second concurrent run), where
 * onnxruntime-node takes concurrent calls: runs are queued, page-wide, so that callers may overlap as in Node.
 */
let queue: Promise<unknown> = Promise.resolve();

export class OrtSession {
  readonly label: string;
  readonly #session: InferenceSession;

  private constructor(label: string, session: InferenceSession) {
    this.label = label;
    this.#session = session;
  }

  /** As in Node, without `saveTo`: the browser build keeps no graphs on disk. */
  static async create(label: string, model: SerializedModel, options: RuntimeOptions = {}): Promise<OrtSession> {
    const opts = sessionOptions(options);
    if (model.external.length > 0) opts.externalData = model.external.map((f) => ({ path: f.path, data: f.data }));
    try {
      return new OrtSession(label, await InferenceSession.create(model.bytes, opts));
    } catch (e) {
      throw new ClipIqaError('E_RUNTIME', `onnxruntime-web could not load the ${label} graph: ${errorMessage(e)}`, { cause: e });
    }
  }

  static async open(label: string): Promise<OrtSession> {
    throw new ClipIqaError('E_RUNTIME', `the ${label} graph cannot be opened from a cache in the browser`);
  }

  async run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    const run = queue.then(() => this.#session.run(feeds));
    queue = run.catch(() => undefined);
    try {
      return await run;
    } catch (e) {
      throw new ClipIqaError('E_RUNTIME', `onnxruntime-web failed running the ${this.label} graph: ${errorMessage(e)}`, { cause: e });
    }
  }

  async dispose(): Promise<void> {
    await this.#session.release();
  }
}
