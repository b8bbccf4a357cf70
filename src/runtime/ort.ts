/** The onnxruntime package this build runs on: onnxruntime-node here, onnxruntime-web in the browser build (ort.browser.ts). */
export { Tensor } from 'onnxruntime-node';
