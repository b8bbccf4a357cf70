import { ClipIqaError } from '../errors.js';
import type { StateDict } from './state-dict.js';

/**
 * The transformer MLP's activation. OpenAI's CLIP (and open_clip's `quick_gelu` models) use QuickGELU,
 * x·sigmoid(1.702·x); LAION's and DataComp's OpenCLIP models use exact GELU, x·Φ(x) with the error function.
 */
export type Activation = 'quick_gelu' | 'gelu';
export const ACTIVATIONS: readonly Activation[] = ['quick_gelu', 'gelu'];
/** Every CLIP LayerNorm's epsilon unless a config says otherwise. */
export const DEFAULT_LAYER_NORM_EPS = 1e-5;

export interface ResNetVision {
  readonly family: 'resnet';
  /** Bottleneck blocks per stage, e.g. [3, 4, 6, 3] for RN50. */
  readonly layers: readonly [number, number, number, number];
  /** Stem width; stage s has width·2^(s-1) planes and 4× that many output channels. */
  readonly width: number;
  /** Attention-pool heads: width·32/64. */
  readonly heads: number;
  /** Channels entering the attention pool: width·32. */
  readonly poolWidth: number;
  /** The resolution the positional table was trained for (RN50: 224, grid 7). */
  readonly resolution: number;
  readonly grid: number;
}

export interface VitVision {
  readonly family: 'vit';
  readonly width: number;
  readonly layers: number;
  readonly heads: number;
  readonly patch: number;
  readonly resolution: number;
  readonly grid: number;
  readonly activation: Activation;
  /** LayerNorm epsilon when it is not 1e-5 (absent: 1e-5). */
  readonly layerNormEps?: number;
}

export interface TextTower {
  readonly width: number;
  readonly heads: number;
  readonly layers: number;
  readonly contextLength: number;
  readonly vocabSize: number;
  readonly activation: Activation;
  /** LayerNorm epsilon when it is not 1e-5 (absent: 1e-5). */
  readonly layerNormEps?: number;
}

export interface ClipArchitecture {
  readonly vision: ResNetVision | VitVision;
  readonly text: TextTower;
  /** The joint embedding dimension D. */
  readonly embedDim: number;
  /** Pixel mean and standard deviation (RGB) when they are not CLIP's (a few OpenCLIP models use 0.5, 0.5). */
  readonly normalization?: { readonly mean: readonly number[]; readonly std: readonly number[] };
}

function countIndices(sd: StateDict, prefix: string, position: number): number {
  const seen = new Set<string>();
  for (const k of sd.keys()) if (k.startsWith(prefix)) seen.add(k.split('.')[position]!);
  return seen.size;
}

function dim(sd: StateDict, name: string, axis: number): number {
  const shape = sd.shape(name);
  const d = shape[axis < 0 ? shape.length + axis : axis];
  if (d === undefined) {
    throw new ClipIqaError('E_ARCHITECTURE', `${sd.source}: tensor "${name}" has shape [${shape.join(', ')}], which has no axis ${axis}`);
  }
  return d;
}

function gridOf(sd: StateDict, name: string): number {
  const rows = dim(sd, name, 0);
  const grid = Math.round(Math.sqrt(rows - 1));
  if (grid * grid + 1 !== rows) {
    throw new ClipIqaError('E_ARCHITECTURE', `${sd.source}: "${name}" has ${rows} rows; a CLIP positional table has grid²+1`);
  }
  return grid;
}

/**
 * The architecture a state dict describes, derived as OpenAI's `build_model` derives it: heads of 64 channels,
 * QuickGELU and LayerNorm epsilon 1e-5 unless `activation` says otherwise (a config file beside the weights
 * states them; see weights/layout.ts).
 */
export function inferArchitecture(sd: StateDict, activation: Activation = 'quick_gelu'): ClipArchitecture {
  let vision: ResNetVision | VitVision;
  if (sd.has('visual.proj')) {
    const width = dim(sd, 'visual.conv1.weight', 0);
    const patch = dim(sd, 'visual.conv1.weight', -1);
    const grid = gridOf(sd, 'visual.positional_embedding');
    let layers = 0;
    for (const k of sd.keys()) if (k.startsWith('visual.') && k.endsWith('.attn.in_proj_weight')) layers++;
    vision = { family: 'vit', width, layers, heads: Math.floor(width / 64) || 1, patch, resolution: patch * grid, grid, activation };
  } else if (sd.has('visual.layer1.0.conv1.weight')) {
    const layers = [1, 2, 3, 4].map((s) => countIndices(sd, `visual.layer${s}.`, 2)) as [number, number, number, number];
    const width = dim(sd, 'visual.layer1.0.conv1.weight', 0);
    const grid = gridOf(sd, 'visual.attnpool.positional_embedding');
    vision = { family: 'resnet', layers, width, heads: Math.floor((width * 32) / 64), poolWidth: width * 32, resolution: grid * 32, grid };
    if (layers.some((n) => n === 0)) {
      throw new ClipIqaError('E_ARCHITECTURE', `${sd.source}: ResNet stages have [${layers.join(', ')}] blocks; every stage needs at least one`);
    }
  } else {
    throw new ClipIqaError(
      'E_ARCHITECTURE',
      `${sd.source}: neither "visual.proj" (ViT) nor "visual.layer1.0.conv1.weight" (ResNet) is present; ` +
        'this is not a CLIP image tower in the OpenAI layout.',
    );
  }
  const textWidth = dim(sd, 'ln_final.weight', 0);
  const text: TextTower = {
    width: textWidth,
    heads: Math.floor(textWidth / 64) || 1,
    layers: countIndices(sd, 'transformer.resblocks.', 2),
    contextLength: dim(sd, 'positional_embedding', 0),
    vocabSize: dim(sd, 'token_embedding.weight', 0),
    activation,
  };
  return { vision, text, embedDim: dim(sd, 'text_projection', 1) };
}

const ACTIVATION_NAMES: Record<Activation, string> = { quick_gelu: 'QuickGELU', gelu: 'GELU' };

/** A one-line description, e.g. "ResNet [3,4,6,3] width 64 @224, text 512×12, embed 1024, QuickGELU". */
export function describeArchitecture(a: ClipArchitecture): string {
  const v = a.vision;
  const vision =
    v.family === 'resnet'
      ? `ResNet [${v.layers.join(',')}] width ${v.width} @${v.resolution}`
      : `ViT-${v.width}/${v.patch} ${v.layers} layers @${v.resolution}`;
  // A ResNet image tower has no transformer MLP: only the text tower's activation matters there.
  const acts = new Set([a.text.activation, ...(v.family === 'vit' ? [v.activation] : [])]);
  const act =
    acts.size === 1 ? ACTIVATION_NAMES[a.text.activation] : `text ${ACTIVATION_NAMES[a.text.activation]}, image ${ACTIVATION_NAMES[(v as VitVision).activation]}`;
  return `${vision}, text ${a.text.width}×${a.text.layers}, embed ${a.embedDim}, ${act}`;
}
