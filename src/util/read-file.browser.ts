/**
 * The browser build's `read-file.ts`: a page has no file system, so a path is refused with what to give instead
 * (the browser API fetches URLs and reads Blobs before anything here is reached).
 */
import { ClipIqaError, type ErrorCode } from '../errors.js';

export { formatBytes, parseByteSize } from './bytes.js';

export interface ReadFileOptions {
  readonly maxBytes: number;
  readonly code: ErrorCode;
  readonly what: string;
  readonly raise?: string;
}

export function readRegularFile(path: string, options: ReadFileOptions): Promise<Uint8Array> {
  return Promise.reject(
    new ClipIqaError(options.code, `${path}: ${options.what} cannot be read from a path in the browser; give a URL, a File/Blob or its bytes.`),
  );
}
