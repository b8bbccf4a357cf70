/**
 * What scoring one image costs in memory, estimated from the model's architecture and the image's size: known from
 * the image header, before a pixel is decoded, so that an image the machine cannot afford is refused up front
 * instead of being decoded and then failing (or taking the process down) inside onnxruntime.
 *
 * CLIP-IQA scores at native resolution, so the cost grows with the image, and differently per family:
 *
 * - ResNet: linear in the pixels. The largest activations are the stem's last convolution (width channels at half
 *   the input's side) and the first stage's output (4·width channels at a quarter): `width` bytes per input pixel
 *   each in float32. onnxruntime keeps a few such tensors alive at once (a block's input, its branch and its
 *   shortcut) and its arena grows in doubling regions: measured, the peak is 3.2–4.8 times that tensor.
 * - ViT: quadratic in the pixels. Every attention layer holds heads × L² scores and their softmax (L = patches + 1);
 *   at 2048² ViT-B/32 has L = 4097 and those two are 1.6 GB.
 *
 * The coefficients below were fitted to measurements (`scripts/image-memory.ts`: RN50- and ViT-B/32-shaped random
 * weights, onnxruntime-node 1.30, default runtime options, peak RSS of a fresh process minus its RSS before the
 * image) and rounded up, so that the estimate is a little above every measurement, never below: RN50 float32 at
 * 2048² measured 306 bytes per pixel (estimate 335), ViT-B/32 1.90 GB (estimate 2.1 GB). The README's "Serving"
 * section has the table.
 *
 * Each onnxruntime session has its own arena, which keeps its peak between runs: per-region maps run the ResNet
 * trunk a second time in the dense graph, so they count twice.
 */
import { type Grid, tokenCount, vitGrid } from '../graph/geometry.js';
import { DEFAULT_LIMIT_INPUT_PIXELS, type DecodeOptions, resizeTarget } from '../image/decode.js';
import type { Precision } from '../runtime/options.js';
import type { ClipArchitecture } from '../weights/architecture.js';

/** Decoded RGB (8-bit) and its normalised float32 copy, per pixel; 16-bit images add three more bytes per pixel. */
const PIXEL_BYTES = 3 + 12;
const SIXTEEN_BIT_EXTRA = 3;
/** Peak of one ResNet image-tower run, in units of its largest activation (`width` bytes per pixel). */
const RESNET_FLOAT32 = 5;
/** The int8 trunk's activations are bytes, not floats: measured 1.8 (RN50, 1024² and 2048²). */
const RESNET_INT8 = 2.25;
/** ViT: attention scores and their softmax (×2) with the arena's slack; the int8 ViT keeps attention in float32. */
const VIT_ATTENTION = 2.2;
/** ViT: token-wide float32 tensors alive at once (q, k, v, the MLP's 4×-wide hidden layer and its activation, …). */
const VIT_TOKENS = 24;
const FLOAT = 4;

export interface ImageMemoryOptions {
  /** Arithmetic of the image tower; default float32. */
  readonly precision?: Precision;
  /** Bits per sample of the decoded image: 8 (default) or 16. */
  readonly bitDepth?: number;
  /** Per-region score maps (ResNet): the dense graph runs the trunk again, in a session of its own. */
  readonly maps?: boolean;
  /** The size the network sees, when decoding resizes the image (default: the decoded size). */
  readonly network?: Grid;
}

/** Bytes that scoring one `size` image holds at its peak, beyond the loaded model: decoded pixels plus activations. */
export function imageMemory(arch: ClipArchitecture, size: Grid, options: ImageMemoryOptions = {}): number {
  const decoded = size.width * size.height * (3 + (options.bitDepth === 16 ? SIXTEEN_BIT_EXTRA : 0));
  const net = options.network ?? size;
  const pixels = net.width * net.height;
  const vision = arch.vision;
  let tower: number;
  if (vision.family === 'resnet') {
    const run = (options.precision === 'int8' ? RESNET_INT8 : RESNET_FLOAT32) * vision.width * pixels;
    tower = options.maps ? 2 * run : run;
  } else {
    const tokens = tokenCount(vitGrid(net.height, net.width, vision.patch));
    tower = VIT_ATTENTION * vision.heads * tokens * tokens * FLOAT + VIT_TOKENS * tokens * vision.width * FLOAT;
  }
  return Math.ceil(decoded + (PIXEL_BYTES - 3) * pixels + tower);
}

/** An image size, and what the network sees of it (a resize), for the searches below. */
type NetworkOf = (size: Grid) => Grid | undefined;

/**
 * The largest size of `size`'s aspect ratio whose estimate fits in `bytes`, or undefined when not even the
 * smallest does: what to downscale an image to. `network` maps a decoded size to the size the network sees.
 */
export function largestWithin(
  arch: ClipArchitecture,
  size: Grid,
  bytes: number,
  options: Omit<ImageMemoryOptions, 'network'> & { network?: NetworkOf } = {},
): Grid | undefined {
  const long = Math.max(size.width, size.height);
  const scaled = (side: number): Grid => ({
    width: Math.max(1, Math.floor((size.width * side) / long)),
    height: Math.max(1, Math.floor((size.height * side) / long)),
  });
  const fits = (side: number) => {
    const s = scaled(side);
    return imageMemory(arch, s, { ...options, network: options.network?.(s) }) <= bytes;
  };
  // Every estimate grows with the side; 2^16 is beyond any image worth decoding (libvips' limit is 2^31 pixels).
  let hi = 1 << 16;
  if (fits(hi)) return scaled(hi);
  let lo = 0;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo === 0 ? undefined : scaled(lo);
}

/** The largest width×height of a square image whose estimate fits in `bytes` (0 if none): a pixel limit for headers. */
export function pixelsWithin(arch: ClipArchitecture, bytes: number, options: Omit<ImageMemoryOptions, 'network'> & { network?: NetworkOf } = {}): number {
  const side = largestWithin(arch, { width: 1, height: 1 }, bytes, options);
  return side ? side.width * side.height : 0;
}

/** Share of the available memory a model's default pixel limit is sized to (the rest: decoding ahead, the system). */
const DEFAULT_SHARE = 0.5;

/**
 * The decode options' pixel limit for images this model can score in `bytes` of memory (default: half of what is
 * available now), with the reason for messages; never above the decoder's own default.
 */
export function memoryPixelLimit(
  arch: ClipArchitecture,
  options: { readonly precision?: Precision; readonly resize?: DecodeOptions['resize']; readonly bytes?: number } = {},
): { limitInputPixels: number; limitReason: string } {
  const bytes = options.bytes ?? Math.floor(availableMemory() * DEFAULT_SHARE);
  const { resize } = options;
  const network = resize ? (size: Grid) => resizeTarget(size, resize) : undefined;
  const pixels = Math.min(DEFAULT_LIMIT_INPUT_PIXELS, Math.max(1, pixelsWithin(arch, bytes, { precision: options.precision, network })));
  return {
    limitInputPixels: pixels,
    limitReason: `the largest image this model can score in ${formatBytes(bytes)}, half the memory available`,
  };
}

/** Memory this process could still use, in bytes: what the system, or the container's cgroup limit, has available. */
export const availableMemory = (): number => process.availableMemory();

/** `n` bytes in the units people read: "3.2 GB", "512 MB". */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${Math.round(n / 1e6)} MB`;
  return `${Math.max(1, Math.round(n / 1e3))} kB`;
}
