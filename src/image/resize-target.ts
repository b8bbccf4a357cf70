/** The size a resize policy gives, shared by Node's decoding (sharp) and the browser build's (canvas). */
import type { ResizePolicy } from './decode.js';

/** Target size for a policy; torchvision's `Resize` arithmetic (the other side truncated, at least 1). */
export function resizeTarget(
  size: { readonly width: number; readonly height: number },
  policy: ResizePolicy,
): { width: number; height: number } | undefined {
  const { width: w, height: h } = size;
  const short = Math.min(w, h);
  const long = Math.max(w, h);
  let newShort: number;
  let newLong: number;
  if ('shorterSide' in policy) {
    if (short === policy.shorterSide || (short < policy.shorterSide && !policy.upscale)) return undefined;
    newShort = policy.shorterSide;
    newLong = Math.max(1, Math.trunc((policy.shorterSide * long) / short));
  } else {
    if (long === policy.maxSide || (long < policy.maxSide && !policy.upscale)) return undefined;
    newLong = policy.maxSide;
    newShort = Math.max(1, Math.trunc((policy.maxSide * short) / long));
  }
  return w <= h ? { width: newShort, height: newLong } : { width: newLong, height: newShort };
}
