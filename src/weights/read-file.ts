/**
 * A whole file into memory, also beyond the 2 GiB that `fs.readFile` reads at once (OpenCLIP's ViT-H-14 is a
 * 3.9 GB float32 safetensors file): read in chunks into one buffer, up to what a Node buffer may hold (4 GiB).
 */
import { constants } from 'node:buffer';
import { open } from 'node:fs/promises';
import { ClipIqaError } from '../errors.js';

const CHUNK = 1 << 30;

export async function readWholeFile(path: string, chunkBytes = CHUNK): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size > constants.MAX_LENGTH) {
      throw new ClipIqaError(
        'E_WEIGHTS_FORMAT',
        `${path}: ${(size / 2 ** 30).toFixed(1)} GiB is more than Node can hold in memory at once (${constants.MAX_LENGTH / 2 ** 30} GiB); ` +
          'no CLIP model clip-iqa runs is that large.',
      );
    }
    const out = Buffer.allocUnsafe(size);
    for (let done = 0; done < size; ) {
      const { bytesRead } = await fh.read(out, done, Math.min(chunkBytes, size - done), done);
      if (bytesRead === 0) throw new ClipIqaError('E_WEIGHTS_FORMAT', `${path}: the file ended at byte ${done} while it was read; was it being written?`);
      done += bytesRead;
    }
    return out;
  } finally {
    await fh.close();
  }
}
