/** The `run` record of the CLI's outputs: what produced the numbers, so that results can be trusted later. */
import type { ClipIqa } from '../api.js';
import { DEFAULT_DECODE_OPTIONS, type DecodeOptions, type ResizePolicy } from '../image/decode.js';
import { PACKAGE } from '../util/package.js';
import { type ModelFlags, decodeOptions } from './model-options.js';
import type { RunInfo } from './output.js';

/** `short:512`, `max:1024+`, or null for native resolution. */
export function resizeText(resize: ResizePolicy | undefined): string | null {
  if (!resize) return null;
  const text = 'shorterSide' in resize ? `short:${resize.shorterSide}` : `max:${resize.maxSide}`;
  return resize.upscale ? `${text}+` : text;
}

/** What `runInfo` reads of a loaded model (a ClipIqa, or what a queue worker recorded of one). */
export type RunModel = Pick<ClipIqa, 'name' | 'modelSha256' | 'maxPixels' | 'describe'> & { readonly context?: { readonly source: string } };

export function runInfo(iqa: RunModel, flags: ModelFlags, positional: string, created: Date): RunInfo {
  const given = Object.fromEntries(Object.entries(decodeOptions(flags)).filter(([, v]) => v !== undefined));
  const decode: Required<Omit<DecodeOptions, 'resize' | 'name' | 'limitReason'>> & DecodeOptions = { ...DEFAULT_DECODE_OPTIONS, ...given };
  const bg = decode.background;
  const background = typeof bg === 'string' ? bg : `rgb(${bg.r},${bg.g},${bg.b})`;
  return {
    tool: 'clip-iqa',
    version: PACKAGE.version,
    model: iqa.name,
    model_sha256: iqa.modelSha256,
    architecture: iqa.describe(),
    precision: flags.precision ?? 'float32',
    positional,
    noisiness: flags.noisiness ?? 'noisy',
    resize: resizeText(decode.resize),
    decode: { orientation: decode.orientation, alpha: decode.alpha, background, icc: decode.icc, max_pixels: iqa.maxPixels },
    plus: iqa.context?.source ?? null,
    created: created.toISOString(),
  };
}
