import { readFile } from 'node:fs/promises';
import { ClipIqaError } from '../errors.js';
import { BYTES_PER_ELEMENT, type DType, type Tensor, numel, typedView } from '../tensor.js';
import { StateDict } from './state-dict.js';

const DTYPES: Record<string, DType> = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};

/** The upstream format caps the header at 100 MB; a larger length is a corrupt or hostile file. */
const MAX_HEADER = 100 * 1024 * 1024;

export function isSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 10) return false;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  return n > 1 && n <= MAX_HEADER && n <= bytes.length - 8 && bytes[8] === 0x7b; // '{'
}

/**
 * Parses a safetensors file held in memory. Tensors are views into `bytes` where alignment allows.
 * Every offset and size is checked against the file before use.
 */
export function readSafetensors(bytes: Uint8Array, source = 'safetensors'): StateDict {
  const bad = (what: string) =>
    new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: not a valid safetensors file: ${what}. Re-download or re-export the checkpoint.`);
  if (bytes.length < 8) throw bad(`${bytes.length} bytes is shorter than the 8-byte header length`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER)) throw bad(`header length ${headerLength} exceeds the format's 100 MB limit`);
  const n = Number(headerLength);
  if (8 + n > bytes.length) throw bad(`header of ${n} bytes runs past the end of the ${bytes.length}-byte file (truncated?)`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw bad(`header is not JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('header is not a JSON object');
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw bad('__metadata__ is not an object');
      metadata = Object.fromEntries(Object.entries(entry as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
      continue;
    }
    if (typeof entry !== 'object' || entry === null) throw bad(`entry "${name}" is not an object`);
    const { dtype: code, shape, data_offsets: offsets } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof code === 'string' ? DTYPES[code] : undefined;
    if (!dtype) throw bad(`tensor "${name}" has unsupported dtype ${JSON.stringify(code)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`tensor "${name}" has a malformed shape ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      throw bad(`tensor "${name}" has malformed data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataLength) {
      throw bad(`tensor "${name}" points at bytes ${begin}..${end} but the data section holds only ${dataLength} bytes (truncated?)`);
    }
    const count = numel(shape as number[]);
    if (end - begin !== count * BYTES_PER_ELEMENT[dtype]) {
      throw bad(`tensor "${name}" spans ${end - begin} bytes, but ${dtype}[${shape.join(', ')}] needs ${count * BYTES_PER_ELEMENT[dtype]}`);
    }
    tensors.set(name, { dtype, shape: shape as number[], data: typedView(dtype, bytes, dataStart + begin, count) });
  }
  return new StateDict(source, tensors, metadata);
}

export async function loadSafetensors(path: string): Promise<StateDict> {
  return readSafetensors(await readFile(path), path);
}
