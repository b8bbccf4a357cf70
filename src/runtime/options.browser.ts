/**
 * The browser build's `options.ts`: onnxruntime-web's settings. The backend is chosen once per page (WebGPU when
 * the browser offers an adapter, else WASM) and WASM threads are a page-wide setting of onnxruntime-web, so both
 * live in `browserRuntime`, set by the browser API's `load` before any session is created.
 */
import type { InferenceSession } from 'onnxruntime-web';
import { ClipIqaError } from '../errors.js';

export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';
export type Precision = 'float32' | 'int8';
export const PRECISIONS: readonly Precision[] = ['float32', 'int8'];
/** Where the graphs run: `auto` (WebGPU when available, else WASM), `webgpu` or `wasm`. */
export type Backend = 'auto' | 'webgpu' | 'wasm';
export const BACKENDS: readonly Backend[] = ['auto', 'webgpu', 'wasm'];

export interface RuntimeOptions {
  /** Default `auto`: WebGPU when the browser has an adapter, else WASM. */
  readonly backend?: Backend;
  /** Arithmetic of the image tower: float32 only in the browser. */
  readonly precision?: Precision;
  /** WASM threads; default: all cores when the page is cross-origin isolated (else 1, as browsers require). */
  readonly threads?: number;
  /** Default 'all'. */
  readonly graphOptimizationLevel?: GraphOptimizationLevel;
  /** Initializers of at least this many bytes go to onnxruntime as external data (default 1 MiB). */
  readonly externalMinBytes?: number;
}

/** The backend in use, once the API's `load` has settled it. */
export const browserRuntime: { backend: 'webgpu' | 'wasm' } = { backend: 'wasm' };

export function checkDevice(device: unknown): 'cpu' {
  if (device !== undefined && device !== 'cpu') {
    throw new ClipIqaError('E_OPTION', `runtime.device is a Node option; in the browser give runtime.backend (${BACKENDS.join(', ')})`);
  }
  return 'cpu';
}

export function sessionOptions(options: RuntimeOptions = {}): InferenceSession.SessionOptions {
  return {
    executionProviders: browserRuntime.backend === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'],
    graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
  };
}
