/**
 * Decoding in the browser: an image given any way a page holds one → interleaved 8-bit RGB, as the Node build's
 * image/decode.ts gives. Encoded files go through `createImageBitmap` with no colour-space conversion (unless
 * `icc: 'convert'`), no premultiplication and the orientation the options ask for, then are read back from an
 * OffscreenCanvas. The browser's decoders (Chromium: libjpeg-turbo, libpng, libwebp, libavif) are not sharp's;
 * the README says where they differ and by how much.
 *
 * Options as in Node, with these differences: `failOn` is not available (browsers decode what they can of a
 * damaged file), the pixel limit is checked after decoding (browsers give no header-only read), `resize` uses the
 * browser's high-quality resampling (not sharp's Catmull-Rom: close, not equal), and 16-bit files are read as
 * 8-bit (canvas read-back is 8-bit).
 */
import { ClipIqaError, errorMessage } from '../errors.js';
import type { AlphaMode, BackgroundColour, DecodeOptions, DecodedImage, IccMode, OrientationMode } from '../image/decode.js';
import { resizeTarget } from '../image/resize-target.js';
import type { RawImage } from '../model/types.js';
import { describe } from './files.js';

/** What can be scored in a page. */
export type BrowserImageSource =
  | Blob
  | ImageBitmap
  | ImageData
  | HTMLImageElement
  | HTMLCanvasElement
  | OffscreenCanvas
  | RawImage
  | { readonly width: number; readonly height: number; readonly data: Uint8Array | Uint8ClampedArray };

/** The browser build's default pixel limit: what a 4 GiB WASM heap can take through RN50 (12-megapixel phone photos pass). */
export const BROWSER_LIMIT_INPUT_PIXELS = 2 ** 24;

const DECODE_KEYS = ['orientation', 'alpha', 'background', 'icc', 'resize', 'limitInputPixels', 'limitReason', 'failOn', 'maxFileBytes', 'name'];

function oneOf<T extends string>(key: string, value: T | undefined, allowed: readonly T[]): void {
  if (value !== undefined && !allowed.includes(value)) {
    throw new ClipIqaError('E_OPTION', `${key} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}.`);
  }
}

/** Checks decode options as the Node build does, refusing what the browser cannot do. */
export function checkBrowserDecodeOptions(o: DecodeOptions): void {
  for (const k of Object.keys(o)) if (!DECODE_KEYS.includes(k)) throw new ClipIqaError('E_OPTION', `decode: unknown option "${k}" (known: ${DECODE_KEYS.join(', ')}).`);
  oneOf<OrientationMode>('orientation', o.orientation, ['exif', 'ignore']);
  oneOf<AlphaMode>('alpha', o.alpha, ['drop', 'flatten']);
  oneOf<IccMode>('icc', o.icc, ['convert', 'ignore']);
  if (o.failOn !== undefined && o.failOn !== 'error' && o.failOn !== 'none') {
    throw new ClipIqaError('E_OPTION', `failOn '${o.failOn}' is not available in the browser, whose decoders have no such levels; leave it out.`);
  }
  if (o.limitInputPixels !== undefined && o.limitInputPixels !== false && !(Number.isInteger(o.limitInputPixels) && o.limitInputPixels > 0)) {
    throw new ClipIqaError('E_OPTION', `limitInputPixels must be a positive integer or false, got ${String(o.limitInputPixels)}.`);
  }
  if (o.resize !== undefined) {
    const keys = Object.keys(o.resize).filter((k) => k !== 'upscale');
    if (keys.length !== 1 || !['shorterSide', 'maxSide'].includes(keys[0]!)) {
      throw new ClipIqaError('E_OPTION', 'resize must give exactly one of shorterSide or maxSide, e.g. { shorterSide: 512 }.');
    }
    const n = (o.resize as Record<string, unknown>)[keys[0]!];
    if (!(Number.isInteger(n) && (n as number) > 0)) throw new ClipIqaError('E_OPTION', `resize.${keys[0]} must be a positive whole number of pixels, got ${String(n)}.`);
  }
}

function cssColour(c: BackgroundColour | undefined): string {
  if (c === undefined) return '#ffffff';
  if (typeof c === 'string') return c;
  return `rgb(${c.r}, ${c.g}, ${c.b})`;
}

/** The container format by its first bytes, as the Node build reports it. */
function sniffFormat(head: Uint8Array, type: string): string {
  const at = (i: number, ...b: number[]) => b.every((x, j) => head[i + j] === x);
  if (at(0, 0xff, 0xd8, 0xff)) return 'jpeg';
  if (at(0, 0x89, 0x50, 0x4e, 0x47)) return 'png';
  if (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) return 'webp';
  if (at(0, 0x47, 0x49, 0x46)) return 'gif';
  if (at(4, 0x66, 0x74, 0x79, 0x70)) return at(8, 0x61, 0x76, 0x69) ? 'avif' : 'heic';
  if (at(0, 0x49, 0x49, 0x2a, 0) || at(0, 0x4d, 0x4d, 0, 0x2a)) return 'tiff';
  return type.startsWith('image/') ? type.slice(6) : 'unknown';
}

const SUPPORTED = ['jpeg', 'png', 'webp', 'gif', 'avif'];

function checkLimit(width: number, height: number, name: string, options: DecodeOptions): void {
  const limit = options.limitInputPixels ?? BROWSER_LIMIT_INPUT_PIXELS;
  if (limit !== false && width * height > limit) {
    const reason = options.limitReason ?? `limitInputPixels is ${limit}`;
    throw new ClipIqaError('E_IMAGE', `${name}: the image is ${width}×${height}, larger than limitInputPixels allows (${reason}).`);
  }
}

/** Draws `source` on a canvas of the target size and reads it back as RGB. */
function readBack(source: CanvasImageSource, width: number, height: number, target: { width: number; height: number }, options: DecodeOptions, name: string): Uint8Array {
  const canvas = new OffscreenCanvas(target.width, target.height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true, colorSpace: 'srgb' });
  if (!ctx) throw new ClipIqaError('E_IMAGE', `${name}: this browser gives no 2D canvas to read pixels from.`);
  if (options.alpha === 'flatten') {
    ctx.fillStyle = cssColour(options.background);
    ctx.fillRect(0, 0, target.width, target.height);
  }
  const resized = target.width !== width || target.height !== height;
  ctx.imageSmoothingEnabled = resized;
  if (resized) ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(source, 0, 0, target.width, target.height);
  const rgba = ctx.getImageData(0, 0, target.width, target.height).data;
  return rgbaToRgb(rgba);
}

function rgbaToRgb(rgba: Uint8Array | Uint8ClampedArray): Uint8Array {
  const n = rgba.length / 4;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    rgb[j] = rgba[i * 4]!;
    rgb[j + 1] = rgba[i * 4 + 1]!;
    rgb[j + 2] = rgba[i * 4 + 2]!;
  }
  return rgb;
}

const isA = <T>(ctor: { prototype: T } | undefined, v: unknown): v is T => typeof ctor === 'function' && v instanceof (ctor as unknown as new () => T);

/** Decodes an input to RGB (HWC, 8-bit) with the call's merged decode options. */
export async function decodeBrowserImage(input: BrowserImageSource, options: DecodeOptions, name: string): Promise<DecodedImage> {
  checkBrowserDecodeOptions(options);
  if (input !== null && typeof input === 'object' && 'clipIqaBrokenInput' in input) throw new ClipIqaError('E_IMAGE', `${name}: ${String(input.clipIqaBrokenInput)}`);
  if (isA(globalThis.Blob, input)) return decodeBlob(input, options, name);
  if (isA(globalThis.ImageData, input)) return fromRgba(input.width, input.height, input.data, options, name);
  if (
    isA(globalThis.ImageBitmap, input) ||
    isA(globalThis.HTMLImageElement, input) ||
    isA(globalThis.HTMLCanvasElement, input) ||
    isA(globalThis.OffscreenCanvas, input)
  ) {
    const el = input as ImageBitmap | HTMLImageElement | HTMLCanvasElement | OffscreenCanvas;
    const width = 'naturalWidth' in el ? el.naturalWidth : el.width;
    const height = 'naturalHeight' in el ? el.naturalHeight : el.height;
    if (!(width > 0 && height > 0)) throw new ClipIqaError('E_IMAGE', `${name}: the image has no pixels (${width}×${height}); is it loaded?`);
    checkLimit(width, height, name, options);
    const target = (options.resize && resizeTarget({ width, height }, options.resize)) || { width, height };
    return { width: target.width, height: target.height, data: readBack(el, width, height, target, options, name), bitDepth: 8, format: 'raw', original: { width, height } };
  }
  if (input !== null && typeof input === 'object' && 'width' in input && 'height' in input && 'data' in input) {
    const { width, height, data } = input;
    if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
      throw new ClipIqaError('E_IMAGE', `${name}: raw image size must be positive whole numbers, got ${width}×${height}.`);
    }
    // {width, height, data} as RGB (the Node build's raw images), or RGBA (an ImageData's layout) by its length.
    if ((data instanceof Uint8Array || data instanceof Uint8ClampedArray) && data.length === width * height * 4) return fromRgba(width, height, data, options, name);
    if (!(data instanceof Uint8Array || data instanceof Uint16Array || data instanceof Uint8ClampedArray) || data.length !== width * height * 3) {
      throw new ClipIqaError('E_IMAGE', `${name}: raw image data must hold ${width}×${height} RGB (or RGBA) samples as a Uint8Array or Uint16Array, got ${describe(data)} of ${(data as { length?: number }).length ?? '?'}.`);
    }
    checkLimit(width, height, name, options);
    if (options.resize && resizeTarget({ width, height }, options.resize)) {
      const rgba = new Uint8ClampedArray(width * height * 4);
      const d = data instanceof Uint16Array ? Uint8Array.from(data, (v) => Math.round(v / 257)) : data;
      for (let i = 0; i < width * height; i++) rgba.set([d[i * 3]!, d[i * 3 + 1]!, d[i * 3 + 2]!, 255], i * 4);
      return fromRgba(width, height, rgba, options, name);
    }
    const rgb = data instanceof Uint8ClampedArray ? new Uint8Array(data.buffer, data.byteOffset, data.length) : data;
    return { width, height, data: rgb, bitDepth: rgb instanceof Uint16Array ? 16 : 8, format: 'raw', original: { width, height } };
  }
  throw new ClipIqaError('E_IMAGE', `${name}: cannot score ${describe(input)}; give a File/Blob, ImageBitmap, ImageData, <img>, <canvas> or {width, height, data}.`);
}

function fromRgba(width: number, height: number, rgba: Uint8Array | Uint8ClampedArray, options: DecodeOptions, name: string): DecodedImage {
  checkLimit(width, height, name, options);
  const target = options.resize && resizeTarget({ width, height }, options.resize);
  if (!target && options.alpha !== 'flatten') return { width, height, data: rgbaToRgb(rgba), bitDepth: 8, format: 'raw', original: { width, height } };
  const canvas = new OffscreenCanvas(width, height);
  canvas.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
  const size = target || { width, height };
  return { width: size.width, height: size.height, data: readBack(canvas, width, height, size, options, name), bitDepth: 8, format: 'raw', original: { width, height } };
}

async function decodeBlob(blob: Blob, options: DecodeOptions, name: string): Promise<DecodedImage> {
  if (blob.size === 0) throw new ClipIqaError('E_IMAGE', `${name}: the image data is empty.`);
  const format = sniffFormat(new Uint8Array(await blob.slice(0, 16).arrayBuffer()), blob.type);
  if (!SUPPORTED.includes(format)) {
    throw new ClipIqaError('E_IMAGE', `${name}: ${format === 'unknown' ? 'not an image format that can be read' : `${format.toUpperCase()} images are not read in the browser`} (JPEG, PNG, WebP, AVIF or GIF expected).`);
  }
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(blob, {
      colorSpaceConversion: (options.icc ?? 'convert') === 'convert' ? 'default' : 'none',
      premultiplyAlpha: 'none',
      imageOrientation: (options.orientation ?? 'exif') === 'exif' ? 'from-image' : 'none',
    });
  } catch (e) {
    throw new ClipIqaError('E_IMAGE', `${name}: the browser cannot decode this ${format.toUpperCase()} (${errorMessage(e)}); the file is damaged or not an image.`, { cause: e });
  }
  try {
    const { width, height } = bitmap;
    checkLimit(width, height, name, options);
    const target = (options.resize && resizeTarget({ width, height }, options.resize)) || { width, height };
    return { width: target.width, height: target.height, data: readBack(bitmap, width, height, target, options, name), bitDepth: 8, format, original: { width, height } };
  } finally {
    bitmap.close();
  }
}
