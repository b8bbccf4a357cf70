/**
 * The token embedding table kept in the text graph's cache entry (graph-cache.ts), so that a new prompt on cached
 * graphs reads the few rows it needs instead of the whole checkpoint.
 */
import { readSync } from 'node:fs';
import { open, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BYTES_PER_ELEMENT, type DType, typedView } from '../tensor.js';
import type { TextTower } from '../weights/architecture.js';
import type { StateDict } from '../weights/state-dict.js';
import { TOKEN_EMBEDDING, type TokenTable, widenRows } from './weights-view.js';

const TOKEN_FILE = /^tokens-(float32|float16|bfloat16)\.bin$/;

/** Writes the token table of `sd` into a cache entry being filled (`dir`); false when it was not (left out whole). */
export async function saveTokenTable(sd: StateDict, dir: string): Promise<boolean> {
  const { dtype, data } = sd.get(TOKEN_EMBEDDING);
  if (!TOKEN_FILE.test(`tokens-${dtype}.bin`)) return false;
  const path = join(dir, `tokens-${dtype}.bin`);
  try {
    await writeFile(path, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return true;
  } catch {
    await rm(path, { force: true }).catch(() => undefined);
    return false;
  }
}

/**
 * The token table kept in a verified cache entry (`dir`), read a row at a time by position; undefined when the entry
 * has none or its size is not vocabulary × width × element size (the caller then reads the weights).
 */
export async function openTokenTable(dir: string, text: Pick<TextTower, 'width' | 'vocabSize'>): Promise<TokenTable | undefined> {
  const name = (await readdir(dir)).find((n) => TOKEN_FILE.test(n));
  if (!name) return undefined;
  const dtype = TOKEN_FILE.exec(name)![1] as DType;
  const { width, vocabSize } = text;
  const rowBytes = width * BYTES_PER_ELEMENT[dtype];
  const handle = await open(join(dir, name), 'r');
  try {
    if ((await handle.stat()).size !== vocabSize * rowBytes) throw new Error(`${name} is not ${vocabSize}×${width} ${dtype}`);
  } catch {
    await handle.close();
    return undefined;
  }
  const buf = new Uint8Array(rowBytes);
  return {
    rows: (ids) =>
      widenRows(ids, width, (id) => {
        // Synchronous positional reads: the learned prompts look rows up in a synchronous callback.
        if (readSync(handle.fd, buf, 0, rowBytes, id * rowBytes) !== rowBytes) throw new Error(`${join(dir, name)}: short read of token ${id}`);
        return { dtype, shape: [width], data: typedView(dtype, buf, 0, width) };
      }),
    close: () => handle.close(),
  };
}
