import { describe, expect, test } from 'vitest';
import { ClipIqaError } from '../src/errors.js';
import { positionalTerm, resamplePositions } from '../src/graph/positions.js';

// The `interpolate` positional table: PyTorch's bicubic F.interpolate along the token axis (A = −0.75,
// half-pixel source index, edge-clamped neighbours). End-to-end parity is in encoder-parity.test.ts;
// these pin the resampler's own properties.

const table = (rows: number, width: number, f: (r: number, c: number) => number): Float32Array =>
  Float32Array.from({ length: rows * width }, (_, i) => f(Math.floor(i / width), i % width));

describe('resamplePositions', () => {
  test('the same length returns the table itself', () => {
    const t = table(5, 3, (r, c) => r * 10 + c);
    expect(resamplePositions(t, 5, 3, 5)).toBe(t);
  });

  test('agrees with the textbook kernel W(src − k) over edge-clamped rows, in float64', () => {
    // Keys' kernel as usually written, evaluated at the distance from the source coordinate to each row.
    const A = -0.75;
    const W = (d: number): number => {
      const x = Math.abs(d);
      if (x <= 1) return (A + 2) * x ** 3 - (A + 3) * x ** 2 + 1;
      if (x < 2) return A * x ** 3 - 5 * A * x ** 2 + 8 * A * x - 4 * A;
      return 0;
    };
    const rows = 50;
    const t = table(rows, 3, (r, c) => Math.sin(r * 0.7 + c) + 0.01 * r * r);
    for (const length of [5, 17, 37, 101, 769]) {
      const out = resamplePositions(t, rows, 3, length);
      for (let i = 0; i < length; i++) {
        const src = (rows / length) * (i + 0.5) - 0.5;
        for (let c = 0; c < 3; c++) {
          let v = 0;
          for (let k = Math.floor(src) - 1; k <= Math.floor(src) + 2; k++) v += W(src - k) * t[Math.min(Math.max(k, 0), rows - 1) * 3 + c]!;
          // float32 arithmetic against float64: a few ulps.
          expect(Math.abs(out[i * 3 + c]! - v)).toBeLessThanOrEqual(4e-6 * Math.max(1, Math.abs(v)));
        }
      }
    }
  });

  test('a constant table stays constant (weights sum to one, edge taps clamped)', () => {
    const out = resamplePositions(table(5, 4, () => 0.25), 5, 4, 13);
    for (const v of out) expect(v).toBeCloseTo(0.25, 6);
  });

  test('hand-computed value: 5 rows to 3 (scale 5/3)', () => {
    // Row 0: source 5/3·0.5 − 0.5 = 1/3, floor 0, t = 1/3; taps rows −1→0, 0, 1, 2.
    const t = table(5, 1, (r) => [1, 2, 4, 8, 16][r]!);
    const A = -0.75;
    const near = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1;
    const far = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    const x = 1 / 3;
    const expected = far(x + 1) * 1 + near(x) * 1 + near(1 - x) * 2 + far(2 - x) * 4;
    expect(resamplePositions(t, 5, 1, 3)[0]!).toBeCloseTo(expected, 5);
  });
});

describe('positionalTerm', () => {
  const t = table(5, 2, (r, c) => r + c);
  test("'none' adds nothing; 'fixed' returns the table; 'interpolate' resamples", () => {
    expect(positionalTerm('none', t, 5, 2, 9, () => '')).toBeNull();
    expect(positionalTerm('fixed', t, 5, 2, 5, () => '')).toBe(t);
    expect(positionalTerm('interpolate', t, 5, 2, 9, () => '')!.length).toBe(18);
  });
  test("'fixed' with another token count and unknown modes are E_OPTION errors", () => {
    expect(() => positionalTerm('fixed', t, 5, 2, 7, () => 'the image is 96×80')).toThrow(ClipIqaError);
    expect(() => positionalTerm('fixed', t, 5, 2, 7, () => 'the image is 96×80')).toThrow('the image is 96×80');
    // @ts-expect-error an invalid mode from untyped callers
    expect(() => positionalTerm('bilinear', t, 5, 2, 7, () => '')).toThrow(/unknown positional mode/);
  });
});
