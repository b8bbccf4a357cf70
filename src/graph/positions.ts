import { ClipIqaError } from '../errors.js';
import type { PositionalMode } from '../model/types.js';

const f = Math.fround;

/** PyTorch's bicubic kernel constant. */
const A = -0.75;

// PyTorch's cubic_convolution1/2 (UpSample.h), step by step in float32 as the CPU kernel computes them.
const near = (x: number): number => f(f(f(f(f((A + 2) * x) - (A + 3)) * x) * x) + 1); // |x| ≤ 1
const far = (x: number): number => f(f(f(f(f(f(A * x) - 5 * A) * x) + 8 * A) * x) - 4 * A); // 1 < |x| < 2

/** The four tap weights for fractional offset t (get_cubic_upsample_coefficients). */
function cubicWeights(t: number): [number, number, number, number] {
  const u = f(1 - t);
  return [far(f(t + 1)), near(t), near(u), far(f(u + 1))];
}

/**
 * CLIP-IQA's `interpolate` table: the whole (rows, width) positional table resampled to `length` rows by
 * `F.interpolate(pos[None, None], size=(length, width), mode="bicubic", align_corners=False)`.
 * Along the width axis that is the identity (its weights are exactly 0, 1, 0, 0); along the token axis it is
 * 1-D cubic convolution with source index scale·(i + 0.5) − 0.5 (scale = rows / length, not clamped) and
 * neighbours clamped to the table's edge. Arithmetic is float32, in the kernel's order.
 */
export function resamplePositions(table: Float32Array, rows: number, width: number, length: number): Float32Array {
  if (table.length !== rows * width) throw new Error(`positional table of ${table.length} values is not ${rows}×${width}`);
  if (length === rows) return table;
  const out = new Float32Array(length * width);
  const scale = f(rows / length);
  for (let i = 0; i < length; i++) {
    const source = f(f(scale * f(i + 0.5)) - 0.5);
    const base = Math.floor(source);
    const weights = cubicWeights(f(source - base));
    const taps = weights.map((_, j) => Math.min(Math.max(base - 1 + j, 0), rows - 1) * width);
    const row = out.subarray(i * width, (i + 1) * width);
    for (let c = 0; c < width; c++) {
      let acc = f(table[taps[0]! + c]! * weights[0]);
      for (let j = 1; j < 4; j++) acc = f(acc + f(table[taps[j]! + c]! * weights[j]!));
      row[c] = acc;
    }
  }
  return out;
}

/**
 * The positional term for `tokens` tokens under `mode`, or null for `none`. `fixed` demands the table's own
 * token count; `mismatch` words the error when it does not fit.
 */
export function positionalTerm(
  mode: PositionalMode,
  table: Float32Array,
  rows: number,
  width: number,
  tokens: number,
  mismatch: () => string,
): Float32Array | null {
  switch (mode) {
    case 'none':
      return null;
    case 'fixed':
      if (tokens !== rows) throw new ClipIqaError('E_OPTION', mismatch());
      return table;
    case 'interpolate':
      return resamplePositions(table, rows, width, tokens);
    default:
      throw new ClipIqaError('E_OPTION', `unknown positional mode ${JSON.stringify(mode)}; use 'none', 'interpolate' or 'fixed'`);
  }
}
