/**
 * Readers for what `torch.save` and `torch.jit.save` write:
 *
 * - the zip archive of PyTorch ≥ 1.6 (and every TorchScript archive): `<top>/data.pkl` holds the pickled
 *   object, `<top>/data/<key>` the raw bytes of each storage. Entries are STORED (uncompressed, 64-byte
 *   aligned), so tensors are views of the file's bytes;
 * - the legacy format of earlier releases: a magic number, two small pickles, the object's pickle, the
 *   pickled list of storage keys, then each storage as an int64 element count followed by its bytes.
 *
 * Both return the raw unpickled root; `stateDictFromValue` flattens it into dotted tensor names.
 */
import { ClipIqaError } from '../errors.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor.js';
import { formatBytes } from '../util/read-file.js';
import { inflateRaw } from '../util/zlib.js';
import { Budget, type ReadLimits, raiseHint, resolveReadLimits } from './limits.js';
import {
  PickleGlobal,
  type PickleValue,
  TorchScriptObject,
  TorchStorage,
  TorchTensor,
  describeValue,
  isArray,
  isPlaceholder,
  pickleBudget,
  placeholderClass,
  placeholderRefusal,
  readPickle,
  storageDType,
} from './pickle.js';
import { StateDict } from './state-dict.js';
import { type CentralEntry, zipCentralDirectory } from './zip-directory.js';

export interface TorchArchive {
  /** `zip` for PyTorch ≥ 1.6 and TorchScript archives, `legacy` for the format before. */
  readonly container: 'zip' | 'legacy';
  /** The unpickled root object: a dict, an OrderedDict, a tensor, a TorchScript module, … */
  readonly root: PickleValue;
  /** The zip's top folder (arbitrary: the saved file's name, `archive`, …); empty for legacy files. */
  readonly archiveName: string;
  /** Every entry name of the zip (empty for legacy files). */
  readonly entries: readonly string[];
}

// ---------------------------------------------------------------------------------------------------------
// Zip archives

interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly flags: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly localHeaderOffset: number;
  /** Where the entry's (compressed) bytes lie in the file: after its local header, `compressedSize` long. */
  readonly dataStart: number;
  readonly dataEnd: number;
}

const LOCAL_HEADER_SIGNATURE = 0x04034b50;
/** What a zip entry other than data.pkl and the storages (byteorder, version, …) may inflate to. */
const SMALL_ENTRY_BYTES = 1 << 20;

export function isZip(bytes: Uint8Array): boolean {
  // Local file header, or the end record of an empty archive.
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && ((bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6));
}

/**
 * The central directory, read with yauzl (zip64 included), each entry located through its local header.
 * Entries must not share bytes and names must be unique: a zip bomb points many entries at one huge deflate
 * stream, and with duplicate names torch reads the first while other zip readers read the last, so the
 * tensors would depend on the reader. Both are refused.
 */
async function readCentralDirectory(bytes: Uint8Array, source: string): Promise<Map<string, ZipEntry>> {
  const entries = new Map<string, ZipEntry>();
  try {
    for (const e of await zipCentralDirectory(bytes)) {
      if (entries.has(e.fileName)) {
        throw new ClipIqaError(
          'E_WEIGHTS_FORMAT',
          `${source}: the zip holds two entries named "${e.fileName}"; torch reads the first, other zip readers the last, ` +
            'so what the checkpoint holds is ambiguous. It is corrupt or tampered with: re-download it.',
        );
      }
      entries.set(e.fileName, locate(bytes, source, e));
    }
  } catch (e) {
    if (e instanceof ClipIqaError) throw e;
    throw new ClipIqaError(
      'E_WEIGHTS_FORMAT',
      `${source}: not a readable zip archive (${(e as Error).message}). ` +
        'PyTorch checkpoints are zip files; this one is truncated or corrupt: re-download it.',
      { cause: e },
    );
  }
  const sorted = [...entries.values()].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
  for (let i = 1; i < sorted.length; i++) {
    const [prev, next] = [sorted[i - 1]!, sorted[i]!];
    if (next.localHeaderOffset < prev.dataEnd) {
      throw new ClipIqaError(
        'E_WEIGHTS_FORMAT',
        `${source}: zip entries "${prev.name}" and "${next.name}" overlap (bytes ${prev.localHeaderOffset}..${prev.dataEnd} and from ${next.localHeaderOffset}); ` +
          'no zip writer makes that, zip bombs do. The file is corrupt or hostile: re-download it.',
      );
    }
  }
  return entries;
}

/**
 * An entry's place in the file. The local header is parsed because its extra field (torch pads it to align the
 * data) may differ in length from the central directory's.
 */
function locate(bytes: Uint8Array, source: string, e: CentralEntry): ZipEntry {
  const bad = (what: string) =>
    new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: zip entry "${e.fileName}" ${what}. The file is truncated or corrupt: re-download it.`);
  const at = e.relativeOffsetOfLocalHeader;
  if (at + 30 > bytes.length) throw bad(`has its header at byte ${at}, past the end of the ${bytes.length}-byte file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, 30);
  if (view.getUint32(0, true) !== LOCAL_HEADER_SIGNATURE) throw bad(`has no local file header at byte ${at}`);
  const dataStart = at + 30 + view.getUint16(26, true) + view.getUint16(28, true);
  const dataEnd = dataStart + e.compressedSize;
  if (dataEnd > bytes.length) throw bad(`spans bytes ${dataStart}..${dataEnd}, past the end of the ${bytes.length}-byte file`);
  return {
    name: e.fileName,
    method: e.compressionMethod,
    flags: e.generalPurposeBitFlag,
    compressedSize: e.compressedSize,
    uncompressedSize: e.uncompressedSize,
    localHeaderOffset: at,
    dataStart,
    dataEnd,
  };
}

/**
 * An entry's bytes: a view of `bytes` when STORED, as torch writes them; inflated when DEFLATEd (a checkpoint
 * re-zipped by hand), never to more than `cap` bytes (what the content needs) and within the load's budget.
 */
function entryBytes(bytes: Uint8Array, entry: ZipEntry, source: string, cap: { bytes: number; why: string }, inflated: Budget): Uint8Array {
  const bad = (what: string) =>
    new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: zip entry "${entry.name}" ${what}. The file is truncated or corrupt: re-download it.`);
  if (entry.flags & 0x1) throw bad('is encrypted');
  const raw = bytes.subarray(entry.dataStart, entry.dataEnd);
  if (entry.method === 0) {
    if (entry.compressedSize !== entry.uncompressedSize) throw bad('is stored uncompressed but its two sizes differ');
    return raw;
  }
  if (entry.method === 8) {
    if (entry.uncompressedSize > cap.bytes) {
      throw new ClipIqaError(
        'E_WEIGHTS_FORMAT',
        `${source}: zip entry "${entry.name}" declares ${formatBytes(entry.uncompressedSize)} when inflated, more than ${cap.why}; ` +
          'it is not inflated. The file is corrupt or a decompression bomb.',
      );
    }
    inflated.charge(entry.uncompressedSize);
    let out: Uint8Array;
    try {
      out = inflateRaw(raw, entry.uncompressedSize);
    } catch (e) {
      throw bad(`does not inflate to the ${entry.uncompressedSize} bytes it declares (${(e as Error).message})`);
    }
    if (out.length !== entry.uncompressedSize) throw bad(`inflates to ${out.length} bytes, not the ${entry.uncompressedSize} declared`);
    return out;
  }
  throw bad(`uses compression method ${entry.method}; only stored and deflated entries are read`);
}

/** `<top>/data.pkl`: torch reads the folder name from the archive, so any single top folder is accepted. */
function findDataPkl(entries: Map<string, ZipEntry>, source: string): string {
  const candidates = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (candidates.length === 1) return candidates[0]!.slice(0, -'/data.pkl'.length);
  const names = [...entries.keys()];
  const listing = names.slice(0, 8).join(', ') + (names.length > 8 ? `, … (${names.length} entries)` : '');
  if (candidates.length > 1) {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: the zip holds ${candidates.length} top-level data.pkl files (${candidates.join(', ')}); a PyTorch checkpoint has one.`);
  }
  if (names.some((n) => /^[^/]+\/model\.json$/.test(n))) {
    throw new ClipIqaError(
      'E_WEIGHTS_FORMAT',
      `${source}: a TorchScript archive in the format of PyTorch 1.3 or earlier (model.json, no data.pkl), which this ` +
        'reader does not support. Re-save it with a recent PyTorch: torch.jit.save(torch.jit.load(path), new_path).',
    );
  }
  throw new ClipIqaError(
    'E_WEIGHTS_FORMAT',
    `${source}: a zip file without <folder>/data.pkl, so not a PyTorch checkpoint (entries: ${listing || 'none'}). ` +
      'Expected a file written by torch.save or torch.jit.save, or a safetensors file.',
  );
}

/** Reads a zip checkpoint written by `torch.save` (PyTorch ≥ 1.6) or `torch.jit.save`, held in memory. */
export async function readTorchZip(bytes: Uint8Array, source: string, limitOverrides: Partial<ReadLimits> = {}): Promise<TorchArchive> {
  const limits = resolveReadLimits(limitOverrides);
  const entries = await readCentralDirectory(bytes, source);
  const archiveName = findDataPkl(entries, source);
  const inflated = new Budget(
    limits.inflateBytes,
    () =>
      new ClipIqaError(
        'E_WEIGHTS_FORMAT',
        `${source}: inflating its deflated zip entries would take more than ${formatBytes(limits.inflateBytes)} (inflateBytes); ` +
          `torch stores checkpoints uncompressed, so this is a re-zipped or hostile file; ${raiseHint('inflateBytes')}.`,
      ),
  );
  const budget = pickleBudget(limits, source);
  const small = { bytes: SMALL_ENTRY_BYTES, why: `the ${formatBytes(SMALL_ENTRY_BYTES)} such an entry may take` };
  const read = (name: string) => entryBytes(bytes, entries.get(name)!, source, small, inflated);

  const byteorder = entries.has(`${archiveName}/byteorder`) ? new TextDecoder().decode(read(`${archiveName}/byteorder`)).trim() : 'little';
  if (byteorder !== 'little') {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: saved on a ${byteorder}-endian machine; only little-endian checkpoints are read. Re-save it on a little-endian machine (x86, ARM).`);
  }

  const storages = new Map<string, TorchStorage>();
  const entryData = new Map<string, Uint8Array>();
  const persistentLoad = (pid: PickleValue): PickleValue => {
    if (isModuleId(pid)) return pid[1] ?? null;
    const { dtype, key, numel } = parseStorageId(pid, source);
    const cacheKey = `${key}\0${dtype}`;
    const cached = storages.get(cacheKey);
    if (cached) return cached;
    const name = `${archiveName}/data/${key}`;
    const entry = entries.get(name);
    if (!entry) {
      throw new ClipIqaError(
        'E_WEIGHTS_FORMAT',
        `${source}: the pickle refers to storage "${key}" but the archive has no entry ${name}. The file is incomplete or corrupt: re-download it.`,
      );
    }
    const need = numel * BYTES_PER_ELEMENT[dtype];
    const data = entryData.get(name) ?? entryBytes(bytes, entry, source, { bytes: need, why: `the ${need} bytes its tensors need` }, inflated);
    entryData.set(name, data);
    if (data.length < need) {
      throw new ClipIqaError(
        'E_WEIGHTS_FORMAT',
        `${source}: storage ${name} holds ${data.length} bytes, but the pickle declares ${numel} ${dtype} elements (${need} bytes). The file is corrupt: re-download it.`,
      );
    }
    const storage = new TorchStorage(dtype, data.subarray(0, need), key);
    storages.set(cacheKey, storage);
    return storage;
  };
  const dataPkl = `${archiveName}/data.pkl`;
  // An inflated pickle is charged to the same budget as what it builds.
  const pickleCap = { bytes: budget.remaining, why: `the ${formatBytes(limits.pickleBudget)} pickle budget (pickleBudget)` };
  const pickleBytes = entryBytes(bytes, entries.get(dataPkl)!, source, pickleCap, inflated);
  if (entries.get(dataPkl)!.method !== 0) budget.charge(pickleBytes.length);
  const { value } = readPickle(pickleBytes, 0, { source: `${source}: ${dataPkl}`, persistentLoad, torchScriptClasses: true, limits, budget });
  return { container: 'zip', root: value, archiveName, entries: [...entries.keys()] };
}

interface StorageId {
  readonly dtype: TorchStorage['dtype'];
  readonly key: string;
  readonly numel: number;
  /** Legacy files only: (view key, element offset, element count) of a storage view. */
  readonly view: { key: string; offset: number; numel: number } | null;
}

/**
 * `('module', class, source_file, source)`: torch.save records the class of each pickled nn.Module with its
 * source code. torch.load returns the class; here it is the class's inert placeholder, so a model pickled
 * whole is refused where the weights depend on it, and one pickled beside a state dict is harmless.
 */
function isModuleId(pid: PickleValue): pid is readonly PickleValue[] {
  return isArray(pid) && pid[0] === 'module';
}

/** `('storage', storage_type, key, location, numel[, view_metadata])`; the location (cpu, cuda:0) is irrelevant here. */
function parseStorageId(pid: PickleValue, source: string): StorageId {
  const bad = (what: string) => new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: malformed storage reference ${what}. The checkpoint is corrupt.`);
  if (typeof pid === 'string' && pid.startsWith("('storage'")) {
    throw new ClipIqaError(
      'E_WEIGHTS_FORMAT',
      `${source}: saved with pickle protocol 0, which writes each storage reference as text (${pid.slice(0, 60)}…); ` +
        'PyTorch itself cannot load such a file. Re-save the weights with the default protocol (torch.save(obj, path)).',
    );
  }
  if (!isArray(pid) || pid.length < 5) throw bad(`(${describeValue(pid)}, expected ('storage', type, key, location, size))`);
  const [tag, type, key, , numel, view] = pid;
  if (tag !== 'storage') throw bad(`tagged ${JSON.stringify(tag)} rather than 'storage'`);
  if (isPlaceholder(type)) throw placeholderRefusal(source, placeholderClass(type), 'as the type of a storage');
  if (!(type instanceof PickleGlobal) || type.kind !== 'storage-type') throw bad(`with type ${describeValue(type)}`);
  if (typeof key !== 'string' && typeof key !== 'number') throw bad(`with key ${describeValue(key)}`);
  if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) throw bad(`with size ${String(numel)}`);
  let parsedView: StorageId['view'] = null;
  if (view !== undefined && view !== null) {
    const [vkey, voffset, vnumel] = isArray(view) ? view : [];
    if ((typeof vkey !== 'string' && typeof vkey !== 'number') || typeof voffset !== 'number' || typeof vnumel !== 'number') {
      throw bad(`with view ${describeValue(view)}`);
    }
    parsedView = { key: String(vkey), offset: voffset, numel: vnumel };
  }
  return { dtype: storageDType(type), key: String(key), numel, view: parsedView };
}

// ---------------------------------------------------------------------------------------------------------
// Legacy format (PyTorch < 1.6)

/** 0x1950a86a20f9469cfc6c, the first pickle of every legacy torch.save file. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

/**
 * Whether the bytes start like a legacy torch.save file: a pickle holding the magic number, which starts with
 * PROTO (protocol 2 and newer) or, in protocols 0 and 1, with the LONG opcode's `L`.
 */
export function isLegacyTorchSave(bytes: Uint8Array): boolean {
  if (bytes.length < 2 || !((bytes[0] === 0x80 && bytes[1]! <= 5) || bytes[0] === 0x4c)) return false;
  try {
    return readPickle(bytes.subarray(0, Math.min(bytes.length, 64)), 0, { source: 'sniff' }).value === LEGACY_MAGIC;
  } catch {
    return false;
  }
}

/** Reads a file written by `torch.save` before PyTorch 1.6 (or with `_use_new_zipfile_serialization=False`). */
export function readLegacyTorchSave(bytes: Uint8Array, source: string, limitOverrides: Partial<ReadLimits> = {}): TorchArchive {
  const bad = (what: string) =>
    new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: not a valid legacy torch.save file: ${what}. Re-download it, or re-save it with a recent PyTorch.`);
  const limits = resolveReadLimits(limitOverrides);
  const opts = { source, limits };
  let at = 0;
  const magic = readPickle(bytes, at, opts);
  if (magic.value !== LEGACY_MAGIC) throw bad('it does not start with the magic number');
  const protocol = readPickle(bytes, magic.end, opts);
  if (protocol.value !== LEGACY_PROTOCOL) throw bad(`protocol version ${String(protocol.value)} is not ${LEGACY_PROTOCOL}`);
  const sysInfo = readPickle(bytes, protocol.end, opts);
  if (sysInfo.value instanceof Map && sysInfo.value.get('little_endian') === false) {
    throw bad('it was saved on a big-endian machine; only little-endian checkpoints are read');
  }
  at = sysInfo.end;

  // The storages follow the object's pickle, so their positions are known only after it. Pass 1 reads the
  // pickle without building tensors, recording which storages it names; that locates the key list and the
  // storage bytes; pass 2 reads the object for real.
  const declared = new Map<string, StorageId>();
  // Each pass has the whole budget: the first pass's objects are garbage before the second builds its own.
  const probe = readPickle(bytes, at, {
    source,
    limits,
    persistentLoad: (pid) => {
      if (isModuleId(pid)) return pid[1] ?? null;
      const id = parseStorageId(pid, source);
      declared.set(id.key, id);
      return new TorchStorage(id.dtype, new Uint8Array(0), id.key);
    },
    shapesOnly: true,
  });
  const keys = readPickle(bytes, probe.end, opts);
  if (!isArray(keys.value) || !keys.value.every((k) => typeof k === 'string' || typeof k === 'number')) {
    throw bad('the storage key list is missing or malformed');
  }
  let pos = keys.end;
  const roots = new Map<string, Uint8Array>();
  for (const k of keys.value) {
    const key = String(k);
    const id = declared.get(key);
    if (!id) throw bad(`storage "${key}" is listed but no tensor uses it`);
    if (pos + 8 > bytes.length) throw bad(`storage "${key}" starts past the end of the file (truncated?)`);
    const count = new DataView(bytes.buffer, bytes.byteOffset + pos, 8).getBigInt64(0, true);
    if (count !== BigInt(id.numel)) throw bad(`storage "${key}" holds ${count} elements, but the pickle declares ${id.numel}`);
    const start = pos + 8;
    const end = start + id.numel * BYTES_PER_ELEMENT[id.dtype];
    if (end > bytes.length) throw bad(`storage "${key}" runs past the end of the file at byte ${bytes.length} (truncated?)`);
    roots.set(key, bytes.subarray(start, end));
    pos = end;
  }

  const root = readPickle(bytes, at, {
    source,
    limits,
    persistentLoad: (pid) => {
      if (isModuleId(pid)) return pid[1] ?? null;
      const id = parseStorageId(pid, source);
      const data = roots.get(id.key);
      if (!data) throw bad(`the pickle refers to storage "${id.key}", which the file does not hold`);
      if (!id.view) return new TorchStorage(id.dtype, data, id.key);
      const size = BYTES_PER_ELEMENT[id.dtype];
      if (id.view.offset < 0 || id.view.numel < 0 || id.view.offset + id.view.numel > id.numel) {
        throw bad(`storage view "${id.view.key}" (elements ${id.view.offset}..${id.view.offset + id.view.numel}) lies outside storage "${id.key}"`);
      }
      return new TorchStorage(id.dtype, data.subarray(id.view.offset * size, (id.view.offset + id.view.numel) * size), id.view.key, id.key);
    },
  });
  return { container: 'legacy', root: root.value, archiveName: '', entries: [] };
}

// ---------------------------------------------------------------------------------------------------------
// Flattening

/** How deep nested dicts may go: real checkpoints nest a few levels; deeper is corrupt or hostile input. */
const MAX_DEPTH = 200;

/**
 * The tensors of an unpickled value as a StateDict of dotted names: nested dicts (and TorchScript module
 * attributes) are joined with '.', e.g. `{visual: {conv1: {weight: T}}}` → `visual.conv1.weight`. Leaves that
 * are not tensors (numbers, strings, lists, None) are skipped. A bare tensor becomes the single name ''.
 * An object of a class outside the allow-list among the tensors is refused: the weights would depend on it.
 */
export function stateDictFromValue(value: PickleValue, source: string, metadata: Record<string, string> = {}): StateDict {
  const out = new Map<string, Tensor>();
  // Each container is walked once. A pickle can make dicts contain or share one another (a chain of dicts each
  // holding the next twice has 2^depth paths); a container reached again adds no names.
  const walked = new Set<object>();
  let placeholder: { className: string; name: string } | undefined;
  const walk = (v: PickleValue, name: string, depth: number): void => {
    if (v instanceof TorchTensor) {
      out.set(name, v);
      return;
    }
    if (isPlaceholder(v)) {
      placeholder ??= { className: placeholderClass(v), name };
      return;
    }
    let children: Iterable<[PickleValue, PickleValue]>;
    if (v instanceof Map) children = v;
    else if (v instanceof TorchScriptObject) children = v.attributes;
    else return;
    if (walked.has(v)) return;
    if (depth > MAX_DEPTH) {
      throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: dicts nested more than ${MAX_DEPTH} deep (at "${name}"); the checkpoint is corrupt.`);
    }
    walked.add(v);
    for (const [k, child] of children) {
      if (typeof k !== 'string' && typeof k !== 'number') continue;
      walk(child, name === '' ? String(k) : `${name}.${k}`, depth + 1);
    }
  };
  walk(value, '', 0);
  // Without tensors this is no state dict at all, which the caller reports as such.
  if (placeholder && out.size > 0) {
    const { className, name } = placeholder;
    throw placeholderRefusal(source, className, name === '' ? 'as the state dict itself' : `under "${name}" in the state dict`);
  }
  return new StateDict(source, out, metadata);
}
