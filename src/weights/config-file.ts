/** Reading a model config file's text; `config-file.browser.ts` refuses paths (the browser build passes the text). */
import { readFile, stat } from 'node:fs/promises';
import { ClipIqaError, errCode } from '../errors.js';

/** Configs are a few KB; anything far larger is not one. */
const MAX_CONFIG_BYTES = 1 << 20;

export async function readConfigText(path: string): Promise<string> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new ClipIqaError('E_WEIGHTS_FORMAT', `${path}: a model config must be a file.`);
    if (st.size > MAX_CONFIG_BYTES) throw new ClipIqaError('E_WEIGHTS_FORMAT', `${path}: ${st.size} bytes is far too large for a model config.`);
    return await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof ClipIqaError) throw e;
    throw new ClipIqaError('E_NOT_FOUND', `${path}: cannot read the model config (${errCode(e) ?? (e as Error).message}).`, { cause: e });
  }
}
