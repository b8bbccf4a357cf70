/**
 * The browser build's `token-table.ts`: token rows are cached on disk by the Node build only (there is no graph cache
 * in the browser), so the encoder always takes them from the weights in memory.
 */
import type { StateDict } from '../weights/state-dict.js';
import type { TokenTable } from './weights-view.js';

export function saveTokenTable(_sd: StateDict, _dir: string): Promise<boolean> {
  return Promise.resolve(false);
}

export function openTokenTable(): Promise<TokenTable | undefined> {
  return Promise.resolve(undefined);
}
