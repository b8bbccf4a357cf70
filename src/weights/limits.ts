/**
 * What reading one checkpoint may cost. Every reader (safetensors, torch.save zip and legacy files, TorchScript,
 * and the layout readers built on them) takes its limits from here, so that a small hostile file cannot make the
 * process allocate gigabytes or loop for hours, while every real checkpoint stays far inside the defaults.
 *
 * A limit comes from the `limits` option of the call when given, else from its environment variable, else from
 * the default below. Exceeding one is a ClipIqaError that names the limit and how to raise it.
 * `readCheckpointFile` reads a model file within `checkpointBytes`, refusing FIFOs and devices.
 */
import { ClipIqaError, errCode } from '../errors.js';
import { formatBytes, parseByteSize, readRegularFile } from '../util/read-file.js';

export interface ReadLimits {
  /** Largest checkpoint file read into memory (bytes). */
  readonly checkpointBytes: number;
  /**
   * What unpickling may allocate for one checkpoint: an estimate of the heap taken by its dicts, lists, strings
   * and numbers, plus an inflated data.pkl. Tensor data is not counted (it stays in the file's bytes).
   */
  readonly pickleBudget: number;
  /** Bytes inflated from deflated zip entries of one checkpoint in all (torch stores them uncompressed). */
  readonly inflateBytes: number;
  /**
   * Bytes that laying non-contiguous tensors out row-major may copy beyond the size of the storages they view.
   * A transposed weight copies at most its own storage; only strides of 0 (an expanded tensor) need more.
   */
  readonly expandBytes: number;
  /** Largest safetensors JSON header (the format allows 100 MB; real ones are kilobytes). */
  readonly headerBytes: number;
}

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

export const DEFAULT_READ_LIMITS: ReadLimits = Object.freeze({
  checkpointBytes: 4 * GiB,
  pickleBudget: 256 * MiB,
  inflateBytes: 4 * GiB,
  expandBytes: 64 * MiB,
  headerBytes: 8 * MiB,
});

/** The environment variable that sets each limit (a byte count, or a size such as `512MiB`). */
export const READ_LIMIT_ENV: Readonly<Record<keyof ReadLimits, string>> = Object.freeze({
  checkpointBytes: 'CLIP_IQA_MAX_CHECKPOINT_BYTES',
  pickleBudget: 'CLIP_IQA_PICKLE_BUDGET',
  inflateBytes: 'CLIP_IQA_MAX_INFLATE_BYTES',
  expandBytes: 'CLIP_IQA_MAX_EXPAND_BYTES',
  headerBytes: 'CLIP_IQA_MAX_HEADER_BYTES',
});

/** The limits in force: each from `overrides`, else its environment variable, else the default. */
export function resolveReadLimits(overrides: Partial<ReadLimits> = {}, env: NodeJS.ProcessEnv = process.env): ReadLimits {
  const out = { ...DEFAULT_READ_LIMITS };
  for (const key of Object.keys(DEFAULT_READ_LIMITS) as (keyof ReadLimits)[]) {
    const given = overrides[key];
    if (given !== undefined) {
      if (!Number.isSafeInteger(given) || given <= 0) {
        throw new ClipIqaError('E_OPTION', `limits.${key} must be a positive whole number of bytes, got ${String(given)}.`);
      }
      out[key] = given;
      continue;
    }
    const text = env[READ_LIMIT_ENV[key]];
    if (text === undefined || text === '') continue;
    const parsed = parseByteSize(text);
    if (parsed === undefined) {
      throw new ClipIqaError('E_OPTION', `${READ_LIMIT_ENV[key]}=${JSON.stringify(text)} is not a size; give bytes, e.g. 1073741824 or 1GiB.`);
    }
    out[key] = parsed;
  }
  return out;
}

/** How to raise a limit, for the end of an error message. */
export function raiseHint(key: keyof ReadLimits): string {
  return `if you trust the file, raise the limit with ${READ_LIMIT_ENV[key]} (or the limits.${key} option)`;
}

/** `limit 256 MiB (pickleBudget)`, for messages. */
export function describeLimit(limits: ReadLimits, key: keyof ReadLimits): string {
  return `${formatBytes(limits[key])} (${key})`;
}

/** A running total that fails with `exceeded()` when it passes `limit`. */
export class Budget {
  #spent = 0;

  constructor(
    readonly limit: number,
    private readonly exceeded: () => ClipIqaError,
  ) {}

  get spent(): number {
    return this.#spent;
  }

  get remaining(): number {
    return Math.max(0, this.limit - this.#spent);
  }

  charge(amount: number): void {
    this.#spent += amount;
    if (this.#spent > this.limit) throw this.exceeded();
  }
}

/**
 * A checkpoint file's bytes: a regular file (not a FIFO, a device or a directory) of at most `maxBytes`.
 * For any reader of model files (checkpoints, CLIP-IQA+ contexts, layout readers).
 */
export async function readCheckpointFile(path: string, maxBytes = resolveReadLimits().checkpointBytes): Promise<Buffer> {
  try {
    return await readRegularFile(path, { maxBytes, code: 'E_WEIGHTS_FORMAT', what: 'a checkpoint', raise: raiseHint('checkpointBytes') });
  } catch (e) {
    if (e instanceof ClipIqaError) throw e;
    const code = errCode(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new ClipIqaError('E_NOT_FOUND', `${path}: no such checkpoint file.`, { cause: e });
    if (code === 'EISDIR') throw new ClipIqaError('E_WEIGHTS_FORMAT', `${path}: is a directory, not a checkpoint file.`, { cause: e });
    throw new ClipIqaError('E_NOT_FOUND', `${path}: cannot read the checkpoint (${(e as Error).message}).`, { cause: e });
  }
}
