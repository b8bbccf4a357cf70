import { ClipIqaError } from '../errors.js';
import { BYTES_PER_ELEMENT, type DType, type Tensor, numel, typedView } from '../tensor.js';
import { formatBytes } from '../util/read-file.js';
import { type ReadLimits, raiseHint, readCheckpointFile, resolveReadLimits } from './limits.js';
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

/** The upstream format caps the header at 100 MB; a larger length is not a safetensors file. */
const FORMAT_MAX_HEADER = 100_000_000;

export function isSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 10) return false;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  return n > 1 && n <= FORMAT_MAX_HEADER && n <= bytes.length - 8 && bytes[8] === 0x7b; // '{'
}

/**
 * Parses a safetensors file held in memory. Tensors are views into `bytes` where alignment allows.
 * Every offset and size is checked against the file before use; tensors may not share bytes (as upstream
 * requires), and a file without tensors is refused. The header may take `limits.headerBytes` (8 MiB by
 * default): parsing a 75 MB header of a million entries takes seconds, and real headers are kilobytes.
 */
export function readSafetensors(bytes: Uint8Array, source = 'safetensors', limitOverrides: Partial<ReadLimits> = {}): StateDict {
  const bad = (what: string) =>
    new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: not a valid safetensors file: ${what}. Re-download or re-export the checkpoint.`);
  if (bytes.length < 8) throw bad(`${bytes.length} bytes is shorter than the 8-byte header length`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(FORMAT_MAX_HEADER)) throw bad(`header length ${headerLength} exceeds the format's 100 MB limit`);
  const n = Number(headerLength);
  if (8 + n > bytes.length) throw bad(`header of ${n} bytes runs past the end of the ${bytes.length}-byte file (truncated?)`);
  const { headerBytes } = resolveReadLimits(limitOverrides);
  if (n > headerBytes) {
    throw new ClipIqaError(
      'E_WEIGHTS_FORMAT',
      `${source}: the safetensors header is ${formatBytes(n)}, over the ${formatBytes(headerBytes)} limit (headerBytes); ` +
        `real headers take kilobytes per thousand tensors, so the file is corrupt or hostile; ${raiseHint('headerBytes')}.`,
    );
  }
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
  const spans: { name: string; begin: number; end: number }[] = [];
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
    if (end > begin) spans.push({ name, begin, end });
    tensors.set(name, { dtype, shape: shape as number[], data: typedView(dtype, bytes, dataStart + begin, count) });
  }
  if (tensors.size === 0) throw bad('the header lists no tensors');
  spans.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    const [a, b] = [spans[i - 1]!, spans[i]!];
    if (b.begin < a.end) throw bad(`tensors "${a.name}" (bytes ${a.begin}..${a.end}) and "${b.name}" (bytes ${b.begin}..${b.end}) overlap`);
  }
  return new StateDict(source, tensors, metadata);
}

export async function loadSafetensors(path: string, limits: Partial<ReadLimits> = {}): Promise<StateDict> {
  const resolved = resolveReadLimits(limits);
  return readSafetensors(await readCheckpointFile(path, resolved.checkpointBytes), path, resolved);
}
