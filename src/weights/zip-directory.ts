/**
 * A zip archive's central directory (zip64 included), here read with yauzl; `zip-directory.browser.ts` reads the
 * same records by hand for the browser build, where yauzl's Node streams are not available.
 */
import yauzl from 'yauzl';

/** What torch-save.ts needs of a central directory record. */
export type CentralEntry = Pick<
  yauzl.Entry,
  'fileName' | 'compressionMethod' | 'generalPurposeBitFlag' | 'compressedSize' | 'uncompressedSize' | 'relativeOffsetOfLocalHeader'
>;

/** The central directory's records in order; throws (plain errors) for an archive that cannot be read. */
export async function zipCentralDirectory(bytes: Uint8Array): Promise<CentralEntry[]> {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const zip = await yauzl.fromBufferPromise(buffer, { lazyEntries: true, decodeStrings: true, strictFileNames: false });
  const out: CentralEntry[] = [];
  for await (const e of zip.eachEntry()) out.push(e);
  return out;
}
