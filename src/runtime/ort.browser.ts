/** The browser build's `ort.ts`: onnxruntime-web, whose Tensor is the same class (onnxruntime-common's). */
export { Tensor } from 'onnxruntime-web';
