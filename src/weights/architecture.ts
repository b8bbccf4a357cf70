import { ClipIqaError } from '../errors.js';
import type { StateDict } from './state-dict.js';

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
}

export interface TextTower {
  readonly width: number;
  readonly heads: number;
  readonly layers: number;
  readonly contextLength: number;
  readonly vocabSize: number;
}

export interface ClipArchitecture {
  readonly vision: ResNetVision | VitVision;
  readonly text: TextTower;
  /** The joint embedding dimension D. */
  readonly embedDim: number;
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

/** The architecture a state dict describes, derived as OpenAI's `build_model` derives it. */
export function inferArchitecture(sd: StateDict): ClipArchitecture {
  let vision: ResNetVision | VitVision;
  if (sd.has('visual.proj')) {
    const width = dim(sd, 'visual.conv1.weight', 0);
    const patch = dim(sd, 'visual.conv1.weight', -1);
    const grid = gridOf(sd, 'visual.positional_embedding');
    let layers = 0;
    for (const k of sd.keys()) if (k.startsWith('visual.') && k.endsWith('.attn.in_proj_weight')) layers++;
    vision = { family: 'vit', width, layers, heads: Math.floor(width / 64) || 1, patch, resolution: patch * grid, grid };
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
  };
  return { vision, text, embedDim: dim(sd, 'text_projection', 1) };
}

/** A one-line description, e.g. "ResNet [3,4,6,3] width 64 @224, text 512×12, embed 1024". */
export function describeArchitecture(a: ClipArchitecture): string {
  const v = a.vision;
  const vision =
    v.family === 'resnet'
      ? `ResNet [${v.layers.join(',')}] width ${v.width} @${v.resolution}`
      : `ViT-${v.width}/${v.patch} ${v.layers} layers @${v.resolution}`;
  return `${vision}, text ${a.text.width}×${a.text.layers}, embed ${a.embedDim}`;
}
