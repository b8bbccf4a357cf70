/**
 * Reading a whole input file (a checkpoint, a vocabulary, an image) with a size cap, refusing anything that is
 * not a regular file. `readFile` on a FIFO waits for a writer forever and on `/dev/zero` reads until memory runs
 * out; here the file is opened without blocking, checked with fstat on the same descriptor (no window for a swap
 * between the check and the read), and at most the size it had when opened is read.
 */
import { kMaxLength } from 'node:buffer';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { ClipIqaError, type ErrorCode } from '../errors.js';
import { formatBytes } from './bytes.js';

export { formatBytes, parseByteSize } from './bytes.js';

export interface ReadFileOptions {
  /** The most bytes accepted; a larger file is refused before anything is read. */
  readonly maxBytes: number;
  /** The error code for a file that is not regular or is too large (`E_WEIGHTS_FORMAT`, `E_IMAGE`, …). */
  readonly code: ErrorCode;
  /** What the file should be, for messages: "a checkpoint", "an image". */
  readonly what: string;
  /** How to raise the limit, appended to the too-large message: "set CLIP_IQA_MAX_… to raise it". */
  readonly raise: string;
  /** Bytes per read call (tests use small chunks to exercise what a file over 2 GiB goes through). */
  readonly chunkBytes?: number;
}

// Opening a FIFO for reading blocks until a writer appears, unless O_NONBLOCK is given (not on Windows,
// where there are no FIFOs to open).
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);
/** One read call transfers at most about 2 GiB; larger files are read in pieces. */
const CHUNK = 1 << 30;

/**
 * The file's bytes, or a ClipIqaError when it is not a regular file or is larger than `maxBytes`.
 * Errors from opening or reading (ENOENT, EACCES, EISDIR, …) are thrown as they are, for the caller to word.
 */
export async function readRegularFile(path: string, options: ReadFileOptions): Promise<Buffer> {
  const handle = await open(path, OPEN_FLAGS);
  try {
    const info = await handle.stat();
    if (!info.isFile()) {
      throw new ClipIqaError(options.code, `${path}: is ${fileKind(info)}, not a regular file; give the path of ${options.what}.`);
    }
    if (info.size > options.maxBytes) {
      throw new ClipIqaError(
        options.code,
        `${path}: the file is ${formatBytes(info.size)}, over the ${formatBytes(options.maxBytes)} limit for ${options.what}; ${options.raise}.`,
      );
    }
    if (info.size > kMaxLength) {
      throw new ClipIqaError(options.code, `${path}: the file is ${formatBytes(info.size)}, more than Node can hold in one buffer (${formatBytes(kMaxLength)}).`);
    }
    const out = Buffer.allocUnsafe(info.size);
    let filled = 0;
    while (filled < out.length) {
      const { bytesRead } = await handle.read(out, filled, Math.min(options.chunkBytes ?? CHUNK, out.length - filled), filled);
      if (bytesRead === 0) break; // the file shrank since fstat: keep what is there
      filled += bytesRead;
    }
    return filled === out.length ? out : out.subarray(0, filled);
  } finally {
    await handle.close();
  }
}

function fileKind(info: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a named pipe (FIFO)';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  return 'a special file';
}
