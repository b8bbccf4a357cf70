import type { ClipArchitecture } from '../weights/architecture.js';

/**
 * How the learned positional table of the image tower is used.
 * - `none`: dropped entirely (CLIP-IQA's default for both families); any input size works.
 * - `interpolate`: the whole (grid²+1)×width table resampled along the token axis by 1-D bicubic
 *   interpolation (PyTorch `F.interpolate(..., mode="bicubic", align_corners=False)`), CLS row included.
 * - `fixed`: added as is (standard CLIP); only the native resolution fits.
 */
export type PositionalMode = 'none' | 'interpolate' | 'fixed';
export const POSITIONAL_MODES: readonly PositionalMode[] = ['none', 'interpolate', 'fixed'];

/** Decoded pixels, interleaved RGB (HWC), 8 or 16 bits per sample. */
export interface RawImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array | Uint16Array;
}

/** A batch of same-size images as the image tower takes them: NCHW float32, already normalised. */
export interface PixelBatch {
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  readonly data: Float32Array;
}

/** Row-major (count, dim) features. */
export interface Features {
  readonly count: number;
  readonly dim: number;
  readonly data: Float32Array;
}

/** Per-location features of a ResNet image tower: (batch, height, width, dim). */
export interface DenseFeatures {
  readonly batch: number;
  readonly height: number;
  readonly width: number;
  readonly dim: number;
  readonly data: Float32Array;
}

/** A loaded CLIP checkpoint whose towers run as onnxruntime sessions built once per model. */
export interface ClipEncoder {
  readonly architecture: ClipArchitecture;
  /** exp(logit_scale), read from the checkpoint. */
  readonly logitScale: number;
  /** Normalises decoded images (same size) into the tower's input: /255 (or /65535), CLIP mean and std, NCHW. */
  normalize(images: readonly RawImage[]): Promise<PixelBatch>;
  /** Image features (count = batch). `fixed` on a non-native size is a clear error. */
  encodeImages(pixels: PixelBatch, mode: PositionalMode): Promise<Features>;
  /** ResNet only: each final-map location through the attention pool's value and output projections. */
  encodeDense(pixels: PixelBatch): Promise<DenseFeatures>;
  /** Text features of tokenized rows (each `contextLength` ids, EOT = largest id). */
  encodeTokens(rows: readonly (readonly number[])[]): Promise<Features>;
  /**
   * Text features of token-embedding sequences (learned prompt contexts): `embeddings` holds
   * count × contextLength × textWidth floats; `eot[i]` is the position whose output is pooled.
   */
  encodeEmbeddings(embeddings: Float32Array, count: number, eot: readonly number[]): Promise<Features>;
  /** The token-embedding rows of `ids` as float32, (ids.length, textWidth). */
  tokenEmbeddings(ids: readonly number[]): Float32Array;
  dispose(): Promise<void>;
}
