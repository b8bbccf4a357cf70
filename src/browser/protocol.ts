/** Messages between the page (api.ts) and the worker (worker.ts), and errors carried across with their codes. */
import { ClipIqaError, type ErrorCode } from '../errors.js';
import type { ClipArchitecture } from '../weights/architecture.js';

/** A call from the page: `method` of the worker's model (or `load`), with structured-cloneable arguments. */
export interface Request {
  readonly id: number;
  readonly method: 'load' | 'score' | 'embedImage' | 'embedText' | 'scoreMaps' | 'plan' | 'dispose' | 'manyStart' | 'manyItem' | 'manyEnd';
  readonly args: readonly unknown[];
}

/** What the loaded model says of itself, sent once after `load`. */
export interface ModelInfo {
  readonly name: string;
  readonly backend: 'webgpu' | 'wasm';
  readonly threads: number;
  readonly architecture: ClipArchitecture;
  readonly logitScale: number;
  readonly description: string;
  readonly plus: boolean;
}

export interface SerializedError {
  readonly code?: ErrorCode;
  readonly message: string;
}

export type Reply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: SerializedError }
  /** Progress of a load, or one result of a scoreMany stream (`item`), before the final reply. */
  | { readonly id: number; readonly progress: unknown }
  | { readonly id: number; readonly item: unknown };

export const serializeError = (e: unknown): SerializedError =>
  e instanceof ClipIqaError ? { code: e.code, message: e.message } : { message: e instanceof Error ? e.message : String(e) };

export const deserializeError = (e: SerializedError): ClipIqaError => new ClipIqaError(e.code ?? 'E_RUNTIME', e.message);

/** Stands for an input the page could not hand over (an <img> that is not loaded): the worker reports it as a bad image. */
export interface BrokenInput {
  readonly clipIqaBrokenInput: string;
}
