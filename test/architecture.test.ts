import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { inferArchitecture } from '../src/weights/architecture.js';
import { loadSafetensors } from '../src/weights/safetensors.js';
import { describeEachFixtureSet } from './helpers/shared.js';

interface Config {
  embed_dim: number;
  width: number;
  layers?: number[];
  vision_layers?: number;
  patch?: number;
  resolution: number;
  text_width: number;
  text_layers: number;
}

describeEachFixtureSet(({ path }) => {
  const config = (model: string): Config => (JSON.parse(readFileSync(path(model, 'expected.json'), 'utf8')) as { config: Config }).config;
  // OpenAI's build_model: width // 64 heads (the narrow fixture towers get one), a ResNet pool of width·32 channels.
  const heads = (width: number): number => Math.floor(width / 64) || 1;

  describe('architecture inference', () => {
    it('derives the tiny ResNet as build_model does', async () => {
      const c = config('tiny-rn');
      const a = inferArchitecture(await loadSafetensors(path('tiny-rn', 'model.safetensors')));
      expect(a).toEqual({
        vision: { family: 'resnet', layers: c.layers, width: c.width, heads: c.width / 2, poolWidth: c.width * 32, resolution: c.resolution, grid: c.resolution / 32 },
        text: { width: c.text_width, heads: heads(c.text_width), layers: c.text_layers, contextLength: 77, vocabSize: 49408, activation: 'quick_gelu' },
        embedDim: c.embed_dim,
      });
    });

    it('derives the tiny ViT as build_model does', async () => {
      const c = config('tiny-vit');
      const a = inferArchitecture(await loadSafetensors(path('tiny-vit', 'model.safetensors')));
      expect(a.vision).toEqual({
        family: 'vit',
        width: c.width,
        layers: c.vision_layers,
        heads: heads(c.width),
        patch: c.patch,
        resolution: c.resolution,
        grid: c.resolution / c.patch!,
        activation: 'quick_gelu',
      });
      expect(a.embedDim).toBe(c.embed_dim);
    });
  });
});
