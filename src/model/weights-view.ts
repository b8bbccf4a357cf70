/** Weights as the encoder takes them (no I/O: the browser build uses this too; model-weights.ts adds the caches). */
import { scalarValue } from '../tensor.js';
import type { ClipArchitecture } from '../weights/architecture.js';
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
