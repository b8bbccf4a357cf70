/** The browser build's `zlib.ts`: the same bounded inflation on fflate (no Node built-ins in a page). */
import { Inflate, gunzipSync } from 'fflate';

export class InflateTooLarge extends Error {}

/** A gzip stream's content, of at most `maxBytes` (the trailer's size field is checked before inflating). */
export function gunzip(bytes: Uint8Array, maxBytes: number): Uint8Array {
  if (bytes.length >= 18) {
    const size = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - 4, 4).getUint32(0, true);
    if (size > maxBytes) throw new InflateTooLarge(`the gzip stream declares ${size} bytes`);
  }
  const out = gunzipSync(bytes);
  if (out.length > maxBytes) throw new InflateTooLarge(`the gzip stream inflates to ${out.length} bytes`);
  return out;
}

/** A raw deflate stream's content, of at most `maxBytes`: inflated in chunks, stopped as soon as it passes the cap. */
export function inflateRaw(bytes: Uint8Array, maxBytes: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let tooLarge = false;
  const inflater = new Inflate((chunk) => {
    total += chunk.length;
    if (total > maxBytes) tooLarge = true;
    else chunks.push(chunk);
  });
  const step = 1 << 16;
  for (let at = 0; at < bytes.length && !tooLarge; at += step) inflater.push(bytes.subarray(at, at + step), at + step >= bytes.length);
  if (bytes.length === 0) inflater.push(bytes, true);
  if (tooLarge) throw new InflateTooLarge(`the deflate stream inflates to more than ${maxBytes} bytes`);
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
