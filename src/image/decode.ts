/**
 * Image decoding: a file, bytes or already-decoded pixels → interleaved RGB (HWC) at native resolution,
 * 8-bit (Uint8Array) or, for 16-bit PNG/TIFF/AVIF, 16-bit (Uint16Array; the normaliser divides by 65535).
 * All pixel work is done by sharp (libvips), natively; nothing here loops over pixels.
 *
 * Choices, and why (all overridable through `DecodeOptions`):
 *
 * - `orientation: 'exif'` (default) applies the EXIF Orientation tag, so a phone photo is scored the way
 *   a person sees it. The references (PIL in pyiqa/piq, mmcv in the official code) apply none; `'ignore'`
 *   reproduces their numbers on rotated files. For orientations 5-8 this swaps width and height.
 * - `alpha: 'drop'` (default) discards an alpha channel and keeps the colour underneath, as PIL's
 *   `convert('RGB')` does in every reference; `'flatten'` composites over `background` (default white),
 *   which is what a viewer shows for a semi-transparent image.
 * - `icc: 'convert'` (default) converts an embedded ICC profile (Adobe RGB, Display P3 from phones, CMYK
 *   profiles) to sRGB, again what a viewer shows; `'ignore'` keeps the stored values, as PIL does. Untagged
 *   and sRGB-tagged images are left alone either way (converting sRGB to sRGB is the identity at twice
 *   the decode time), and CMYK always becomes RGB. Of the shared photos only rocket.jpg (Adobe RGB)
 *   changes: mean |Δ| 5.7, max 55 levels against PIL.
 * - `resize`: none by default: CLIP-IQA scores the native resolution (paper, official code, pyiqa, piq).
 *   `{ shorterSide: N }` is the official SPAQ preparation (torchvision `Resize(N)`, bicubic: shorter side
 *   to N, longer side truncated as torchvision does); `{ maxSide: N }` bounds the longer side for speed.
 *   Both keep the aspect ratio, use sharp's bicubic (Catmull-Rom) kernel with no shrink-on-load shortcut,
 *   and never enlarge unless `upscale: true`. (Bicubic here is close to, not bit-equal with, PIL's.)
 * - `limitInputPixels: 2**28` (default; `false` to lift): the image header is read first and a larger
 *   width×height is refused before any pixel is decoded (decompression bombs). A 2^28-pixel image is 768 MiB
 *   as RGB bytes and far more as network activations, so `ClipIqa` sets a tighter bound by default: what its model
 *   can score in the memory available (model/memory.ts), named in the refusal as `limitReason`.
 * - `failOn: 'error'` (default): truncated files and decoder errors are refused (PIL refuses truncated
 *   files too), while recoverable decoder warnings (e.g. libjpeg's "Corrupt JPEG data: premature end of
 *   data segment", which PIL also decodes through) are accepted. `'warning'` is stricter, `'truncated'`
 *   and `'none'` more lenient (`'none'` decodes what it can of a cut-off file).
 * - Formats: JPEG, PNG (incl. palette, grey, 16-bit), WebP, AVIF, TIFF, GIF (first frame). Other formats
 *   sharp might open (SVG, raw libvips files, …) are refused: they are not photographs and widen the
 *   attack surface. Grey becomes R=G=B.
 * - Files are read into memory once and decoded from the bytes, so a file replaced between the header
 *   check and the decode cannot slip past the pixel limit, and libvips' file cache cannot serve stale
 *   pixels for a path whose content changed. Only regular files are read (a FIFO named `p.jpg` would block
 *   forever, `/dev/zero` never end), of at most `maxFileBytes` (default 256 MiB, or CLIP_IQA_MAX_IMAGE_BYTES).
 *
 * Reference-parity notes: PNGs, and with `icc: 'ignore'` the shared JPEGs too, decode bit-equal to PIL
 * (mozjpeg and libjpeg-turbo agree). 16-bit images keep their precision here, where PIL reduces 16-bit
 * RGB to the high byte and clips 16-bit grey to 255. PIL's naive CMYK→RGB differs from sharp's
 * profile-based conversion. sharp runs libvips single-threaded on glibc Linux (`sharp.concurrency()`
 * is 1 there), which suits us: the network, not decoding, needs the cores.
 */
import { stat } from 'node:fs/promises';
import type { Metadata, OutputInfo, ResizeOptions } from 'sharp';
import { ClipIqaError, errCode, errorMessage } from '../errors.js';
import { parseByteSize, readRegularFile } from '../util/read-file.js';
import type { RawImage } from '../model/types.js';
import { resizeTarget } from './resize-target.js';

export { resizeTarget };

/**
 * sharp (libvips) is loaded on first use: loading its native library is a good part of a cold start, and a first
 * decode then overlaps onnxruntime opening the model's graphs on its own threads.
 */
let sharpModule: Promise<typeof import('sharp')> | undefined;
const loadSharp = async (): Promise<typeof import('sharp').default> => (await (sharpModule ??= import('sharp'))).default;

/** What can be decoded: a file path, encoded bytes (a Buffer is a Uint8Array), or pixels already decoded. */
export type ImageSource = string | Uint8Array | RawImage;

export type OrientationMode = 'exif' | 'ignore';
export const ORIENTATION_MODES: readonly OrientationMode[] = ['exif', 'ignore'];
export type AlphaMode = 'drop' | 'flatten';
export const ALPHA_MODES: readonly AlphaMode[] = ['drop', 'flatten'];
export type IccMode = 'convert' | 'ignore';
export const ICC_MODES: readonly IccMode[] = ['convert', 'ignore'];
/** sharp's `failOn`, least to most strict. */
export type FailOnLevel = 'none' | 'truncated' | 'error' | 'warning';
export const FAIL_ON_LEVELS: readonly FailOnLevel[] = ['none', 'truncated', 'error', 'warning'];

/**
 * Optional resampling before scoring (bicubic, aspect ratio kept).
 * - `shorterSide`: the shorter side becomes N (the official SPAQ protocol used 512).
 * - `maxSide`: the longer side becomes N when it is longer.
 * `upscale: true` also enlarges images that are smaller than the target (default: never enlarge).
 */
export type ResizePolicy =
  | { readonly shorterSide: number; readonly upscale?: boolean }
  | { readonly maxSide: number; readonly upscale?: boolean };

export type BackgroundColour = string | { readonly r: number; readonly g: number; readonly b: number };

export interface DecodeOptions {
  /** Apply the EXIF Orientation tag (`'exif'`, default) or not (`'ignore'`, reference parity). */
  readonly orientation?: OrientationMode;
  /** Drop an alpha channel (`'drop'`, default, reference parity) or composite over `background`. */
  readonly alpha?: AlphaMode;
  /** Colour under transparent pixels for `alpha: 'flatten'`: CSS colour or {r,g,b} 0-255; default white. */
  readonly background?: BackgroundColour;
  /** Convert an embedded ICC profile to sRGB (`'convert'`, default) or keep stored values (`'ignore'`). */
  readonly icc?: IccMode;
  /** Resampling policy; default none (native resolution). */
  readonly resize?: ResizePolicy;
  /** Largest accepted width×height, checked from the header before decoding; `false` for no limit. */
  readonly limitInputPixels?: number | false;
  /** Why the limit is what it is, for the refusal's message (e.g. what the model can score in the memory available). */
  readonly limitReason?: string;
  /** How damaged a file may be and still decode; default `'error'`. */
  readonly failOn?: FailOnLevel;
  /** Largest image file read from a path, in bytes; default `CLIP_IQA_MAX_IMAGE_BYTES`, else 256 MiB. */
  readonly maxFileBytes?: number;
  /** Names a byte source in errors (default `<buffer>`); a path names itself. */
  readonly name?: string;
}

export const DEFAULT_LIMIT_INPUT_PIXELS = 2 ** 28;
export const DEFAULT_MAX_IMAGE_FILE_BYTES = 256 * 1024 * 1024;
export const MAX_IMAGE_FILE_ENV = 'CLIP_IQA_MAX_IMAGE_BYTES';

/** The image file size limit in force when no `maxFileBytes` option is given. */
export function defaultMaxImageFileBytes(env: NodeJS.ProcessEnv = process.env): number {
  const text = env[MAX_IMAGE_FILE_ENV];
  if (text === undefined || text === '') return DEFAULT_MAX_IMAGE_FILE_BYTES;
  const n = parseByteSize(text);
  if (n === undefined) throw new ClipIqaError('E_OPTION', `${MAX_IMAGE_FILE_ENV}=${JSON.stringify(text)} is not a size; give bytes, e.g. 536870912 or 512MiB.`);
  return n;
}

export const DEFAULT_DECODE_OPTIONS = {
  orientation: 'exif',
  alpha: 'drop',
  background: '#ffffff',
  icc: 'convert',
  limitInputPixels: DEFAULT_LIMIT_INPUT_PIXELS,
  failOn: 'error',
  maxFileBytes: DEFAULT_MAX_IMAGE_FILE_BYTES,
} as const satisfies DecodeOptions;

/** Container formats, as reported: sharp's names, with HEIF split into AVIF and HEIC. */
export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'avif' | 'heic' | 'tiff' | 'gif' | 'raw' | (string & {});

/** A decoded image: a RawImage (RGB, HWC) plus what it came from. */
export interface DecodedImage extends RawImage {
  readonly bitDepth: 8 | 16;
  readonly format: ImageFormat;
  /** Size after orientation, before any resize. */
  readonly original: { readonly width: number; readonly height: number };
}

export interface ImageInfo {
  /** Stored size (before EXIF orientation). */
  readonly width: number;
  readonly height: number;
  /** Size as displayed: width and height swapped for EXIF orientations 5-8. */
  readonly orientedWidth: number;
  readonly orientedHeight: number;
  readonly format: ImageFormat;
  readonly hasAlpha: boolean;
  /** EXIF Orientation 1-8 (1 when absent). */
  readonly orientation: number;
  /** Bits per sample as decoded (8 or 16 for supported images). */
  readonly bitDepth: number;
  /** Bands as stored: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA or CMYK. */
  readonly channels: number;
  /** Frames or pages (GIF, TIFF, AVIF); only the first is decoded. */
  readonly pages: number;
  readonly hasIccProfile: boolean;
}

/** The container formats (sharp's names; `heif` holds AVIF) that are decoded; anything else is refused. */
export const DECODABLE_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png', 'webp', 'heif', 'tiff', 'gif']);
const SUPPORTED_TEXT = 'JPEG, PNG, WebP, AVIF, TIFF or GIF';
const SAMPLE_BITS: Record<string, number> = { uchar: 8, char: 8, ushort: 16, short: 16, uint: 32, int: 32, float: 32 };

/** Decodes an image to RGB (HWC) at native resolution, or at the size `options.resize` asks for. */
export async function decodeImage(source: ImageSource, options: DecodeOptions = {}): Promise<DecodedImage> {
  const opts = checkOptions(options);
  if (isRawImage(source)) return decodeRaw(source, opts);
  const { name, bytes } = await readSource(source, opts.name, opts.maxFileBytes);

  const meta = await readMetadata(bytes, name);
  const format = formatName(meta);
  checkDecodable(meta, format, name, opts.limitInputPixels, opts.limitReason);
  const sixteen = meta.depth === 'ushort';

  const oriented = opts.orientation === 'exif' && (meta.orientation ?? 1) >= 5;
  const original = { width: oriented ? meta.height : meta.width, height: oriented ? meta.width : meta.height };
  const target = opts.resize ? resizeTarget(original, opts.resize) : undefined;
  if (target) checkTargetSize(target, name, opts.limitInputPixels);

  // An sRGB profile converts to sRGB as the identity (bit-equal on the shared photos) at twice the decode
  // time, so it is skipped like an absent one.
  const convertIcc = opts.icc === 'convert' && meta.hasProfile && !isSrgbProfile(meta.icc);
  let pipeline = (await loadSharp())(bytes, {
    failOn: opts.failOn,
    limitInputPixels: opts.limitInputPixels,
    autoOrient: opts.orientation === 'exif',
    ignoreIcc: !convertIcc,
    page: 0,
    pages: 1,
  });
  // (For 16-bit images sharp scales the 8-bit background by 256, so white is 65280, not 65535.)
  if (meta.hasAlpha) pipeline = opts.alpha === 'flatten' ? pipeline.flatten({ background: opts.background }) : pipeline.removeAlpha();
  if (target) pipeline = pipeline.resize(target.width, target.height, RESIZE_OPTIONS);
  // sharp converts an embedded profile to sRGB on its own only in the 8-bit path; asking for the sRGB
  // output profile explicitly makes 16-bit images convert too.
  if (convertIcc) pipeline = pipeline.withIccProfile('srgb');
  pipeline = sixteen ? pipeline.toColourspace('rgb16').raw({ depth: 'ushort' }) : pipeline.toColourspace('srgb').raw();

  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await pipeline.toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw decodeError(name, format, e);
  }
  if (info.channels !== 3) {
    throw new ClipIqaError('E_IMAGE', `${name}: decoding gave ${info.channels} channels instead of RGB; convert the image to RGB.`);
  }
  return {
    width: info.width,
    height: info.height,
    data: pixelsOf(data, sixteen),
    bitDepth: sixteen ? 16 : 8,
    format,
    original,
  };
}

/** Header facts (size, format, alpha, orientation, depth) without decoding pixels. */
export async function readImageInfo(source: ImageSource, options: Pick<DecodeOptions, 'name'> = {}): Promise<ImageInfo> {
  if (isRawImage(source)) {
    const img = checkRawImage(source, options.name ?? '<pixels>');
    const bitDepth = img.data instanceof Uint16Array ? 16 : 8;
    return {
      width: img.width,
      height: img.height,
      orientedWidth: img.width,
      orientedHeight: img.height,
      format: 'raw',
      hasAlpha: false,
      orientation: 1,
      bitDepth,
      channels: 3,
      pages: 1,
      hasIccProfile: false,
    };
  }
  let input: string | Uint8Array;
  let name: string;
  if (typeof source === 'string') {
    // Only the header is needed: let libvips read it from the file rather than loading the whole file.
    await checkFile(source);
    input = source;
    name = source;
  } else {
    input = source;
    name = options.name ?? '<buffer>';
  }
  const meta = await readMetadata(input, name);
  const orientation = meta.orientation ?? 1;
  const swapped = orientation >= 5;
  return {
    width: meta.width,
    height: meta.height,
    orientedWidth: swapped ? meta.height : meta.width,
    orientedHeight: swapped ? meta.width : meta.height,
    format: formatName(meta),
    hasAlpha: meta.hasAlpha,
    orientation,
    bitDepth: SAMPLE_BITS[meta.depth] ?? 64,
    channels: meta.channels,
    pages: meta.pages ?? 1,
    hasIccProfile: meta.hasProfile,
  };
}

/**
 * Throws E_IMAGE_TOO_SMALL when either side is below the minimum the model needs (a number for both
 * sides, or per side). The model layer decides the minimum.
 */
export function assertMinSize(
  img: { readonly width: number; readonly height: number },
  min: number | { readonly width: number; readonly height: number },
  source: string,
): void {
  const need = typeof min === 'number' ? { width: min, height: min } : min;
  if (img.width < need.width || img.height < need.height) {
    throw new ClipIqaError(
      'E_IMAGE_TOO_SMALL',
      `${source}: the image is ${img.width}×${img.height} pixels, the model needs at least ${need.width}×${need.height}. ` +
        'Use a larger image, or enlarge it (resize with upscale).',
    );
  }
}

// ---------------------------------------------------------------------------------------------------

type CheckedOptions = Required<Omit<DecodeOptions, 'resize' | 'name' | 'limitReason'>> & Pick<DecodeOptions, 'resize' | 'name' | 'limitReason'>;

const RESIZE_OPTIONS: ResizeOptions = { kernel: 'cubic', fit: 'fill', fastShrinkOnLoad: false };

function checkOptions(options: DecodeOptions): CheckedOptions {
  // The file size limit defaults to its environment variable when set, so it is resolved per call.
  const o = { ...DEFAULT_DECODE_OPTIONS, ...stripUndefined(options), maxFileBytes: options.maxFileBytes ?? defaultMaxImageFileBytes() };
  const oneOf = <T extends string>(key: string, value: T, allowed: readonly T[]): void => {
    if (!allowed.includes(value)) {
      throw new ClipIqaError('E_OPTION', `${key} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}.`);
    }
  };
  oneOf('orientation', o.orientation, ORIENTATION_MODES);
  oneOf('alpha', o.alpha, ALPHA_MODES);
  oneOf('icc', o.icc, ICC_MODES);
  oneOf('failOn', o.failOn, FAIL_ON_LEVELS);
  if (o.limitInputPixels !== false && !(Number.isSafeInteger(o.limitInputPixels) && o.limitInputPixels > 0)) {
    throw new ClipIqaError('E_OPTION', `limitInputPixels must be a positive integer or false, got ${String(o.limitInputPixels)}.`);
  }
  if (o.resize !== undefined) checkResize(o.resize);
  if (o.maxFileBytes !== undefined && !(Number.isSafeInteger(o.maxFileBytes) && o.maxFileBytes > 0)) {
    throw new ClipIqaError('E_OPTION', `maxFileBytes must be a positive whole number of bytes, got ${String(o.maxFileBytes)}.`);
  }
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function checkResize(r: ResizePolicy): void {
  const keys = ['shorterSide', 'maxSide'].filter((k) => k in r && (r as unknown as Record<string, unknown>)[k] !== undefined);
  if (keys.length !== 1) {
    throw new ClipIqaError('E_OPTION', 'resize must give exactly one of shorterSide or maxSide, e.g. { shorterSide: 512 }.');
  }
  const n = 'shorterSide' in r ? r.shorterSide : r.maxSide;
  if (!Number.isInteger(n) || n < 1) {
    throw new ClipIqaError('E_OPTION', `resize.${keys[0]} must be a positive whole number of pixels, got ${String(n)}.`);
  }
}


/** An enlargement is bounded by the same pixel limit as the input, so `upscale` cannot be a memory bomb. */
function checkTargetSize(target: { width: number; height: number }, name: string, limit: number | false): void {
  if (limit !== false && target.width * target.height > limit) {
    throw new ClipIqaError(
      'E_OPTION',
      `${name}: resizing to ${target.width}×${target.height} would exceed limitInputPixels (${limit}); choose a smaller size.`,
    );
  }
}

function isRawImage(source: ImageSource): source is RawImage {
  return typeof source === 'object' && !(source instanceof Uint8Array) && 'data' in source && 'width' in source;
}

function checkRawImage(img: RawImage, name: string): RawImage {
  const { width, height, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new ClipIqaError('E_IMAGE', `${name}: raw image size must be positive whole numbers, got ${width}×${height}.`);
  }
  if (!(data instanceof Uint8Array || data instanceof Uint16Array)) {
    throw new ClipIqaError('E_IMAGE', `${name}: raw image data must be a Uint8Array (8-bit) or Uint16Array (16-bit) of RGB samples.`);
  }
  if (data.length !== width * height * 3) {
    throw new ClipIqaError(
      'E_IMAGE',
      `${name}: raw image data has ${data.length} samples, ${width}×${height} RGB needs ${width * height * 3} (interleaved RGB, HWC).`,
    );
  }
  return img;
}

/** Already-decoded pixels: checked, and resized if asked; orientation, alpha and ICC do not apply. */
async function decodeRaw(img: RawImage, opts: CheckedOptions): Promise<DecodedImage> {
  const name = opts.name ?? '<pixels>';
  checkRawImage(img, name);
  const sixteen = img.data instanceof Uint16Array;
  const original = { width: img.width, height: img.height };
  const target = opts.resize ? resizeTarget(original, opts.resize) : undefined;
  if (target) checkTargetSize(target, name, opts.limitInputPixels);
  if (!target) return { width: img.width, height: img.height, data: img.data, bitDepth: sixteen ? 16 : 8, format: 'raw', original };
  try {
    const { data, info } = await (await loadSharp())(img.data, {
      raw: { width: img.width, height: img.height, channels: 3 },
      limitInputPixels: opts.limitInputPixels,
    })
      .resize(target.width, target.height, RESIZE_OPTIONS)
      .toColourspace(sixteen ? 'rgb16' : 'srgb')
      .raw({ depth: sixteen ? 'ushort' : 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return {
      width: info.width,
      height: info.height,
      data: pixelsOf(data, sixteen),
      bitDepth: sixteen ? 16 : 8,
      format: 'raw',
      original,
    };
  } catch (e) {
    throw new ClipIqaError('E_IMAGE', `${name}: cannot resize the raw image: ${errorMessage(e)}.`, { cause: e });
  }
}

async function checkFile(path: string): Promise<void> {
  let isFile: boolean;
  try {
    isFile = (await stat(path)).isFile();
  } catch (e) {
    throw fileError(path, e);
  }
  if (!isFile) throw new ClipIqaError('E_IMAGE', `${path}: not a file; give the path of an image file.`);
}

function fileError(path: string, e: unknown): ClipIqaError {
  const code = errCode(e);
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new ClipIqaError('E_NOT_FOUND', `Image not found: ${path}. Check the path.`, { cause: e });
  }
  if (code === 'EISDIR') return new ClipIqaError('E_IMAGE', `${path}: is a directory; give the path of an image file.`, { cause: e });
  return new ClipIqaError('E_IMAGE', `${path}: cannot read the file: ${errorMessage(e)}.`, { cause: e });
}

async function readSource(
  source: string | Uint8Array,
  name: string | undefined,
  maxFileBytes: number,
): Promise<{ name: string; bytes: Uint8Array }> {
  if (typeof source !== 'string') {
    if (source.length === 0) throw new ClipIqaError('E_IMAGE', `${name ?? '<buffer>'}: the image data is empty.`);
    return { name: name ?? '<buffer>', bytes: source };
  }
  let bytes: Uint8Array;
  try {
    bytes = await readRegularFile(source, {
      maxBytes: maxFileBytes,
      code: 'E_IMAGE',
      what: 'an image',
      raise: `if the image is genuine, raise the limit with ${MAX_IMAGE_FILE_ENV} or the maxFileBytes decode option`,
    });
  } catch (e) {
    if (e instanceof ClipIqaError) throw e;
    throw fileError(source, e);
  }
  if (bytes.length === 0) throw new ClipIqaError('E_IMAGE', `${source}: the file is empty.`);
  return { name: source, bytes };
}

async function readMetadata(input: string | Uint8Array, name: string): Promise<Metadata> {
  try {
    // The limit is enforced by checkDecodable (with the actual size in the message) and again by the
    // decode itself; reading a header allocates no pixels.
    return await (await loadSharp())(input, { limitInputPixels: false }).metadata();
  } catch (e) {
    const reason = errorMessage(e);
    if (/unsupported image format/i.test(reason)) {
      throw new ClipIqaError('E_IMAGE', `${name}: not an image format that can be read (${SUPPORTED_TEXT} expected).`, { cause: e });
    }
    if (/Input file is missing/i.test(reason)) throw new ClipIqaError('E_NOT_FOUND', `Image not found: ${name}. Check the path.`, { cause: e });
    throw new ClipIqaError('E_IMAGE', `${name}: cannot read the image header: ${reason}. The file is damaged or not an image.`, {
      cause: e,
    });
  }
}

function formatName(meta: Metadata): ImageFormat {
  if (meta.format === 'heif') return meta.compression === 'hevc' ? 'heic' : 'avif';
  return meta.format;
}

function checkDecodable(meta: Metadata, format: ImageFormat, name: string, limit: number | false, reason?: string): void {
  if (!DECODABLE_FORMATS.has(meta.format)) {
    throw new ClipIqaError('E_IMAGE', `${name}: ${format.toUpperCase()} images are not supported; convert it to ${SUPPORTED_TEXT}.`);
  }
  if (meta.depth !== 'uchar' && meta.depth !== 'ushort') {
    throw new ClipIqaError(
      'E_IMAGE',
      `${name}: samples are ${meta.depth} (${SAMPLE_BITS[meta.depth] ?? '?'}-bit); only 8- and 16-bit integer images are supported. ` +
        'Convert it to an 8- or 16-bit PNG or TIFF.',
    );
  }
  const pixels = meta.width * meta.height;
  if (limit !== false && pixels > limit) {
    throw new ClipIqaError(
      'E_IMAGE',
      `${name}: ${meta.width}×${meta.height} = ${pixels} pixels is over the limit of ${limit} (limitInputPixels${reason ? `: ${reason}` : ''}). ` +
        'Downscale the image, or raise the limit (--max-pixels on the command line) if you trust the file and the machine has the memory.',
    );
  }
}

function decodeError(name: string, format: ImageFormat, e: unknown): ClipIqaError {
  const reason = errorMessage(e);
  if (/exceeds pixel limit/i.test(reason)) {
    return new ClipIqaError('E_IMAGE', `${name}: the image is larger than limitInputPixels allows (${reason}).`, { cause: e });
  }
  return new ClipIqaError(
    'E_IMAGE',
    `${name}: cannot decode the ${format.toUpperCase()} image: ${reason}. The file is damaged or incomplete; ` +
      're-export or re-download it (or lower failOn to accept a partly decoded image).',
    { cause: e },
  );
}

/**
 * Whether an ICC profile describes itself as sRGB ("sRGB IEC61966-2.1", "sRGB built-in", …): its
 * `desc` tag, ICC v2 (`desc`, ASCII) or v4 (`mluc`, UTF-16BE). Anything unparsable counts as not sRGB,
 * so it is converted.
 */
export function isSrgbProfile(icc: Uint8Array | undefined): boolean {
  if (!icc || icc.length < 132) return false;
  const dv = new DataView(icc.buffer, icc.byteOffset, icc.byteLength);
  const tags = dv.getUint32(128);
  for (let i = 0; i < tags && 132 + 12 * (i + 1) <= icc.length; i++) {
    const entry = 132 + 12 * i;
    if (dv.getUint32(entry) !== 0x64657363 /* 'desc' */) continue;
    const off = dv.getUint32(entry + 4);
    const size = dv.getUint32(entry + 8);
    if (off + size > icc.length || size < 12) return false;
    const type = dv.getUint32(off);
    let text = '';
    if (type === 0x64657363 /* 'desc' */) {
      const n = Math.min(dv.getUint32(off + 8), size - 12);
      text = new TextDecoder('latin1').decode(icc.subarray(off + 12, off + 12 + n));
    } else if (type === 0x6d6c7563 /* 'mluc' */ && size >= 28) {
      const len = dv.getUint32(off + 20);
      const start = off + dv.getUint32(off + 24);
      if (start + len > off + size) return false;
      for (let k = 0; k + 1 < len; k += 2) text += String.fromCharCode(dv.getUint16(start + k));
    }
    return /\bsRGB\b/i.test(text);
  }
  return false;
}

/**
 * sharp's raw output as samples: 8-bit as a plain Uint8Array over the same memory, 16-bit as a Uint16Array
 * (native byte order), copied only if it is misaligned.
 */
function pixelsOf(data: Buffer, sixteen: boolean): Uint8Array | Uint16Array {
  if (!sixteen) return new Uint8Array(data.buffer, data.byteOffset, data.length);
  if (data.byteOffset % 2 === 0) return new Uint16Array(data.buffer, data.byteOffset, data.length / 2);
  return new Uint16Array(Uint8Array.prototype.slice.call(data).buffer);
}
