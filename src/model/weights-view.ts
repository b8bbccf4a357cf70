/** Weights as the encoder takes them (no I/O: the browser build uses this too; model-weights.ts adds the caches). */
import { type Tensor, scalarValue, toFloat32 } from '../tensor.js';
import type { ClipArchitecture, TextTower } from '../weights/architecture.js';
import type { StateDict } from '../weights/state-dict.js';

export interface ModelWeights {
  /** Names the checkpoint in messages. */
  readonly source: string;
  readonly architecture: ClipArchitecture;
  /** The checkpoint's `logit_scale` (a log), as stored. */
  readonly logitScale: number;
  /** The image tower's positional table (attention pool for ResNets), float32, (grid² + 1) rows. */
  readonly positions: Float32Array;
  /** The OpenAI-layout weights, read on the first call. */
  stateDict(): Promise<StateDict>;
  /** The weights when they have been read. */
  readonly loaded: StateDict | undefined;
}

export function positionsName(architecture: ClipArchitecture): string {
  return architecture.vision.family === 'resnet' ? 'visual.attnpool.positional_embedding' : 'visual.positional_embedding';
}

/** Weights already in memory. */
export function weightsOf(sd: StateDict, architecture: ClipArchitecture): ModelWeights {
  let positions: Float32Array | undefined;
  return {
    source: sd.source,
    architecture,
    logitScale: scalarValue(sd.get('logit_scale')),
    // Widened when first asked for, as a state dict built for one tower may lack it.
    get positions() {
      return (positions ??= sd.float32(positionsName(architecture)));
    },
    stateDict: () => Promise.resolve(sd),
    loaded: sd,
  };
}

// -- token embeddings ---------------------------------------------------------------------------------------------

/**
 * Token embedding rows, float32, as `toFloat32` widens them from the stored dtype. A prompt needs a few rows of a
 * table of 25 M values (RN50: a quarter of the checkpoint), so the text graph's cache entry keeps the table as stored
 * (`tokens-<dtype>.bin`, raw little-endian rows), and a run whose text graph comes from the cache reads just the rows
 * it needs from there instead of the whole checkpoint.
 */
export interface TokenTable {
  /** The rows of `ids` (each checked to be in the vocabulary), (ids.length, width). */
  rows(ids: readonly number[]): Float32Array;
  close(): Promise<void>;
}

export const TOKEN_EMBEDDING = 'token_embedding.weight';

/** Widens `count` rows, each found by `row(id)` in the stored dtype, reading each distinct id once (padding repeats). */
export function widenRows(ids: readonly number[], width: number, row: (id: number) => Tensor): Float32Array {
  const out = new Float32Array(ids.length * width);
  const seen = new Map<number, number>();
  ids.forEach((id, i) => {
    const first = seen.get(id);
    if (first !== undefined) out.copyWithin(i * width, first * width, (first + 1) * width);
    else {
      out.set(toFloat32(row(id)), i * width);
      seen.set(id, i);
    }
  });
  return out;
}

/** The table of weights in memory. */
export function tokenTableOf(sd: StateDict, text: Pick<TextTower, 'width' | 'vocabSize'>): TokenTable {
  const table = sd.get(TOKEN_EMBEDDING);
  const { width } = text;
  return {
    // Row by row: the whole float16 table widened would hold 100 MB (RN50) for the few rows prompts use.
    rows: (ids) => widenRows(ids, width, (id) => ({ dtype: table.dtype, shape: [width], data: table.data.subarray(id * width, (id + 1) * width) })),
    close: () => Promise.resolve(),
  };
}
