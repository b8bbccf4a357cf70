import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ClipIqaError } from '../src/errors.js';
import { loadCheckpoint } from '../src/weights/load.js';
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

  it('refuses tensors that share bytes (issue 10, finding 17)', () => {
    const bytes = build(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        empty: { dtype: 'F32', shape: [0], data_offsets: [4, 4] },
      },
      new Uint8Array(12),
    );
    expect(() => readSafetensors(bytes, 'o.safetensors')).toThrowError(/^o\.safetensors: .*tensors "a" \(bytes 0\.\.8\) and "b" \(bytes 4\.\.12\) overlap/);
  });

  it('refuses a file without tensors: an empty header, or metadata only', async () => {
    for (const header of [{}, { __metadata__: { format: 'pt' } }]) {
      const bytes = build(header, new Uint8Array(0));
      expect(() => readSafetensors(bytes, 'e.safetensors')).toThrowError(/^e\.safetensors: not a valid safetensors file: the header lists no tensors/);
      await expect(loadCheckpoint(bytes, { source: 'e.safetensors' })).rejects.toThrowError(/the header lists no tensors/);
    }
  });

  it('caps the header (headerBytes), before parsing it', () => {
    const bytes = build({ w: { dtype: 'U8', shape: [1], data_offsets: [0, 1] }, __metadata__: { note: 'x'.repeat(2000) } }, new Uint8Array(1));
    expect(readSafetensors(bytes).size).toBe(1);
    expect(() => readSafetensors(bytes, 'h.safetensors', { headerBytes: 1024 })).toThrowError(
      /^h\.safetensors: the safetensors header is 2\.\d+ KiB, over the 1 KiB limit \(headerBytes\).*CLIP_IQA_MAX_HEADER_BYTES/,
    );
  });

  it('names the missing tensor', () => {
    const sd = readSafetensors(build({ w: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), 'one.safetensors');
    expect(() => sd.get('visual.proj')).toThrowError(/one\.safetensors: the checkpoint has no tensor "visual\.proj"/);
  });
});
