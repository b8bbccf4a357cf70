import type { ResNetVision, VitVision } from '../weights/architecture.js';

/** Height and width of the final feature map (ResNet) or patch grid (ViT) for an input size. */
export interface Grid {
  readonly height: number;
  readonly width: number;
}

/** One side through the modified ResNet, with PyTorch's floor at every step. */
function resnetSide(n: number): number {
  let s = Math.floor((n + 2 - 3) / 2) + 1; // conv1: 3×3, stride 2, padding 1 (conv2 and conv3 keep the size)
  s = Math.floor(s / 2); // stem 2×2 average pool, ceil_mode False
  for (let stage = 2; stage <= 4; stage++) s = Math.floor(s / 2); // each later stage opens with a 2×2 average pool
  return s;
}

export function resnetGrid(height: number, width: number): Grid {
  return { height: resnetSide(height), width: resnetSide(width) };
}

export function vitGrid(height: number, width: number, patch: number): Grid {
  return { height: Math.floor(height / patch), width: Math.floor(width / patch) };
}

export function gridOf(vision: ResNetVision | VitVision, height: number, width: number): Grid {
  return vision.family === 'resnet' ? resnetGrid(height, width) : vitGrid(height, width, vision.patch);
}

/** The smallest side that still gives a grid of at least one cell. */
export function minimumSide(vision: ResNetVision | VitVision): number {
  if (vision.family === 'vit') return vision.patch;
  let n = 1;
  while (resnetSide(n) < 1) n++;
  return n;
}

/** Tokens entering the attention pool or transformer: one per grid cell plus the mean/class token. */
export const tokenCount = (grid: Grid): number => grid.height * grid.width + 1;
