import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ClipIqaError } from '../src/errors.js';
import { readSafetensors } from '../src/weights/safetensors.js';
import { fixture } from './helpers/shared.js';

function build(header: Record<string, unknown>, data: Uint8Array, declaredLength?: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('safetensors reader', () => {
  it('reads the fixture model with its metadata and shapes', () => {
    const sd = readSafetensors(readFileSync(fixture('tiny-rn', 'model.safetensors')), 'tiny-rn');
    expect(sd.metadata.format).toBe('pt');
    expect(sd.shape('visual.conv1.weight')).toEqual([2, 3, 3, 3]);
    expect(sd.get('logit_scale').dtype).toBe('float32');
    expect(Math.exp(sd.float32('logit_scale')[0]!)).toBeCloseTo(10, 5);
  });

  it('reads F16, BF16 and integer dtypes', () => {
    const data = new Uint8Array(2 + 2 + 8 + 4);
    const dv = new DataView(data.buffer);
    dv.setUint16(0, 0x3c00, true); // 1.0 in half
    dv.setUint16(2, 0x3fc0, true); // 1.5 in bfloat16
    dv.setBigInt64(4, -7n, true);
    dv.setInt32(12, 42, true);
    const sd = readSafetensors(
      build(
        {
          h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] },
          b: { dtype: 'BF16', shape: [1], data_offsets: [2, 4] },
          l: { dtype: 'I64', shape: [], data_offsets: [4, 12] },
          i: { dtype: 'I32', shape: [1, 1], data_offsets: [12, 16] },
        },
        data,
      ),
    );
    expect(sd.float32('h')[0]).toBe(1);
    expect(sd.float32('b')[0]).toBe(1.5);
    expect(sd.float32('l')[0]).toBe(-7);
    expect(sd.float32('i')[0]).toBe(42);
  });

  it('rejects a truncated file with a clear error', () => {
    const full = readFileSync(fixture('tiny-rn', 'model.safetensors'));
    const cut = full.subarray(0, full.length - 1000);
    expect(() => readSafetensors(cut, 'cut.safetensors')).toThrowError(/cut\.safetensors: .*truncated/);
    expect(() => readSafetensors(full.subarray(0, 5), 'tiny')).toThrowError(ClipIqaError);
  });

  it('rejects a header that points past the end of the file', () => {
    const bytes = build({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8));
    expect(() => readSafetensors(bytes, 'short.safetensors')).toThrowError(/points at bytes 0\.\.16 .* only 8 bytes/);
    const longHeader = build({}, new Uint8Array(0), 1_000_000);
    expect(() => readSafetensors(longHeader, 'h.safetensors')).toThrowError(/runs past the end/);
  });

  it('rejects a size that does not match dtype and shape', () => {
    const bytes = build({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, new Uint8Array(16));
    expect(() => readSafetensors(bytes)).toThrowError(/needs 12/);
  });

  it('names the missing tensor', () => {
    const sd = readSafetensors(build({}, new Uint8Array(0)), 'empty.safetensors');
    expect(() => sd.get('visual.proj')).toThrowError(/empty\.safetensors: the checkpoint has no tensor "visual\.proj"/);
  });
});
