/**
 * The per-image memory estimate (src/model/memory.ts) that the server's 413s and the CLI's default pixel limit rest
 * on: never below what was measured (scripts/image-memory.ts, RN50- and ViT-B/32-shaped random weights), never far
 * above it, and the searches for what fits a budget consistent with it.
 */
import { describe, expect, it } from 'vitest';
import { imageMemory, largestWithin, memoryPixelLimit, pixelsWithin } from '../src/model/memory.js';
import type { ClipArchitecture } from '../src/weights/architecture.js';

const text = { width: 512, heads: 8, layers: 12, contextLength: 77, vocabSize: 49408, activation: 'quick_gelu' } as const;
const RN50: ClipArchitecture = {
  vision: { family: 'resnet', layers: [3, 4, 6, 3], width: 64, heads: 32, poolWidth: 2048, resolution: 224, grid: 7 },
  text,
  embedDim: 1024,
};
const VIT_B32: ClipArchitecture = { vision: { family: 'vit', width: 768, layers: 12, heads: 12, patch: 32, resolution: 224, grid: 7, activation: 'quick_gelu' }, text, embedDim: 512 };

/** Peak RSS over the RSS before one image (bytes), onnxruntime-node 1.30, default runtime options, 2 threads. */
const MEASURED: [ClipArchitecture, 'float32' | 'int8', number, number, boolean, number][] = [
  [RN50, 'float32', 512, 512, false, 53_723_136],
  [RN50, 'float32', 1024, 768, false, 204_947_456],
  [RN50, 'float32', 1024, 1024, false, 297_156_608],
  [RN50, 'float32', 2048, 2048, false, 1_113_321_472],
  [RN50, 'float32', 1024, 1024, true, 551_063_552],
  [RN50, 'float32', 2048, 2048, true, 2_289_672_192],
  [RN50, 'int8', 1024, 1024, false, 138_670_080],
  [RN50, 'int8', 2048, 2048, false, 510_382_080],
  [VIT_B32, 'float32', 512, 512, false, 22_712_320],
  [VIT_B32, 'float32', 1024, 1024, false, 191_381_504],
  [VIT_B32, 'float32', 1536, 1536, false, 702_738_432],
  [VIT_B32, 'float32', 2048, 2048, false, 1_992_146_944],
  [VIT_B32, 'int8', 2048, 2048, false, 1_865_801_728],
];

describe('per-image memory estimate', () => {
  it('is at or above every measurement, and within 1.7× of it', () => {
    for (const [arch, precision, width, height, maps, measured] of MEASURED) {
      const estimate = imageMemory(arch, { width, height }, { precision, maps });
      const what = `${arch.vision.family} ${precision} ${width}×${height}${maps ? ' maps' : ''}`;
      expect(estimate, what).toBeGreaterThanOrEqual(measured);
      expect(estimate / measured, what).toBeLessThan(1.7);
    }
  });

  it('grows linearly for a ResNet and quadratically for a ViT', () => {
    const at = (arch: ClipArchitecture, side: number) => imageMemory(arch, { width: side, height: side });
    expect(at(RN50, 4096) / at(RN50, 2048)).toBeCloseTo(4, 1);
    expect(at(VIT_B32, 4096) / at(VIT_B32, 2048)).toBeGreaterThan(12);
    // The attack: a 4096² image, about 4 GB measured on RN50; over 20 GB on ViT-B/32.
    expect(at(RN50, 4096)).toBeGreaterThan(4e9);
    expect(at(VIT_B32, 4096)).toBeGreaterThan(20e9);
  });

  it('counts what the network sees after a resize, and 16-bit samples', () => {
    const size = { width: 4000, height: 3000 };
    const resized = imageMemory(RN50, size, { network: { width: 1024, height: 768 } });
    expect(resized).toBeLessThan(imageMemory(RN50, size));
    expect(resized).toBeGreaterThan(imageMemory(RN50, { width: 1024, height: 768 }));
    expect(imageMemory(RN50, size, { bitDepth: 16 })).toBeGreaterThan(imageMemory(RN50, size));
  });

  it('finds the largest size of an aspect ratio, and the largest square, within a budget', () => {
    const budget = 1e9;
    const fit = largestWithin(VIT_B32, { width: 4000, height: 3000 }, budget)!;
    expect(fit.width / fit.height).toBeCloseTo(4 / 3, 2);
    expect(imageMemory(VIT_B32, fit)).toBeLessThanOrEqual(budget);
    expect(imageMemory(VIT_B32, { width: fit.width + 40, height: fit.height + 30 })).toBeGreaterThan(budget);
    const square = pixelsWithin(RN50, budget);
    const side = Math.sqrt(square);
    expect(Number.isInteger(side)).toBe(true);
    expect(imageMemory(RN50, { width: side, height: side })).toBeLessThanOrEqual(budget);
    expect(imageMemory(RN50, { width: side + 1, height: side + 1 })).toBeGreaterThan(budget);
    expect(largestWithin(RN50, { width: 10, height: 10 }, 10)).toBeUndefined();
  });

  it('gives the decoder a pixel limit with its reason, capped at the decoder’s own default', () => {
    const limit = memoryPixelLimit(VIT_B32, { bytes: 10e9 });
    expect(limit.limitInputPixels).toBe(pixelsWithin(VIT_B32, 10e9));
    expect(limit.limitReason).toMatch(/the largest image this model can score in 10\.0 GB/);
    expect(memoryPixelLimit(RN50, { bytes: 1e15 }).limitInputPixels).toBe(2 ** 28);
    // With a resize, the network's size is bounded: only decoding grows with the image.
    expect(memoryPixelLimit(VIT_B32, { bytes: 10e9, resize: { maxSide: 1024 } }).limitInputPixels).toBeGreaterThan(limit.limitInputPixels);
  });
});
