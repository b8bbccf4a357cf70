/**
 * A CLIP checkpoint as the encoder needs it at start-up: its architecture, logit scale and the image tower's
 * positional table, with the state dict read only when a graph must be built (or token embeddings looked up and the
 * text graph's cache entry does not hold them).
 *
 * When every graph a run needs is in the graph cache (model/graph-cache.ts), the 400 MB of weights are never read:
 * the checkpoint's summary is kept there too, under a key of the file's SHA-256, its config and the registry's
 * architecture, so that a cached run opens no checkpoint at all.
 */
import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import { open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BYTES_PER_ELEMENT, type DType, type Tensor, scalarValue, toFloat32, typedView } from '../tensor.js';
import type { ClipArchitecture, TextTower } from '../weights/architecture.js';
import { type ClipModelFiles, loadClipModel } from '../weights/layout.js';
import { trace, traced } from '../util/trace.js';
import type { ResolvedFile } from '../hub/resolve.js';
import { rememberedSha256 } from '../util/file-sha256.js';
import { readCheckpointFile } from '../weights/limits.js';
import { StateDict } from '../weights/state-dict.js';
import { GraphCache, graphCacheBytes, graphKey } from './graph-cache.js';

export interface ModelWeights {
  /** Names the checkpoint in messages. */
  readonly source: string;
  readonly architecture: ClipArchitecture;
  /** The checkpoint's `logit_scale` (a log), as stored. */
  readonly logitScale: number;
  /** The image tower's positional table (attention pool for ResNets), float32, (grid² + 1) rows. */
  readonly positions: Float32Array;
  /** The OpenAI-layout weights, read on the first call. */
  stateDict(): Promise<StateDict>;
  /** The weights when they have been read. */
  readonly loaded: StateDict | undefined;
}

export function positionsName(architecture: ClipArchitecture): string {
  return architecture.vision.family === 'resnet' ? 'visual.attnpool.positional_embedding' : 'visual.positional_embedding';
}

/** Weights already in memory. */
export function weightsOf(sd: StateDict, architecture: ClipArchitecture): ModelWeights {
  let positions: Float32Array | undefined;
  return {
    source: sd.source,
    architecture,
    logitScale: scalarValue(sd.get('logit_scale')),
    // Widened when first asked for, as a state dict built for one tower may lack it.
    get positions() {
      return (positions ??= sd.float32(positionsName(architecture)));
    },
    stateDict: () => Promise.resolve(sd),
    loaded: sd,
  };
}

interface Summary {
  readonly version: number;
  readonly source: string;
  readonly architecture: ClipArchitecture;
  readonly logitScale: number;
  readonly positions: number;
}

const SUMMARY_VERSION = 1;
const SUMMARY = 'summary.json';
const POSITIONS = 'positions.bin';

/** Where a model's summary and graphs are cached: its SHA-256 and what else decides the architecture. */
export interface ModelCacheKey {
  readonly cache: GraphCache;
  /** SHA-256 of the checkpoint file. */
  readonly sha256: string;
  /** A name for listings. */
  readonly name: string;
}

async function configDigest(config: string | null | undefined): Promise<string | null> {
  if (!config) return null;
  try {
    return createHash('sha256').update(await readFile(config)).digest('hex');
  } catch {
    return 'unreadable';
  }
}

/** Lazily read weights over a summary from the cache. */
class LazyWeights implements ModelWeights {
  readonly source: string;
  readonly architecture: ClipArchitecture;
  readonly logitScale: number;
  readonly positions: Float32Array;
  readonly #files: ClipModelFiles;
  #sd: Promise<StateDict> | undefined;
  loaded: StateDict | undefined;

  constructor(summary: Summary, positions: Float32Array, files: ClipModelFiles) {
    this.source = summary.source;
    this.architecture = summary.architecture;
    this.logitScale = summary.logitScale;
    this.positions = positions;
    this.#files = files;
  }

  stateDict(): Promise<StateDict> {
    if (!this.#sd) {
      this.#sd = traced('checkpoint read (a graph to build)', () => loadClipModel(this.#files)).then((m) => (this.loaded = m.sd));
      this.#sd.catch(() => (this.#sd = undefined));
    }
    return this.#sd;
  }
}

/**
 * The model behind `files`: from the cached summary when there is one (the checkpoint is read later, if ever),
 * else read now and its summary cached.
 */
export async function openClipModel(
  files: ClipModelFiles,
  key?: ModelCacheKey,
  /** The checkpoint file's bytes when the caller has read them already (to hash them): read from there, not again. */
  bytes?: Uint8Array,
): Promise<ModelWeights & { readonly cacheKey?: string }> {
  const cacheKey =
    key?.cache.enabled && typeof files.weights === 'string'
      ? graphKey({
          kind: 'summary',
          version: SUMMARY_VERSION,
          sha256: key.sha256,
          config: await configDigest(files.config),
          known: files.architecture ?? null,
        })
      : undefined;
  if (key && cacheKey) {
    const dir = await key.cache.get(cacheKey);
    if (dir) {
      try {
        const summary = JSON.parse(await readFile(join(dir, SUMMARY), 'utf8')) as Summary;
        const bytes = await readFile(join(dir, POSITIONS));
        if (summary.version === SUMMARY_VERSION && bytes.byteLength === summary.positions * 4) {
          const positions = new Float32Array(summary.positions);
          new Uint8Array(positions.buffer).set(bytes);
          trace('checkpoint summary from the cache');
          return Object.assign(new LazyWeights(summary, positions, files), { cacheKey });
        }
      } catch {
        /* a summary that cannot be read is rebuilt below */
      }
      await key.cache.remove(cacheKey);
    }
  }
  const path = typeof files.weights === 'string' ? files.weights : undefined;
  const { sd, architecture } = await traced('checkpoint read', () => loadClipModel(bytes && path ? { ...files, weights: bytes, source: files.source ?? path } : files));
  const weights = weightsOf(sd, architecture);
  if (key && cacheKey) {
    const pending = await key.cache.begin(cacheKey);
    if (pending) {
      try {
        const summary: Summary = { version: SUMMARY_VERSION, source: sd.source, architecture, logitScale: weights.logitScale, positions: weights.positions.length };
        await writeFile(join(pending.dir, SUMMARY), JSON.stringify(summary));
        const p = weights.positions;
        await writeFile(join(pending.dir, POSITIONS), new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
        await pending.commit({ kind: 'summary', what: 'checkpoint summary', model: key.name });
      } catch {
        await pending.discard();
      }
    }
  }
  return { ...weights, ...(cacheKey ? { cacheKey } : {}) };
}

/** What `openCheckpoint` finds: the weights, the checkpoint's SHA-256, and where its graphs are cached. */
export interface OpenedCheckpoint {
  readonly weights: ModelWeights;
  /** SHA-256 (hex) of the checkpoint (see `ClipIqa.modelSha256`); null for a StateDict or an unreadable file. */
  readonly sha256: string | null;
  readonly graphs?: { readonly cache: GraphCache; readonly model: string; readonly name: string };
}

/**
 * The checkpoint `ClipIqa.load` was given (a resolved file, bytes or a StateDict), with its SHA-256 (verified by
 * the hub, or remembered under the cache root, or computed from the bytes read for the weights: a file is read
 * once) and, unless `keep` is false, its summary and graphs from the graph cache.
 */
export async function openCheckpoint(args: {
  readonly model: string | Uint8Array | StateDict | undefined;
  readonly modelFile: ResolvedFile | undefined;
  readonly cacheRoot: string;
  readonly keep: boolean;
  readonly name: string | undefined;
}): Promise<OpenedCheckpoint> {
  const { model, modelFile, cacheRoot } = args;
  let bytes: Uint8Array | undefined;
  const readAndHash = async (real: string) => {
    bytes = await readCheckpointFile(real);
    return traced('checkpoint hashed', () => createHash('sha256').update(bytes!).digest('hex'));
  };
  const sha256 = modelFile
    ? (modelFile.sha256 ?? (await rememberedSha256(modelFile.path, cacheRoot, readAndHash).catch(() => null)))
    : model instanceof Uint8Array
      ? createHash('sha256').update(model).digest('hex')
      : null;
  const cache = args.keep && graphCacheBytes() > 0 ? new GraphCache(cacheRoot) : undefined;
  const name = args.name ?? modelFile?.entry?.name ?? modelFile?.path ?? 'checkpoint';
  const weights = await openClipModel(
    {
      weights: model instanceof StateDict || model instanceof Uint8Array ? model : modelFile!.path,
      config: modelFile?.config,
      architecture: modelFile?.entry?.kind === 'model' ? modelFile.entry.architecture : undefined,
    },
    cache && sha256 ? { cache, sha256, name } : undefined,
    bytes,
  );
  return { weights, sha256, ...(cache && weights.cacheKey ? { graphs: { cache, model: weights.cacheKey, name } } : {}) };
}

// -- token embeddings ---------------------------------------------------------------------------------------------

/**
 * Token embedding rows, float32, as `toFloat32` widens them from the stored dtype. A prompt needs a few rows of a
 * table of 25 M values (RN50: a quarter of the checkpoint), so the text graph's cache entry keeps the table as stored
 * (`tokens-<dtype>.bin`, raw little-endian rows), and a run whose text graph comes from the cache reads just the rows
 * it needs from there instead of the whole checkpoint.
 */
export interface TokenTable {
  /** The rows of `ids` (each checked to be in the vocabulary), (ids.length, width). */
  rows(ids: readonly number[]): Float32Array;
  close(): Promise<void>;
}

const TOKEN_EMBEDDING = 'token_embedding.weight';
const TOKEN_FILE = /^tokens-(float32|float16|bfloat16)\.bin$/;

/** Widens `count` rows, each found by `row(id)` in the stored dtype, reading each distinct id once (padding repeats). */
function widenRows(ids: readonly number[], width: number, row: (id: number) => Tensor): Float32Array {
  const out = new Float32Array(ids.length * width);
  const seen = new Map<number, number>();
  ids.forEach((id, i) => {
    const first = seen.get(id);
    if (first !== undefined) out.copyWithin(i * width, first * width, (first + 1) * width);
    else {
      out.set(toFloat32(row(id)), i * width);
      seen.set(id, i);
    }
  });
  return out;
}

/** The table of weights in memory. */
export function tokenTableOf(sd: StateDict, text: Pick<TextTower, 'width' | 'vocabSize'>): TokenTable {
  const table = sd.get(TOKEN_EMBEDDING);
  const { width } = text;
  return {
    // Row by row: the whole float16 table widened would hold 100 MB (RN50) for the few rows prompts use.
    rows: (ids) => widenRows(ids, width, (id) => ({ dtype: table.dtype, shape: [width], data: table.data.subarray(id * width, (id + 1) * width) })),
    close: () => Promise.resolve(),
  };
}

/** Writes the token table of `sd` into a cache entry being filled (`dir`); false when it was not (left out whole). */
export async function saveTokenTable(sd: StateDict, dir: string): Promise<boolean> {
  const { dtype, data } = sd.get(TOKEN_EMBEDDING);
  if (!TOKEN_FILE.test(`tokens-${dtype}.bin`)) return false;
  const path = join(dir, `tokens-${dtype}.bin`);
  try {
    await writeFile(path, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return true;
  } catch {
    await rm(path, { force: true }).catch(() => undefined);
    return false;
  }
}

/**
 * The token table kept in a verified cache entry (`dir`), read a row at a time by position; undefined when the entry
 * has none or its size is not vocabulary × width × element size (the caller then reads the weights).
 */
export async function openTokenTable(dir: string, text: Pick<TextTower, 'width' | 'vocabSize'>): Promise<TokenTable | undefined> {
  const name = (await readdir(dir)).find((n) => TOKEN_FILE.test(n));
  if (!name) return undefined;
  const dtype = TOKEN_FILE.exec(name)![1] as DType;
  const { width, vocabSize } = text;
  const rowBytes = width * BYTES_PER_ELEMENT[dtype];
  const handle = await open(join(dir, name), 'r');
  try {
    if ((await handle.stat()).size !== vocabSize * rowBytes) throw new Error(`${name} is not ${vocabSize}×${width} ${dtype}`);
  } catch {
    await handle.close();
    return undefined;
  }
  const buf = new Uint8Array(rowBytes);
  return {
    rows: (ids) =>
      widenRows(ids, width, (id) => {
        // Synchronous positional reads: the learned prompts look rows up in a synchronous callback.
        if (readSync(handle.fd, buf, 0, rowBytes, id * rowBytes) !== rowBytes) throw new Error(`${join(dir, name)}: short read of token ${id}`);
        return { dtype, shape: [width], data: typedView(dtype, buf, 0, width) };
      }),
    close: () => handle.close(),
  };
}
