import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { ClipIqaError } from '../src/errors.js';
import {
  assertMinSize,
  decodeImage,
  readImageInfo,
  resizeTarget,
  type DecodeOptions,
  type DecodedImage,
  type ImageSource,
} from '../src/image/decode.js';
import type { RawImage } from '../src/model/types.js';
import { loadSafetensors } from '../src/weights/safetensors.js';
import { HAS_SHARED, fixture, photo, shared } from './helpers/shared.js';

const TMP = mkdtempSync(join(tmpdir(), 'clip-iqa-img-'));
const FIXTURE_PNGS = ['img0-64x64-rgb.png', 'img1-96x80-rgb.png', 'img2-53x37-rgb.png', 'img3-70x66-l.png', 'img4-64x48-rgba.png'];
const MEAN = [0.48145466, 0.4578275, 0.40821073].map(Math.fround);
const STD = [0.26862954, 0.26130258, 0.27577711].map(Math.fround);

/** The reference's normalisation (clipref.py load_image) in float32 steps: x/255, minus mean, over std, CHW. */
function normalize(img: RawImage): Float32Array {
  const { width: w, height: h, data } = img;
  const scale = data instanceof Uint16Array ? 65535 : 255;
  const out = new Float32Array(3 * w * h);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < w * h; i++) {
      const x = Math.fround(data[i * 3 + c]! / scale);
      out[c * w * h + i] = Math.fround(Math.fround(x - MEAN[c]!) / STD[c]!);
    }
  }
  return out;
}

/** Pixel (x, y) as [r, g, b]. */
const px = (img: RawImage, x: number, y: number): number[] => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return e instanceof ClipIqaError ? `${e.code}: ${e.message}` : `not a ClipIqaError: ${String(e)}`;
  }
  return 'resolved';
}

const solid = (width: number, height: number, r: number, g: number, b: number): Sharp =>
  sharp({ create: { width, height, channels: 3, background: { r, g, b } } });

describe('decodeImage: fixture pixel parity', () => {
  it.each(FIXTURE_PNGS)('%s matches pixels.safetensors to 1e-6', async (file) => {
    const expected = await loadSafetensors(fixture('images', 'pixels.safetensors'));
    const img = await decodeImage(fixture('images', file));
    const [c, h, w] = expected.shape(file);
    expect([c, img.height, img.width]).toEqual([3, h, w]);
    expect(img.bitDepth).toBe(8);
    expect(img.data).toBeInstanceOf(Uint8Array);
    const want = expected.float32(file);
    const got = normalize(img);
    let maxDiff = 0;
    for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(want[i]! - got[i]!));
    expect(maxDiff).toBeLessThanOrEqual(1e-6);
  });
});

describe('decodeImage: real photographs', () => {
  // The repository's photographs, and the larger ones of ../shared when it is there.
  const photos: [string, number, number, string, string][] = [
    ['camera.png', 512, 512, 'png', photo('camera.png')],
    ['chelsea.png', 451, 300, 'png', photo('chelsea.png')],
    ['rocket.jpg', 640, 427, 'jpeg', photo('rocket.jpg')],
    ...(HAS_SHARED
      ? ([
          ['astronaut.png', 512, 512, 'png'],
          ['coffee.png', 600, 400, 'png'],
          ['hubble_deep_field.jpg', 1000, 872, 'jpeg'],
          ['retina.jpg', 1411, 1411, 'jpeg'],
        ] as const).map(([f, w, h, t]): [string, number, number, string, string] => [f, w, h, t, shared('images', f)])
      : []),
  ];
  it.each(photos)('%s decodes to %i×%i RGB', async (file, width, height, format, path) => {
    const img = await decodeImage(path);
    expect([img.width, img.height, img.format, img.data.length]).toEqual([width, height, format, width * height * 3]);
    if (file === 'camera.png') {
      // grey: R = G = B everywhere
      for (let i = 0; i < img.data.length; i += 3) {
        if (img.data[i] !== img.data[i + 1] || img.data[i] !== img.data[i + 2]) throw new Error(`not grey at ${i / 3}`);
      }
    }
  });

  it('decodes rocket.jpg and chelsea.png fast (timings logged)', async () => {
    for (const file of ['rocket.jpg', 'chelsea.png'] as const) {
      const path = photo(file);
      await decodeImage(path);
      const times: number[] = [];
      for (let i = 0; i < 7; i++) {
        const t0 = performance.now();
        await decodeImage(path);
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      console.log(`decode ${file}: median ${times[3]!.toFixed(1)} ms, min ${times[0]!.toFixed(1)} ms`);
      expect(times[3]).toBeLessThan(1000);
    }
  });
});

describe('decodeImage: formats', () => {
  let reference: RawImage;
  let png: Buffer;
  beforeAll(async () => {
    png = readFileSync(fixture('images', 'img1-96x80-rgb.png'));
    reference = await decodeImage(png);
  });
  const maxAbsDiff = (a: RawImage, b: RawImage): number => {
    let m = 0;
    for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
    return m;
  };

  it('WebP (lossless) and TIFF round-trip exactly', async () => {
    for (const [fmt, bytes] of [
      ['webp', await sharp(png).webp({ lossless: true }).toBuffer()],
      ['tiff', await sharp(png).tiff({ compression: 'lzw' }).toBuffer()], // sharp's default TIFF compression is JPEG
    ] as const) {
      const img = await decodeImage(bytes);
      expect([img.format, img.width, img.height]).toEqual([fmt, 96, 80]);
      expect(maxAbsDiff(img, reference)).toBe(0);
    }
  });

  it('AVIF and JPEG decode close to the source', async () => {
    for (const [fmt, bytes] of [
      ['avif', await sharp(png).avif({ quality: 90, chromaSubsampling: '4:4:4' }).toBuffer()],
      ['jpeg', await sharp(png).jpeg({ quality: 95 }).toBuffer()],
    ] as const) {
      const img = await decodeImage(bytes, { name: `test.${fmt}` });
      expect([img.format, img.width, img.height, img.bitDepth]).toEqual([fmt, 96, 80, 8]);
      let sum = 0;
      for (let i = 0; i < img.data.length; i++) sum += Math.abs(img.data[i]! - reference.data[i]!);
      expect(sum / img.data.length).toBeLessThan(8);
    }
  });

  it('palette PNG expands to RGB', async () => {
    const bytes = await sharp(png).png({ palette: true, colours: 16 }).toBuffer();
    expect((await sharp(bytes).metadata()).isPalette).toBe(true);
    const img = await decodeImage(bytes);
    expect([img.width, img.height, img.data.length]).toEqual([96, 80, 96 * 80 * 3]);
    const distinct = new Set<number>();
    for (let i = 0; i < img.data.length; i += 3) distinct.add((img.data[i]! << 16) | (img.data[i + 1]! << 8) | img.data[i + 2]!);
    expect(distinct.size).toBeLessThanOrEqual(16);
  });

  it('GIF: the first frame of an animation', async () => {
    const frames = Buffer.alloc(8 * 6 * 3 * 2);
    frames.fill(200, 0, 8 * 6 * 3);
    frames.fill(30, 8 * 6 * 3);
    const gif = await sharp(frames, { raw: { width: 8, height: 12, channels: 3, pageHeight: 6 } }).gif().toBuffer();
    expect(await readImageInfo(gif)).toMatchObject({ format: 'gif', width: 8, height: 6, pages: 2 });
    const img = await decodeImage(gif);
    expect([img.width, img.height]).toEqual([8, 6]);
    expect(px(img, 3, 3)).toEqual([200, 200, 200]);
  });

  it('grey and grey+alpha become R = G = B', async () => {
    const grey = await solid(5, 4, 90, 90, 90).toColourspace('b-w').png().toBuffer();
    expect((await sharp(grey).metadata()).channels).toBe(1);
    expect(px(await decodeImage(grey), 2, 2)).toEqual([90, 90, 90]);
    const greyAlpha = await sharp({ create: { width: 5, height: 4, channels: 4, background: { r: 90, g: 90, b: 90, alpha: 0.5 } } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
    expect((await sharp(greyAlpha).metadata()).channels).toBe(2);
    expect(px(await decodeImage(greyAlpha), 0, 0)).toEqual([90, 90, 90]);
    const flat = px(await decodeImage(greyAlpha, { alpha: 'flatten' }), 0, 0);
    expect(flat[0]).toBe(flat[1]);
    expect(Math.abs(flat[0]! - (90 * 0.5 + 255 * 0.5))).toBeLessThanOrEqual(1.5);
  });

  it('16-bit PNG keeps every value (Uint16Array), RGB and grey', async () => {
    const samples = new Uint16Array(64 * 2 * 3);
    for (let i = 0; i < samples.length; i++) samples[i] = (i * 173 + 11) & 0xffff;
    const png16 = await sharp(samples, { raw: { width: 64, height: 2, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
    expect(await readImageInfo(png16)).toMatchObject({ bitDepth: 16, channels: 3 });
    const img = await decodeImage(png16);
    expect(img.bitDepth).toBe(16);
    expect(img.data).toBeInstanceOf(Uint16Array);
    expect(Array.from(img.data)).toEqual(Array.from(samples));

    const tiff16 = await sharp(samples, { raw: { width: 64, height: 2, channels: 3 } })
      .toColourspace('rgb16')
      .tiff({ compression: 'lzw' })
      .toBuffer();
    expect(Array.from((await decodeImage(tiff16)).data)).toEqual(Array.from(samples));

    const grey = new Uint16Array(16).map((_, i) => i * 4000 + 7);
    const grey16 = await sharp(grey, { raw: { width: 4, height: 4, channels: 1 } }).toColourspace('grey16').png().toBuffer();
    expect((await sharp(grey16).metadata()).channels).toBe(1);
    const g = await decodeImage(grey16);
    expect(g.bitDepth).toBe(16);
    expect(px(g, 1, 2)).toEqual([grey[9], grey[9], grey[9]]);
  });

  it('CMYK JPEG becomes RGB', async () => {
    // sRGB → CMYK → sRGB through sharp's default CMYK profile is not a round trip; the hue survives.
    const cmyk = await solid(16, 16, 200, 60, 30).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
    expect(await readImageInfo(cmyk)).toMatchObject({ format: 'jpeg', channels: 4 });
    const img = await decodeImage(cmyk);
    expect(img.data.length).toBe(16 * 16 * 3);
    const [r, g, b] = px(img, 8, 8);
    expect(r).toBeGreaterThan(170);
    expect(g).toBeLessThan(90);
    expect(b).toBeLessThan(60);
  });

  it('ICC profiles: converted to sRGB by default, kept with icc: ignore (8- and 16-bit)', async () => {
    const p3 = await solid(4, 4, 255, 0, 0).withIccProfile('p3').png().toBuffer();
    expect(px(await decodeImage(p3), 0, 0)).toEqual([255, 0, 0]);
    const stored = px(await decodeImage(p3, { icc: 'ignore' }), 0, 0);
    expect(stored[0]).toBeLessThan(245); // P3's red, as stored, is not sRGB's
    expect(stored[1]).toBeGreaterThan(30);

    const p3sixteen = await solid(4, 4, 255, 0, 0).toColourspace('rgb16').withIccProfile('p3').png().toBuffer();
    const converted = px(await decodeImage(p3sixteen), 0, 0);
    expect(converted[0]).toBeGreaterThan(64000);
    expect(converted[1]).toBeLessThan(3000);
    const kept = px(await decodeImage(p3sixteen, { icc: 'ignore' }), 0, 0);
    expect(kept[1]).toBeGreaterThan(10000);
  });

  it('ICC on photos: Adobe RGB rocket.jpg changes, an sRGB-tagged JPEG does not', async () => {
    const diff = (a: RawImage, b: RawImage): number => {
      let m = 0;
      for (let i = 0; i < a.data.length; i++) m = Math.max(m, Math.abs(a.data[i]! - b.data[i]!));
      return m;
    };
    const rocket = photo('rocket.jpg');
    expect(diff(await decodeImage(rocket), await decodeImage(rocket, { icc: 'ignore' }))).toBeGreaterThan(20);
    const srgb = await sharp(photo('chelsea.png')).withIccProfile('srgb').jpeg().toBuffer();
    expect((await sharp(srgb).metadata()).icc).toBeDefined();
    expect(diff(await decodeImage(srgb), await decodeImage(srgb, { icc: 'ignore' }))).toBe(0);
  });
});

describe('decodeImage: orientation and alpha', () => {
  // Stored 40×20: left half red, right half blue. EXIF 6 = rotate 90° clockwise to display,
  // so upright it is 20×40 with red on top.
  let rotated: Buffer;
  beforeAll(async () => {
    const raw = Buffer.alloc(40 * 20 * 3);
    for (let y = 0; y < 20; y++) {
      for (let x = 0; x < 40; x++) raw.set(x < 20 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
    }
    rotated = await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
  });

  it('applies EXIF orientation by default and not with orientation: ignore', async () => {
    const upright = await decodeImage(rotated);
    expect([upright.width, upright.height]).toEqual([20, 40]);
    expect(upright.original).toEqual({ width: 20, height: 40 });
    expect(px(upright, 10, 5)[0]).toBeGreaterThan(200); // red on top
    expect(px(upright, 10, 35)[2]).toBeGreaterThan(200); // blue below
    const asStored = await decodeImage(rotated, { orientation: 'ignore' });
    expect([asStored.width, asStored.height]).toEqual([40, 20]);
    expect(px(asStored, 5, 10)[0]).toBeGreaterThan(200);
    expect(await readImageInfo(rotated)).toMatchObject({ width: 40, height: 20, orientation: 6, orientedWidth: 20, orientedHeight: 40 });
  });

  it('resizes after orienting', async () => {
    const img = await decodeImage(rotated, { resize: { shorterSide: 10 } });
    expect([img.width, img.height]).toEqual([10, 20]);
  });

  it('drops alpha by default (reference parity) and flattens over a background on request', async () => {
    const rgba = await sharp({ create: { width: 4, height: 4, channels: 4, background: { r: 200, g: 50, b: 20, alpha: 0.5 } } })
      .png()
      .toBuffer();
    expect(await readImageInfo(rgba)).toMatchObject({ hasAlpha: true, channels: 4 });
    expect(px(await decodeImage(rgba), 1, 1)).toEqual([200, 50, 20]);
    const white = px(await decodeImage(rgba, { alpha: 'flatten' }), 1, 1);
    const black = px(await decodeImage(rgba, { alpha: 'flatten', background: '#000000' }), 1, 1);
    const a = 128 / 255;
    [200, 50, 20].forEach((c, i) => {
      expect(Math.abs(white[i]! - (c * a + 255 * (1 - a)))).toBeLessThanOrEqual(1);
      expect(Math.abs(black[i]! - c * a)).toBeLessThanOrEqual(1);
    });
    expect(px(await decodeImage(rgba, { alpha: 'flatten', background: { r: 0, g: 255, b: 0 } }), 0, 0)[1]).toBeGreaterThan(150);
  });
});

describe('decodeImage: resize policy', () => {
  const rocket = photo('rocket.jpg'); // 640×427

  it('computes torchvision-style target sizes', () => {
    expect(resizeTarget({ width: 640, height: 427 }, { shorterSide: 224 })).toEqual({ width: 335, height: 224 });
    expect(resizeTarget({ width: 427, height: 640 }, { shorterSide: 224 })).toEqual({ width: 224, height: 335 });
    expect(resizeTarget({ width: 640, height: 427 }, { maxSide: 320 })).toEqual({ width: 320, height: 213 });
    expect(resizeTarget({ width: 640, height: 427 }, { shorterSide: 1000 })).toBeUndefined();
    expect(resizeTarget({ width: 640, height: 427 }, { shorterSide: 427 })).toBeUndefined();
    expect(resizeTarget({ width: 640, height: 427 }, { shorterSide: 1000, upscale: true })).toEqual({ width: 1498, height: 1000 });
    expect(resizeTarget({ width: 640, height: 427 }, { maxSide: 2000 })).toBeUndefined();
    expect(resizeTarget({ width: 10000, height: 1 }, { maxSide: 100 })).toEqual({ width: 100, height: 1 });
  });

  it('resizes files, never enlarging unless asked', async () => {
    const small = await decodeImage(rocket, { resize: { shorterSide: 224 } });
    expect([small.width, small.height, small.original.width]).toEqual([335, 224, 640]);
    expect([(await decodeImage(rocket, { resize: { maxSide: 320 } })).width]).toEqual([320]);
    const same = await decodeImage(rocket, { resize: { shorterSide: 1000 } });
    expect([same.width, same.height]).toEqual([640, 427]);
    const big = await decodeImage(rocket, { resize: { shorterSide: 1000, upscale: true } });
    expect([big.width, big.height]).toEqual([1498, 1000]);
  });

  it('resizes raw 8- and 16-bit pixels, and passes them through untouched otherwise', async () => {
    const raw8: RawImage = { width: 8, height: 4, data: new Uint8Array(8 * 4 * 3).fill(77) };
    expect((await decodeImage(raw8)).data).toBe(raw8.data);
    const r8 = await decodeImage(raw8, { resize: { maxSide: 4 } });
    expect([r8.width, r8.height, r8.bitDepth, px(r8, 1, 1)]).toEqual([4, 2, 8, [77, 77, 77]]);
    const raw16: RawImage = { width: 8, height: 4, data: new Uint16Array(8 * 4 * 3).fill(40000) };
    const r16 = await decodeImage(raw16, { resize: { maxSide: 4 } });
    expect([r16.width, r16.height, r16.bitDepth, px(r16, 1, 1)]).toEqual([4, 2, 16, [40000, 40000, 40000]]);
  });

  it('rejects bad options with E_OPTION', async () => {
    const bad: DecodeOptions[] = [
      { resize: { shorterSide: 0 } },
      { resize: { maxSide: 10.5 } },
      { resize: { shorterSide: 10, maxSide: 10 } as unknown as { shorterSide: number } },
      { resize: {} as unknown as { shorterSide: number } },
      { orientation: 'auto' as 'exif' },
      { alpha: 'keep' as 'drop' },
      { failOn: 'never' as 'none' },
      { limitInputPixels: -1 },
      { resize: { shorterSide: 100_000, upscale: true } },
    ];
    for (const options of bad) expect(await codeOf(decodeImage(rocket, options))).toMatch(/^E_OPTION: /);
  });
});

describe('decodeImage: errors and limits', () => {
  const rocketBytes = readFileSync(photo('rocket.jpg'));

  it('a missing file is E_NOT_FOUND, a directory or empty file E_IMAGE, each naming the path', async () => {
    const missing = join(TMP, 'no-such.jpg');
    expect(await codeOf(decodeImage(missing))).toMatch(/^E_NOT_FOUND: Image not found: .*no-such\.jpg/);
    expect(await codeOf(readImageInfo(missing))).toMatch(/^E_NOT_FOUND: .*no-such\.jpg/);
    expect(await codeOf(decodeImage(TMP))).toMatch(/^E_IMAGE: .*clip-iqa-img-.*directory/);
    const empty = join(TMP, 'empty.png');
    writeFileSync(empty, new Uint8Array(0));
    expect(await codeOf(decodeImage(empty))).toMatch(/^E_IMAGE: .*empty\.png: the file is empty/);
  });

  it('reads at most maxFileBytes from a path (issue 10, finding 11); a bad value is E_OPTION', async () => {
    const path = join(TMP, 'rocket.jpg');
    writeFileSync(path, rocketBytes);
    expect((await decodeImage(path, { maxFileBytes: rocketBytes.length })).width).toBeGreaterThan(0);
    expect(await codeOf(decodeImage(path, { maxFileBytes: 1000 }))).toMatch(
      /^E_IMAGE: .*rocket\.jpg: the file is [\d.]+ KiB, over the 1000 bytes limit for an image; .*CLIP_IQA_MAX_IMAGE_BYTES/,
    );
    expect(await codeOf(decodeImage(path, { maxFileBytes: 0 }))).toMatch(/^E_OPTION: maxFileBytes must be a positive whole number/);
  });

  it('bytes that are not an image: E_IMAGE naming <buffer> (or the given name)', async () => {
    const junk = Buffer.from('this is not an image, just some text that goes on for a while');
    expect(await codeOf(decodeImage(junk))).toMatch(/^E_IMAGE: <buffer>: not an image format that can be read/);
    expect(await codeOf(decodeImage(junk, { name: 'upload.jpg' }))).toMatch(/^E_IMAGE: upload\.jpg: /);
    expect(await codeOf(readImageInfo(junk))).toMatch(/^E_IMAGE: <buffer>/);
  });

  it('refuses formats outside the list (SVG)', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
    expect(await codeOf(decodeImage(svg))).toMatch(/^E_IMAGE: <buffer>: SVG images are not supported/);
  });

  it('a truncated JPEG is an error (failOn error); failOn none decodes what is there', async () => {
    const cut = join(TMP, 'cut.jpg');
    writeFileSync(cut, rocketBytes.subarray(0, rocketBytes.length >> 1));
    expect(await codeOf(decodeImage(cut))).toMatch(/^E_IMAGE: .*cut\.jpg: cannot decode the JPEG image: .*premature end/);
    const partial = await decodeImage(cut, { failOn: 'none' });
    expect([partial.width, partial.height]).toEqual([640, 427]);
  });

  it('corrupt PNG data is E_IMAGE naming the file and libpng reason', async () => {
    const png = Buffer.from(readFileSync(photo('chelsea.png')));
    const at = png.indexOf('IDAT') + 100; // in the image data, past the colour profile
    png[at] = png[at]! ^ 0xff;
    const bad = join(TMP, 'bad-crc.png');
    writeFileSync(bad, png);
    expect(await codeOf(decodeImage(bad))).toMatch(/^E_IMAGE: .*bad-crc\.png: cannot decode the PNG image: .*libpng/);
  });

  it('rejects images over limitInputPixels before decoding, with the size', async () => {
    expect(await codeOf(decodeImage(rocketBytes, { limitInputPixels: 100_000 }))).toMatch(
      /^E_IMAGE: <buffer>: 640×427 = 273280 pixels is over the limit of 100000 \(limitInputPixels\)/,
    );
    expect((await decodeImage(rocketBytes, { limitInputPixels: false })).width).toBe(640);
  });

  it('rejects a decompression bomb (header claims 100000×100000) quickly', async () => {
    const png = Buffer.from(await solid(64, 64, 1, 2, 3).png().toBuffer());
    // IHDR: length(4) "IHDR"(4) width(4) height(4) ... CRC over type+data (17 bytes).
    png.writeUInt32BE(100_000, 16);
    png.writeUInt32BE(100_000, 20);
    png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
    const t0 = performance.now();
    expect(await codeOf(decodeImage(png, { name: 'bomb.png' }))).toMatch(/^E_IMAGE: bomb\.png: 100000×100000 = 10000000000 pixels is over/);
    expect(performance.now() - t0).toBeLessThan(500);
    expect(await readImageInfo(png)).toMatchObject({ width: 100_000, height: 100_000 });
  });

  it('rejects malformed raw pixels', async () => {
    const bad: RawImage[] = [
      { width: 2, height: 2, data: new Uint8Array(11) },
      { width: 0, height: 2, data: new Uint8Array(0) },
      { width: 1, height: 1, data: new Float32Array(3) as unknown as Uint8Array },
    ];
    for (const img of bad) expect(await codeOf(decodeImage(img as ImageSource))).toMatch(/^E_IMAGE: <pixels>: raw image/);
  });
});

describe('readImageInfo and assertMinSize', () => {
  it('reads header facts of a file', async () => {
    expect(await readImageInfo(photo('rocket.jpg'))).toEqual({
      width: 640,
      height: 427,
      orientedWidth: 640,
      orientedHeight: 427,
      format: 'jpeg',
      hasAlpha: false,
      orientation: 1,
      bitDepth: 8,
      channels: 3,
      pages: 1,
      hasIccProfile: true, // Adobe RGB (1998)
    });
    expect(await readImageInfo(fixture('images', 'img4-64x48-rgba.png'))).toMatchObject({ hasAlpha: true, channels: 4 });
    expect(await readImageInfo(fixture('images', 'img3-70x66-l.png'))).toMatchObject({ channels: 1, width: 70, height: 66 });
    const raw: DecodedImage = await decodeImage({ width: 3, height: 2, data: new Uint16Array(18) });
    expect(await readImageInfo(raw)).toMatchObject({ format: 'raw', width: 3, height: 2, bitDepth: 16 });
  });

  it('assertMinSize names the source, the actual and the needed size', () => {
    expect(() => assertMinSize({ width: 64, height: 32 }, 32, 'ok.png')).not.toThrow();
    expect(() => assertMinSize({ width: 20, height: 15 }, 32, 'tiny.png')).toThrowError(
      /tiny\.png: the image is 20×15 pixels, the model needs at least 32×32/,
    );
    try {
      assertMinSize({ width: 100, height: 15 }, { width: 32, height: 16 }, 'strip.png');
      expect.unreachable();
    } catch (e) {
      expect((e as ClipIqaError).code).toBe('E_IMAGE_TOO_SMALL');
      expect((e as Error).message).toMatch(/100×15 .* 32×16/);
    }
  });
});
