/**
 * The browser build's `zip-directory.ts`: the central directory read by hand (APPNOTE 4.3.12-4.3.16, zip64 end
 * records and extra fields), with the same checks yauzl makes that matter here.
 */
export interface CentralEntry {
  readonly fileName: string;
  readonly compressionMethod: number;
  readonly generalPurposeBitFlag: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly relativeOffsetOfLocalHeader: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;

function u64(view: DataView, at: number): number {
  const n = view.getBigUint64(at, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('a zip64 field is too large');
  return Number(n);
}

export async function zipCentralDirectory(bytes: Uint8Array): Promise<CentralEntry[]> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The end record is in the last 22 + 65535 (comment) bytes.
  let end = -1;
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - 0xffff); at--) {
    if (view.getUint32(at, true) === EOCD) {
      end = at;
      break;
    }
  }
  if (end < 0) throw new Error('end of central directory record signature not found');
  let count = view.getUint16(end + 10, true);
  let size = view.getUint32(end + 12, true);
  let offset = view.getUint32(end + 16, true);
  if (count === 0xffff || size === 0xffffffff || offset === 0xffffffff) {
    const locator = end - 20;
    if (locator < 0 || view.getUint32(locator, true) !== ZIP64_LOCATOR) throw new Error('zip64 end of central directory locator not found');
    const at = u64(view, locator + 8);
    if (at + 56 > bytes.length || view.getUint32(at, true) !== ZIP64_EOCD) throw new Error('invalid zip64 end of central directory record');
    count = u64(view, at + 32);
    size = u64(view, at + 40);
    offset = u64(view, at + 48);
  }
  if (offset + size > bytes.length) throw new Error('the central directory lies past the end of the file');
  const decoder = new TextDecoder('utf-8');
  const latin1 = new TextDecoder('latin1');
  const out: CentralEntry[] = [];
  let at = offset;
  for (let i = 0; i < count; i++) {
    if (at + 46 > bytes.length || view.getUint32(at, true) !== CENTRAL) throw new Error(`invalid central directory file header signature at ${at}`);
    const flags = view.getUint16(at + 8, true);
    let compressedSize = view.getUint32(at + 20, true);
    let uncompressedSize = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    let localOffset = view.getUint32(at + 42, true);
    const nameStart = at + 46;
    if (nameStart + nameLength + extraLength > bytes.length) throw new Error('a central directory record runs past the end of the file');
    const fileName = (flags & 0x800 ? decoder : latin1).decode(bytes.subarray(nameStart, nameStart + nameLength));
    // zip64 extended information: the 0xffffffff fields, in this order, as 8-byte values.
    let extra = nameStart + nameLength;
    const extraEnd = extra + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = view.getUint16(extra, true);
      const len = view.getUint16(extra + 2, true);
      if (id === 0x0001) {
        let p = extra + 4;
        if (uncompressedSize === 0xffffffff) {
          uncompressedSize = u64(view, p);
          p += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = u64(view, p);
          p += 8;
        }
        if (localOffset === 0xffffffff) localOffset = u64(view, p);
      }
      extra += 4 + len;
    }
    out.push({
      fileName: fileName.replaceAll('\\', '/'),
      compressionMethod: view.getUint16(at + 10, true),
      generalPurposeBitFlag: flags,
      compressedSize,
      uncompressedSize,
      relativeOffsetOfLocalHeader: localOffset,
    });
    at = extraEnd + commentLength;
  }
  return out;
}
