import { InferenceSession, type Tensor } from 'onnxruntime-node';
import { join } from 'node:path';
import { ClipIqaError, errorMessage } from '../errors.js';
import type { SerializedModel } from '../graph/builder.js';
import { type RuntimeOptions, sessionOptions } from './options.js';

/** File names of a saved optimised graph. */
const SAVED_MODEL = 'model.onnx';
const SAVED_WEIGHTS = 'weights.bin';

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

  /**
   * A session over a graph built in memory. With `saveTo`, onnxruntime also writes the graph as it optimised it
   * into that folder (`model.onnx`, initializers in `weights.bin`), for `open` to load in later runs.
   */
  static async create(label: string, model: SerializedModel, options: RuntimeOptions = {}, saveTo?: string): Promise<OrtSession> {
    const opts = sessionOptions(options);
    if (model.external.length > 0) opts.externalData = model.external.map((f) => ({ path: f.path, data: f.data }));
    if (saveTo !== undefined) {
      opts.optimizedModelFilePath = join(saveTo, SAVED_MODEL);
      const session = (opts.extra as { session?: Record<string, unknown> }).session ?? {};
      opts.extra = {
        ...opts.extra,
        session: { ...session, optimized_model_external_initializers_file_name: SAVED_WEIGHTS, optimized_model_external_initializers_min_size_in_bytes: '1024' },
      };
      // onnxruntime warns that a graph optimised with layout transforms fits this machine only; the cache key says so.
      opts.logSeverityLevel = 3;
    }
    try {
      return new OrtSession(label, await InferenceSession.create(model.bytes, opts));
    } catch (e) {
      throw new ClipIqaError('E_RUNTIME', `onnxruntime could not load the ${label} graph: ${errorMessage(e)}`, { cause: e });
    }
  }

  /**
   * A session over a graph that `create` saved into `dir`: already optimised, so onnxruntime's optimisation is
   * off, and the weights file is mapped rather than read.
   */
  static async open(label: string, dir: string, options: RuntimeOptions = {}): Promise<OrtSession> {
    const opts: InferenceSession.SessionOptions = { ...sessionOptions(options), graphOptimizationLevel: 'disabled' };
    try {
      return new OrtSession(label, await InferenceSession.create(join(dir, SAVED_MODEL), opts));
    } catch (e) {
      throw new ClipIqaError('E_RUNTIME', `onnxruntime could not load the cached ${label} graph in ${dir}: ${errorMessage(e)}`, { cause: e });
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
