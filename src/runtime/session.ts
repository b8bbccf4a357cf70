import { InferenceSession, type Tensor } from 'onnxruntime-node';
import { ClipIqaError, errorMessage } from '../errors.js';
import type { SerializedModel } from '../graph/builder.js';
import { type RuntimeOptions, sessionOptions } from './options.js';

/**
 * One onnxruntime session created from model bytes held in memory. Failures surface as
 * E_RUNTIME errors naming the graph, never as bare onnxruntime messages.
 */
export class OrtSession {
  readonly label: string;
  readonly #session: InferenceSession;

  private constructor(label: string, session: InferenceSession) {
    this.label = label;
    this.#session = session;
  }

  static async create(label: string, model: SerializedModel, options: RuntimeOptions = {}): Promise<OrtSession> {
    const opts = sessionOptions(options);
    if (model.external.length > 0) opts.externalData = model.external.map((f) => ({ path: f.path, data: f.data }));
    try {
      return new OrtSession(label, await InferenceSession.create(model.bytes, opts));
    } catch (e) {
      throw new ClipIqaError('E_RUNTIME', `onnxruntime could not load the ${label} graph: ${errorMessage(e)}`, { cause: e });
    }
  }

  /**
   * Runs the graph and returns all its outputs. (onnxruntime executes every node whichever outputs are
   * fetched, as measured with onnxruntime-node 1.30, so each graph is built with the outputs it needs only.)
   */
  async run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    try {
      return await this.#session.run(feeds);
    } catch (e) {
      throw new ClipIqaError('E_RUNTIME', `onnxruntime failed running the ${this.label} graph: ${errorMessage(e)}`, { cause: e });
    }
  }

  async dispose(): Promise<void> {
    await this.#session.release();
  }
}
