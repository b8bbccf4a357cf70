import { availableParallelism } from 'node:os';
import type { InferenceSession } from 'onnxruntime-node';
import { ClipIqaError } from '../errors.js';

export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'layout' | 'all';

/**
 * Arithmetic of the image tower. `float32` matches the PyTorch reference to float rounding. `int8` quantises
 * the image tower's weights (per output channel) and activations (ResNet: per tensor, ranges calibrated on four
 * fixed photographs, see model/calibration.ts; ViT: per tensor, on the fly) and runs onnxruntime's integer
 * kernels (AVX-512 VNNI where the CPU has it): faster, with features that differ slightly from float32 (see the
 * README). The text tower always runs in float32.
 */
export type Precision = 'float32' | 'int8';
export const PRECISIONS: readonly Precision[] = ['float32', 'int8'];

/** How onnxruntime sessions are created. Every field has a default tuned for CPU inference of one model at a time. */
export interface RuntimeOptions {
  /** Arithmetic of the image tower; default 'float32'. */
  readonly precision?: Precision;
  /** Intra-op threads (the threads one convolution or matrix product is split over); default `os.availableParallelism()`. */
  readonly threads?: number;
  /** Inter-op threads; default 1, since the towers are chains with no independent branches worth running side by side. */
  readonly interOpThreads?: number;
  /** Default 'all': includes the NCHWc layout transforms that let MLAS use AVX-512 convolution kernels. */
  readonly graphOptimizationLevel?: GraphOptimizationLevel;
  /** Default 'sequential' (see interOpThreads). */
  readonly executionMode?: 'sequential' | 'parallel';
  /** Default true: the arena keeps activation buffers between runs instead of returning them to the system. */
  readonly enableCpuMemArena?: boolean;
  /** Default true: reuses the allocation plan of the previous run when input shapes repeat. */
  readonly enableMemPattern?: boolean;
  /**
   * Raw session configuration entries (onnxruntime's `onnxruntime_session_options_config_keys.h`), over the
   * defaults (`session.intra_op.allow_spinning` and `session.inter_op.allow_spinning` '0'; set them to '1' to let
   * worker threads spin-wait, which may pay on a machine with nothing else running).
   */
  readonly configEntries?: Readonly<Record<string, string>>;
  /**
   * Initializers of at least this many bytes travel to onnxruntime as in-memory external data rather than
   * inside the protobuf (default 1 MiB). Needed for towers over 2 GiB of float32 weights (RN50x64, ViT-L/14).
   */
  readonly externalMinBytes?: number;
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new ClipIqaError('E_OPTION', `${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/** Nested `{ session: { key: value } }` form that onnxruntime-node's binding flattens back into dotted config keys. */
function nestConfigEntries(entries: Readonly<Record<string, string>>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(entries)) {
    const parts = key.split('.');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      const next = node[part];
      if (typeof next === 'string') throw new ClipIqaError('E_OPTION', `session config key "${key}" clashes with another key`);
      node = (next as Record<string, unknown> | undefined) ?? (node[part] = {});
    }
    node[parts[parts.length - 1]!] = value;
  }
  return root;
}

/**
 * Session configuration entries set unless `configEntries` overrides them.
 *
 * Worker threads do not spin-wait for work (`allow_spinning` 0). Spinning saves a few microseconds per operator
 * when the cores are otherwise idle, and measured nothing here (RN50 at 224² and 1024×768 the same within noise);
 * but when anything else wants a core (image decoding running ahead in `scoreMany`, another process) a spinning
 * worker burns the time slice of the thread that has the work: with one busy competing process on two cores RN50
 * took 120–150 ms at 224² spinning against 82–97 ms not, and 1.7–2.7 s against 1.6–1.8 s at 1024×768.
 */
const DEFAULT_CONFIG_ENTRIES: Readonly<Record<string, string>> = {
  'session.intra_op.allow_spinning': '0',
  'session.inter_op.allow_spinning': '0',
};

/** onnxruntime session options for `options`, defaults filled in and values checked. */
export function sessionOptions(options: RuntimeOptions = {}): InferenceSession.SessionOptions {
  return {
    executionProviders: ['cpu'],
    intraOpNumThreads: positiveInteger('threads', options.threads, availableParallelism()),
    interOpNumThreads: positiveInteger('interOpThreads', options.interOpThreads, 1),
    graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
    executionMode: options.executionMode ?? 'sequential',
    enableCpuMemArena: options.enableCpuMemArena ?? true,
    enableMemPattern: options.enableMemPattern ?? true,
    extra: nestConfigEntries({ ...DEFAULT_CONFIG_ENTRIES, ...options.configEntries }),
  };
}
