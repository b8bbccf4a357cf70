import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ClipIqaError, errorMessage } from '../errors.js';

/** An E_OUTPUT error: `what` names the kind of file ("the report", "the results"). */
export const outputError = (what: string, path: string, reason: string, cause?: unknown): ClipIqaError =>
  new ClipIqaError('E_OUTPUT', `cannot write ${what} ${path}: ${reason}`, cause === undefined ? undefined : { cause });

/**
 * Fails early, with a message that says what to do, when a file could not be written to `path`: a directory,
 * a missing or read-only directory, a read-only file. Cheap: call it before a long run, not only after.
 */
export async function checkWritableFile(path: string, what: string, example = 'out.json'): Promise<void> {
  const target = resolve(path);
  const isDir = `that is a directory; give a file name such as ${example}`;
  if (/[\\/]$/.test(path)) throw outputError(what, path, isDir);
  const info = await stat(target).catch(() => undefined);
  if (info?.isDirectory()) throw outputError(what, path, isDir);
  const dir = dirname(target);
  const dirInfo = await stat(dir).catch(() => undefined);
  if (!dirInfo) throw outputError(what, path, `the directory ${dir} does not exist; create it first`);
  if (!dirInfo.isDirectory()) throw outputError(what, path, `${dir} is not a directory`);
  try {
    await access(dir, constants.W_OK);
  } catch (e) {
    throw outputError(what, path, `the directory ${dir} is not writable (${errorMessage(e)})`, e);
  }
  if (info) {
    try {
      await access(target, constants.W_OK);
    } catch (e) {
      throw outputError(what, path, `the file exists and is read-only (${errorMessage(e)})`, e);
    }
  }
}
