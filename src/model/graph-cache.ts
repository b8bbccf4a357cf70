/**
 * What a cold start would otherwise rebuild each time, kept on disk under the cache root:
 *
 *   <cache root>/graphs/<key>/meta.json    what the entry is, its files' sizes and CRC-32s, when it was made
 *   <cache root>/graphs/<key>/model.onnx   an image or text tower as onnxruntime optimised it (graph only)
 *   <cache root>/graphs/<key>/weights.bin  its initializers (external data of model.onnx)
 *   <cache root>/graphs/<key>/summary.json a checkpoint's summary (architecture, logit scale, positional table)
 *   <cache root>/graphs/<key>/tokens-<dtype>.bin  beside the text tower: the token embedding table as stored, whose
 *                                          few rows a new prompt needs are then read from here, not from the checkpoint
 *
 * Building RN50's image tower (reading 400 MB of weights, writing the ONNX graph, onnxruntime's optimisation of
 * it) takes seconds; a session over the optimised graph, loaded with optimisation off, takes about 0.15 s, and
 * onnxruntime maps the weights file rather than copying it. The key covers everything the optimised graph depends
 * on: the model's SHA-256 and architecture, the graph, precision, positional mode and calibration, this package's
 * and onnxruntime's versions, and the CPU (the optimised graph holds layout transforms for its vector width).
 *
 * An entry is written in a temporary folder and renamed into place whole, so no reader sees half of one; two
 * processes building the same entry both succeed (the second rename fails and its copy is dropped). Loading
 * checks every file's size and CRC-32 against meta.json; an entry that fails is removed and built again, never
 * used. The folder is bounded (default 4 GiB, `CLIP_IQA_GRAPH_CACHE_MB`): the least recently used entries go
 * first. `clip-iqa models built` lists it, `--clear` empties it.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { arch, cpus, platform } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { ClipIqaError } from '../errors.js';
import { PACKAGE } from '../util/package.js';

export const GRAPH_CACHE_ENV = 'CLIP_IQA_GRAPH_CACHE_MB';
export const DEFAULT_GRAPH_CACHE_BYTES = 4 * 1024 ** 3;
/** Bumped when the layout of an entry changes; older entries are then misses (and age out). */
const FORMAT = 1;
const META = 'meta.json';
const CHUNK = 8 << 20;

/** What an entry holds, for listings. */
export interface GraphEntryInfo {
  /** `graph` (an optimised tower) or `summary` (a checkpoint's summary). */
  readonly kind: 'graph' | 'summary';
  /** e.g. `image int8 none`, `text float32`. */
  readonly what: string;
  /** The model's name or path when it was built. */
  readonly model: string;
}

interface Meta extends GraphEntryInfo {
  readonly format: number;
  readonly key: string;
  readonly created: string;
  readonly files: Record<string, { readonly size: number; readonly crc32: number }>;
}

export interface GraphCacheEntry extends GraphEntryInfo {
  readonly key: string;
  readonly dir: string;
  readonly bytes: number;
  readonly created: string;
  readonly lastUsed: Date;
}

/** The bound on the folder: `CLIP_IQA_GRAPH_CACHE_MB` (0 turns the cache off), else 4 GiB. */
export function graphCacheBytes(env: NodeJS.ProcessEnv = process.env): number {
  const text = env[GRAPH_CACHE_ENV]?.trim();
  if (!text) return DEFAULT_GRAPH_CACHE_BYTES;
  const mb = Number(text);
  if (!Number.isFinite(mb) || mb < 0) {
    throw new ClipIqaError('E_OPTION', `${GRAPH_CACHE_ENV}=${JSON.stringify(text)} is not a size in MiB; give a number such as 4096 (0 turns the graph cache off).`);
  }
  return Math.floor(mb * 1024 ** 2);
}

let machineId: string | undefined;
/**
 * What about this machine and software an optimised graph depends on: package and onnxruntime versions, platform,
 * CPU model and instruction-set flags (Linux: /proc/cpuinfo).
 */
export function machineFingerprint(): string {
  if (machineId) return machineId;
  let flags = '';
  try {
    flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? '';
  } catch {
    /* not Linux: the CPU model stands for its features */
  }
  let ort = 'unknown';
  try {
    const main = createRequire(import.meta.url).resolve('onnxruntime-node');
    ort = (JSON.parse(readFileSync(join(dirname(main), '..', 'package.json'), 'utf8')) as { version?: string }).version ?? ort;
  } catch {
    /* unreadable: the package version pins onnxruntime-node's range */
  }
  machineId = JSON.stringify({ pkg: PACKAGE.version, ort, platform: platform(), arch: arch(), cpu: cpus()[0]?.model ?? '', flags });
  return machineId;
}

/** A cache key: the SHA-256 of the parts and the machine fingerprint. */
export function graphKey(parts: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(parts)).update(machineFingerprint()).update(`format ${FORMAT}`).digest('hex').slice(0, 40);
}

async function fileCrc32(path: string): Promise<{ size: number; crc32: number }> {
  const handle = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    let crc = 0;
    let size = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, CHUNK, size);
      if (bytesRead === 0) break;
      crc = crc32(buf.subarray(0, bytesRead), crc);
      size += bytesRead;
    }
    return { size, crc32: crc };
  } finally {
    await handle.close();
  }
}

/** A folder being filled with a new entry: files go in `dir`, then `commit` puts it in place. */
export interface PendingEntry {
  readonly dir: string;
  commit(info: GraphEntryInfo): Promise<boolean>;
  discard(): Promise<void>;
}

export class GraphCache {
  readonly dir: string;
  readonly maxBytes: number;

  constructor(root: string, maxBytes = graphCacheBytes()) {
    this.dir = join(root, 'graphs');
    this.maxBytes = maxBytes;
  }

  get enabled(): boolean {
    return this.maxBytes > 0;
  }

  #entryDir(key: string): string {
    if (!/^[0-9a-f]{16,64}$/.test(key)) throw new Error(`not a graph cache key: ${key}`);
    return join(this.dir, key);
  }

  async #meta(dir: string): Promise<Meta | undefined> {
    try {
      const meta = JSON.parse(await readFile(join(dir, META), 'utf8')) as Meta;
      return meta && meta.format === FORMAT && typeof meta.files === 'object' && meta.files !== null ? meta : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * The entry's folder when it is present, complete and of the right sizes (a quick check); `verify()` then checks
   * the contents. A damaged entry is removed.
   */
  async find(key: string): Promise<{ dir: string; verify: () => Promise<boolean> } | undefined> {
    if (!this.enabled) return undefined;
    const dir = this.#entryDir(key);
    const meta = await this.#meta(dir);
    if (!meta) {
      // A folder without a readable meta.json is damaged (meta.json is written before the rename).
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      return undefined;
    }
    const names = Object.keys(meta.files);
    const sizes = await Promise.all(names.map((n) => stat(join(dir, n)).then((s) => s.size, () => -1)));
    if (names.length === 0 || sizes.some((s, i) => s !== meta.files[names[i]!]!.size)) {
      await this.remove(key);
      return undefined;
    }
    const now = new Date();
    await utimes(join(dir, META), now, now).catch(() => undefined);
    return {
      dir,
      verify: async () => {
        try {
          for (const n of names) {
            const { size, crc32: c } = await fileCrc32(join(dir, n));
            if (size !== meta.files[n]!.size || c !== meta.files[n]!.crc32) throw new Error(`${n} does not match its CRC-32`);
          }
          return true;
        } catch {
          await this.remove(key);
          return false;
        }
      },
    };
  }

  /** A verified entry's folder, or undefined. */
  async get(key: string): Promise<string | undefined> {
    const found = await this.find(key);
    return found && (await found.verify()) ? found.dir : undefined;
  }

  /** A temporary folder for a new entry of `key`; undefined when the cache is off or cannot be written. */
  async begin(key: string): Promise<PendingEntry | undefined> {
    if (!this.enabled) return undefined;
    const final = this.#entryDir(key);
    const dir = `${final}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`;
    try {
      await mkdir(dir, { recursive: true });
    } catch {
      return undefined;
    }
    const discard = () => rm(dir, { recursive: true, force: true }).catch(() => undefined);
    return {
      dir,
      discard,
      commit: async (info) => {
        try {
          const files: Meta['files'] = {};
          for (const n of (await readdir(dir)).sort()) files[n] = await fileCrc32(join(dir, n));
          const meta: Meta = { format: FORMAT, key, created: new Date().toISOString(), ...info, files };
          await writeFile(join(dir, META), JSON.stringify(meta, null, 2));
          // A whole folder appears at once; when another process got there first, its copy stays.
          await rename(dir, final);
        } catch {
          await discard();
          return false;
        }
        await this.evict().catch(() => undefined);
        return true;
      },
    };
  }

  /** Every complete entry, most recently used first. */
  async list(): Promise<GraphCacheEntry[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: GraphCacheEntry[] = [];
    for (const key of names) {
      if (!/^[0-9a-f]{16,64}$/.test(key)) continue;
      const dir = join(this.dir, key);
      const meta = await this.#meta(dir);
      const used = await stat(join(dir, META)).then((s) => s.mtime, () => undefined);
      if (!meta || !used) continue;
      const bytes = Object.values(meta.files).reduce((a, f) => a + f.size, 0);
      out.push({ key, dir, bytes, kind: meta.kind, what: meta.what, model: meta.model, created: meta.created, lastUsed: used });
    }
    return out.sort((a, b) => b.lastUsed.getTime() - a.lastUsed.getTime());
  }

  async remove(key: string): Promise<void> {
    // Renamed away first, so that a reader never finds a folder half removed.
    const dir = this.#entryDir(key);
    const gone = `${dir}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.del`;
    try {
      await rename(dir, gone);
    } catch {
      return;
    }
    await rm(gone, { recursive: true, force: true }).catch(() => undefined);
  }

  /** Removes the least recently used entries until the folder is within `maxBytes`; returns what was removed. */
  async evict(maxBytes = this.maxBytes): Promise<GraphCacheEntry[]> {
    const entries = await this.list();
    let total = entries.reduce((a, e) => a + e.bytes, 0);
    const removed: GraphCacheEntry[] = [];
    while (total > maxBytes && entries.length > 0) {
      const e = entries.pop()!;
      await this.remove(e.key);
      total -= e.bytes;
      removed.push(e);
    }
    return removed;
  }

  /** Removes everything, leftovers of interrupted writes included; returns the bytes freed by complete entries. */
  async clear(): Promise<{ entries: number; bytes: number }> {
    const entries = await this.list();
    let names: string[] = [];
    try {
      names = await readdir(this.dir);
    } catch {
      /* nothing there */
    }
    for (const n of names) {
      if (/^[0-9a-f]{16,64}$/.test(n)) await this.remove(n);
      else if (/\.(tmp|del)$/.test(n)) await rm(join(this.dir, n), { recursive: true, force: true }).catch(() => undefined);
    }
    return { entries: entries.length, bytes: entries.reduce((a, e) => a + e.bytes, 0) };
  }
}
