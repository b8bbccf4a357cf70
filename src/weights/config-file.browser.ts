/** The browser build's `config-file.ts`: no file system; the browser API hands configs over as text. */
import { ClipIqaError } from '../errors.js';

export async function readConfigText(path: string): Promise<string> {
  throw new ClipIqaError('E_NOT_FOUND', `${path}: a model config cannot be read from a path in the browser; give the model as a map of file name → URL.`);
}
