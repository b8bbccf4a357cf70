/**
 * Bounded inflation (gzip, raw deflate), here with Node's zlib; `zlib.browser.ts` is the same interface on fflate
 * for the browser build. Both throw `InflateTooLarge` when the output would exceed the cap, so that callers can say
 * "too large" rather than "corrupt".
 */
import { gunzipSync, inflateRawSync } from 'node:zlib';
import { errCode } from '../errors.js';

export class InflateTooLarge extends Error {}

function bounded(run: () => Buffer): Uint8Array {
  try {
    const out = run();
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  } catch (e) {
    if (errCode(e) === 'ERR_BUFFER_TOO_LARGE') throw new InflateTooLarge((e as Error).message, { cause: e });
    throw e;
  }
}

/** A gzip stream's content, of at most `maxBytes`. */
export const gunzip = (bytes: Uint8Array, maxBytes: number): Uint8Array => bounded(() => gunzipSync(bytes, { maxOutputLength: maxBytes }));

/** A raw deflate stream's content, of at most `maxBytes`. */
export const inflateRaw = (bytes: Uint8Array, maxBytes: number): Uint8Array => bounded(() => inflateRawSync(bytes, { maxOutputLength: Math.max(1, maxBytes) }));
