import { describe, expect, it } from 'vitest';
import { inferArchitecture } from '../src/weights/architecture.js';
import { loadSafetensors } from '../src/weights/safetensors.js';
import { fixture } from './helpers/shared.js';

describe('architecture inference', () => {
  it('derives the tiny ResNet as build_model does', async () => {
    const a = inferArchitecture(await loadSafetensors(fixture('tiny-rn', 'model.safetensors')));
    expect(a).toEqual({
      vision: { family: 'resnet', layers: [1, 2, 1, 1], width: 8, heads: 4, poolWidth: 256, resolution: 64, grid: 2 },
      text: { width: 64, heads: 1, layers: 2, contextLength: 77, vocabSize: 49408, activation: 'quick_gelu' },
      embedDim: 64,
    });
  });

  it('derives the tiny ViT as build_model does', async () => {
    const a = inferArchitecture(await loadSafetensors(fixture('tiny-vit', 'model.safetensors')));
    expect(a.vision).toEqual({ family: 'vit', width: 128, layers: 2, heads: 2, patch: 16, resolution: 64, grid: 4, activation: 'quick_gelu' });
    expect(a.embedDim).toBe(64);
  });
});
