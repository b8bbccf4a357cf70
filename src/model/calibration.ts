/**
 * Activation ranges for the int8 ResNet trunk, measured by running the float32 trunk on calibration images.
 *
 * Static int8 needs one range per activation tensor, fixed before the image is seen. Calibrating on the user's
 * own images would make every score depend on which images came first, so the library calibrates on four
 * photographs of its own (calibration-images.ts: a portrait, a cat, a cup, a launch; public domain / CC0),
 * the same every time: the same model always gets the same ranges and the same scores. Synthetic pictures
 * ("dead leaves" with fractal texture) were tried first and set ranges at about half of what photographs
 * reach in the deeper layers (the trunk's feature cosine fell from 0.998 to 0.978 on held-out photographs).
 * Each activation's range is the widest seen over the photographs: clipping outliers (quantiles 1e-5, 1e-4,
 * 1e-3) or averaging the images' ranges measured worse on held-out photographs (trunk feature cosine
 * 0.9992 with the plain maximum against 0.993–0.998).
 */
import { createHash } from 'node:crypto';
import { type DecodedImage, decodeImage } from '../image/decode.js';
import type { ActivationRange } from '../graph/quantize.js';
import type { RuntimeOptions } from '../runtime/options.js';
import { OrtSession } from '../runtime/session.js';
import { float32Tensor } from '../runtime/tensors.js';
import type { ResNetVision } from '../weights/architecture.js';
import type { StateDict } from '../weights/state-dict.js';
import { CALIBRATION_JPEGS } from './calibration-images.js';
import type { PixelBatch } from './types.js';

/** Names this calibration (photographs and method): cached ranges of another calibration are never reused. */
export const CALIBRATION_ID = `int8-ranges-${createHash('sha256').update('max-of-ranges,clip 0,v1;').update(CALIBRATION_JPEGS.join(',')).digest('hex').slice(0, 12)}`;

export interface CalibrationOptions {
  /** The share of each activation's values left outside its range, at each end (default 0: the full range). */
  readonly clip?: number;
  /** Calibrate on these images instead of the embedded photographs (for experiments; scores then depend on them). */
  readonly pixels?: readonly PixelBatch[];
  /** How the images' ranges combine: the widest (default) or their mean. */
  readonly combine?: 'mean' | 'max';
}

/** The calibration photographs, decoded (the same every time); the encoder normalises them as any image. */
export async function calibrationPhotographs(): Promise<DecodedImage[]> {
  const out: DecodedImage[] = [];
  for (const jpeg of CALIBRATION_JPEGS) out.push(await decodeImage(Buffer.from(jpeg, 'base64'), { name: 'calibration photograph' }));
  return out;
}

/** Values below which a share `q` of `data` lies, for q = clip and 1 − clip, by a 4096-bin histogram. */
export function clippedRange(data: Float32Array, clip: number): ActivationRange {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!(max > min) || clip <= 0) return { min, max };
  const bins = 4096;
  const hist = new Float64Array(bins);
  const scale = bins / (max - min);
  for (let i = 0; i < data.length; i++) hist[Math.min(bins - 1, Math.floor((data[i]! - min) * scale))]!++;
  const cut = clip * data.length;
  let lo = min;
  let hi = max;
  for (let i = 0, acc = 0; i < bins; i++) {
    acc += hist[i]!;
    if (acc > cut) {
      lo = min + i / scale;
      break;
    }
  }
  for (let i = bins - 1, acc = 0; i >= 0; i--) {
    acc += hist[i]!;
    if (acc > cut) {
      hi = min + (i + 1) / scale;
      break;
    }
  }
  // A range that starts at the minimum (ReLU outputs: exactly 0) keeps it.
  return { min: lo <= min + 1 / scale ? min : lo, max: hi };
}

/** Per-activation ranges of the ResNet trunk over normalised calibration images (batches of one). */
export async function calibrateResNet(
  sd: StateDict,
  vision: ResNetVision,
  embedDim: number,
  runtime: RuntimeOptions,
  images: readonly PixelBatch[],
  options: CalibrationOptions = {},
): Promise<Map<string, ActivationRange>> {
  const clip = options.clip ?? 0;
  const widest = (options.combine ?? 'max') === 'max';
  // The graph builders are loaded when a graph is built (a cached int8 graph needs only CALIBRATION_ID).
  const { TAP_PREFIX, buildResNet } = await import('../graph/resnet.js');
  const model = buildResNet(sd, vision, embedDim, { output: 'taps', positions: false }).serialize({ externalMinBytes: runtime.externalMinBytes });
  const session = await OrtSession.create('calibration', model, { ...runtime, precision: 'float32' });
  // The widest range, or the sum of the ranges until it is divided into their mean.
  const ranges = new Map<string, ActivationRange>();
  try {
    for (const img of images) {
      const out = await session.run({ pixels: float32Tensor(img.data, [1, 3, img.height, img.width]) });
      for (const [name, tensor] of Object.entries(out)) {
        if (!name.startsWith(TAP_PREFIX)) continue;
        const r = clippedRange(tensor.data as Float32Array, clip);
        const key = name.slice(TAP_PREFIX.length);
        const acc = ranges.get(key) ?? { min: 0, max: 0 };
        ranges.set(key, widest ? { min: Math.min(acc.min, r.min), max: Math.max(acc.max, r.max) } : { min: acc.min + r.min, max: acc.max + r.max });
      }
    }
  } finally {
    await session.dispose();
  }
  if (widest) return ranges;
  const n = images.length;
  return new Map([...ranges].map(([k, v]) => [k, { min: v.min / n, max: v.max / n }]));
}
