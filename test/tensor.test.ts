import { describe, expect, it } from 'vitest';
import { floatToHalf, halfToFloat, toFloat32 } from '../src/tensor.js';

describe('float16 and bfloat16 widening', () => {
  it('widens every float16 bit pattern exactly and round-trips through floatToHalf', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const wide = toFloat32({ dtype: 'float16', shape: [65536], data: all });
    for (let h = 0; h < 65536; h++) {
      const v = wide[h]!;
      expect(Object.is(v, halfToFloat(h))).toBe(true);
      if (!Number.isNaN(v)) expect(floatToHalf(v)).toBe(h);
    }
    expect([wide[0x3c00], wide[0xc000], wide[0x0001], wide[0x7c00], wide[0xfc00]]).toEqual([1, -2, 2 ** -24, Infinity, -Infinity]);
    expect(Number.isNaN(wide[0x7e00]!)).toBe(true);
  });

  it('rounds to nearest even when narrowing, and widens bfloat16 by its top bits', () => {
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // halfway, ties to even
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(floatToHalf(70000)).toBe(0x7c00); // overflow to infinity
    expect(toFloat32({ dtype: 'bfloat16', shape: [2], data: new Uint16Array([0x3fc0, 0xc080]) })).toEqual(new Float32Array([1.5, -4]));
  });
});
