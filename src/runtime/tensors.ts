import { Tensor } from './ort.js';
import { ClipIqaError } from '../errors.js';

/** onnxruntime tensors over existing typed arrays (no copy) and back. */

export const float32Tensor = (data: Float32Array, dims: readonly number[]): Tensor => new Tensor('float32', data, dims);

export const int64Tensor = (values: readonly number[], dims: readonly number[] = [values.length]): Tensor =>
  new Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), dims);

export const pixelTensor = (data: Uint8Array | Uint16Array, dims: readonly number[]): Tensor =>
  data instanceof Uint8Array ? new Tensor('uint8', data, dims) : new Tensor('uint16', data, dims);

/** The float32 data of an output, checked for type and, where given, shape. */
export function float32Data(t: Tensor | undefined, name: string, dims?: readonly number[]): Float32Array {
  if (!t || t.type !== 'float32' || !(t.data instanceof Float32Array)) {
    throw new ClipIqaError('E_RUNTIME', `onnxruntime returned no float32 output "${name}"`);
  }
  if (dims && (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i]))) {
    throw new ClipIqaError('E_RUNTIME', `onnxruntime output "${name}" has shape [${t.dims.join(', ')}], expected [${dims.join(', ')}]`);
  }
  return t.data;
}
