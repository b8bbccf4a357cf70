/**
 * The browser build's `graph-cache.ts`: onnxruntime's optimised graphs are cached on disk by the Node build only
 * (the browser API passes no `graphs` option, so the encoder never asks for a key).
 */
export type GraphCache = never;

export function graphKey(): string {
  throw new Error('the graph cache is not available in the browser build');
}
