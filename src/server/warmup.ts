/**
 * Builds a model's onnxruntime sessions before the first request: each is built on first use (seconds for a large
 * model), and a request should not pay for it. A mid-grey image at the model's native size goes through everything
 * the routes may ask for: all attributes, the ensemble, CLIP-IQA+ when loaded, score maps on ResNets, 16-bit input.
 */
import type { Engine } from './options.js';

export async function warmUp(engine: Pick<Engine, 'architecture' | 'score'>): Promise<void> {
  const size = engine.architecture.vision.resolution;
  const resnet = engine.architecture.vision.family === 'resnet';
  await engine.score({ width: size, height: size, data: new Uint8Array(size * size * 3).fill(128) }, { attributes: 'all', ensemble: true, maps: resnet ? ['quality'] : [] });
  await engine.score({ width: size, height: size, data: new Uint16Array(size * size * 3).fill(32768) }, { attributes: 'quality', plus: false });
}
