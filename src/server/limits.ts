/**
 * What an upload may be, checked as early as possible so that nothing large or hostile reaches the decoder or
 * takes a place in the queue:
 *
 * 1. bytes: multipart files and raw bodies are cut off at `maxUploadBytes` while they stream in (413), and all
 *    bodies in flight share one budget (bodies.ts);
 * 2. media type: only multipart/form-data or an image/* (or application/octet-stream) body is read (415);
 * 3. signature: the first bytes must be a JPEG, PNG, WebP, AVIF, TIFF or GIF, so other formats libvips could open
 *    (SVG, PDF, its own .v files) never reach it (400);
 * 4. pixels: width×height from the header, before one pixel is decoded (413): a 50 kB PNG can announce
 *    65 000×65 000 pixels, 12 GiB once decoded — a decompression bomb;
 * 5. memory: what scoring that size costs the loaded model (model/memory.ts), against `maxImageMemory` (413): a
 *    57 kB 4096² PNG took RN50 4 GB and 15–45 s, a 4096² image would take ViT-B/32 over 20 GB.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import multipart from '@fastify/multipart';
import { type ImageInfo, resizeTarget, readImageInfo } from '../image/decode.js';
import { formatBytes, imageMemory, largestWithin } from '../model/memory.js';
import type { ClipArchitecture } from '../weights/architecture.js';
import { MAX_FIELDS, MAX_FIELD_BYTES } from './bodies.js';
import { HttpError } from './errors.js';
import type { Settings } from './options.js';

/** One image of a request, as received. */
export interface Upload {
  /** The file name it came with, the URL, or the raw body's `name`. */
  readonly name: string;
  readonly bytes: Buffer;
  readonly contentType?: string;
}

/** Content types taken as a raw image body: image/* and the type of "some bytes". */
export const RAW_IMAGE_TYPES = /^(image\/[\w.+-]+|application\/octet-stream)$/i;

export const limitsPlugin = fp<{ settings: Settings }>(
  async (app: FastifyInstance, { settings }) => {
    await app.register(multipart, {
      limits: {
        fileSize: settings.maxUploadBytes,
        files: settings.maxFiles,
        fields: MAX_FIELDS,
        fieldSize: MAX_FIELD_BYTES,
        parts: settings.maxFiles + MAX_FIELDS,
        headerPairs: 100,
      },
    });
    // A raw body arrives whole (its limit enforced while streaming), for `curl --data-binary @x.jpg -H 'content-type: image/jpeg'`.
    app.addContentTypeParser(RAW_IMAGE_TYPES, { parseAs: 'buffer', bodyLimit: settings.maxUploadBytes }, (_request: FastifyRequest, body: Buffer, done) =>
      done(null, body),
    );
  },
  { name: 'clip-iqa-limits' },
);

/** The container format from the first bytes, or undefined for anything that is not an image we score. */
export function sniffFormat(b: Uint8Array): 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff' | 'avif' | undefined {
  const ascii = (from: number, to: number) => String.fromCharCode(...b.subarray(from, to));
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && ascii(0, 8) === '\x89PNG\r\n\x1a\n') return 'png';
  if (b.length >= 6 && /^GIF8[79]a$/.test(ascii(0, 6))) return 'gif';
  if (b.length >= 12 && ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'webp';
  if (b.length >= 4 && (ascii(0, 4) === 'II*\0' || ascii(0, 4) === 'MM\0*')) return 'tiff';
  // ISO base media: "ftyp" at offset 4, then the major brand. HEIC (HEVC) is refused: sharp's libvips has no decoder.
  if (b.length >= 12 && ascii(4, 8) === 'ftyp' && /^avi[fs]$/.test(ascii(8, 12))) return 'avif';
  return undefined;
}

/** A media type a multipart file part may declare: images, "some bytes", or nothing. */
export function acceptablePartType(mimetype: string | undefined): boolean {
  return !mimetype || RAW_IMAGE_TYPES.test(mimetype.split(';')[0]!.trim());
}

/**
 * Checks an upload's signature and pixel count from its header, and returns the header; throws 400 for something
 * that is not a supported image and 413 for too many pixels. Decoding (later, in the queue) checks everything else.
 */
export async function checkImageHeader(upload: Upload, maxPixels: number): Promise<ImageInfo> {
  if (upload.bytes.length === 0) throw new HttpError(400, 'E_IMAGE', `${upload.name}: the upload is empty`);
  if (!sniffFormat(upload.bytes)) {
    throw new HttpError(400, 'E_IMAGE', `${upload.name}: not a JPEG, PNG, WebP, AVIF, TIFF or GIF image (the file's first bytes say otherwise)`);
  }
  const info = await readImageInfo(upload.bytes, { name: upload.name });
  const pixels = info.width * info.height;
  if (pixels > maxPixels) {
    throw new HttpError(
      413,
      'E_TOO_MANY_PIXELS',
      `${upload.name}: ${info.width}×${info.height} = ${pixels} pixels is over this server's limit of ${maxPixels} (--max-pixels); downscale the image`,
    );
  }
  return info;
}

/** What scoring an image will cost, and the limit. */
export interface MemoryCheck {
  readonly architecture: ClipArchitecture;
  readonly settings: Settings;
  /** Bytes one image may take. */
  readonly limit: number;
  /** Per-region maps asked (the ResNet trunk runs twice). */
  readonly maps: boolean;
}

/**
 * Throws 413 when scoring the image would take more memory than one image may, as estimated from its header for
 * the loaded model; the message says what size would fit.
 */
export function checkImageMemory(upload: Upload, info: ImageInfo, check: MemoryCheck): void {
  const { model } = check.settings;
  const resize = model.decode?.resize;
  const network = resize ? (size: { width: number; height: number }) => resizeTarget(size, resize) : undefined;
  const options = { precision: model.precision ?? model.runtime?.precision, bitDepth: info.bitDepth, maps: check.maps, network };
  const size = { width: info.width, height: info.height };
  const bytes = imageMemory(check.architecture, size, { ...options, network: network?.(size) });
  if (bytes <= check.limit) return;
  const fit = largestWithin(check.architecture, size, check.limit, options);
  throw new HttpError(
    413,
    'E_TOO_MANY_PIXELS',
    `${upload.name}: scoring ${info.width}×${info.height} pixels${check.maps ? ' with maps' : ''} would take about ${formatBytes(bytes)} with this model, ` +
      `over this server's limit of ${formatBytes(check.limit)} per image (--max-image-memory); ` +
      (fit ? `downscale it to ${fit.width}×${fit.height} or less` : 'this model cannot score images here'),
  );
}
