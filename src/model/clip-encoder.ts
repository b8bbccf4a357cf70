import type { Tensor } from 'onnxruntime-node';
import { ClipIqaError } from '../errors.js';
import type { GraphBuilder } from '../graph/builder.js';
import { type Grid, gridOf, minimumSide, tokenCount } from '../graph/geometry.js';
import { positionalTerm } from '../graph/positions.js';
import type { PixelDepth } from '../graph/preprocess.js';
import type { ActivationRange } from '../graph/quantize.js';
import { PRECISIONS, type Precision, type RuntimeOptions } from '../runtime/options.js';
import { OrtSession } from '../runtime/session.js';
import { float32Data, float32Tensor, int64Tensor, pixelTensor } from '../runtime/tensors.js';
import { trace, traced } from '../util/trace.js';
import { type ClipArchitecture, inferArchitecture } from '../weights/architecture.js';
import type { StateDict } from '../weights/state-dict.js';
import type { CalibrationOptions } from './calibration.js';
import type { FeatureStore } from './feature-cache.js';
import { type GraphCache, graphKey } from './graph-cache.js';
import { openTokenTable, saveTokenTable } from './token-table.js';
import { type ModelWeights, type TokenTable, tokenTableOf, weightsOf } from './weights-view.js';
import type { ClipEncoder, DenseFeatures, Features, PixelBatch, PositionalMode, RawImage } from './types.js';

export interface ClipEncoderOptions extends RuntimeOptions {
  /** How the int8 ResNet trunk is calibrated (default: the embedded photographs; see model/calibration.ts). */
  readonly calibration?: CalibrationOptions;
  /** Where the int8 calibration ranges of this model are kept between runs (see model/feature-cache.ts). */
  readonly store?: FeatureStore;
  /**
   * The architecture, when a config file states what the weights alone cannot (activation, heads, LayerNorm
   * epsilon; see weights/layout.ts); default: inferred from `sd` as OpenAI's build_model does.
   */
  readonly architecture?: ClipArchitecture;
  /**
   * Where optimised graphs are kept between runs (model/graph-cache.ts), and the key of the model they are built
   * from (its summary's key: SHA-256, config, architecture); unset: every graph is built in memory.
   */
  readonly graphs?: { readonly cache: GraphCache; readonly model: string; readonly name: string };
}

/** The graphs an encoder may build, each at most once. `image-positions` serves both `fixed` and `interpolate`. */
type GraphKey = 'preprocess-8' | 'preprocess-16' | 'image' | 'image-positions' | 'dense' | 'text';

/** Text graph entries hold the token embedding table (token-table.ts); older ones, without it, are misses. */
const TEXT_ENTRY_TOKENS = 1;

/** onnxruntime's session entry that turns weight pre-packing off (see #cachedSession). */
const NO_PREPACKING = 'session.disable_prepacking';

/** CLIP's end-of-text token id. */
const EOT_ID = 49407;

/** Resampled positional tables kept per token count; a handful covers a data set of a few image sizes. */
const RESAMPLED_CACHE_SIZE = 8;

const optionError = (message: string): ClipIqaError => new ClipIqaError('E_OPTION', message);

/**
 * CLIP's towers as onnxruntime sessions, built from an OpenAI-layout state dict. Each graph is built and
 * loaded on first use and then reused for every call; all pixel arithmetic runs inside onnxruntime.
 */
export class OnnxClipEncoder implements ClipEncoder {
  readonly architecture: ClipArchitecture;
  readonly logitScale: number;
  readonly #weights: ModelWeights;
  readonly #options: ClipEncoderOptions;
  readonly #sessions = new Map<GraphKey, Promise<OrtSession>>();
  readonly #resampled = new Map<number, Float32Array>();
  readonly #origins = new Map<string, 'cache' | 'built'>();
  /** The verified cache entry each graph opened from the cache came from. */
  readonly #entries = new Map<GraphKey, string>();
  #tokens: Promise<TokenTable> | undefined;
  #tokenTable: TokenTable | undefined;
  #disposed = false;
  #ranges: Promise<ReadonlyMap<string, ActivationRange>> | undefined;

  private constructor(weights: ModelWeights, options: ClipEncoderOptions) {
    if (options.precision !== undefined && !PRECISIONS.includes(options.precision)) {
      throw optionError(`precision must be one of ${PRECISIONS.join(', ')}, got ${JSON.stringify(options.precision)}`);
    }
    this.#weights = weights;
    this.#options = options;
    this.architecture = weights.architecture;
    // The reference takes exp in float32.
    this.logitScale = Math.fround(Math.exp(weights.logitScale));
  }

  /** An encoder over `sd`; no graph is built until a tower is first used. */
  static create(sd: StateDict, options: ClipEncoderOptions = {}): OnnxClipEncoder {
    return new OnnxClipEncoder(weightsOf(sd, options.architecture ?? inferArchitecture(sd)), options);
  }

  /**
   * An encoder over weights that may not be read yet (model/model-weights.ts): they are read when a graph must be
   * built or token embeddings are looked up, not for graphs found in `options.graphs`.
   */
  static fromWeights(weights: ModelWeights, options: ClipEncoderOptions = {}): OnnxClipEncoder {
    return new OnnxClipEncoder(weights, { ...options, architecture: weights.architecture });
  }

  /**
   * Starts opening, in the background, the cached graphs a score call in positional mode `mode` uses (preprocessing
   * and the image tower), so that onnxruntime maps them while the caller reads its image. Graphs not in the cache
   * are left to be built on first use.
   */
  prefetch(mode: PositionalMode): void {
    const keys: GraphKey[] = ['preprocess-8', mode === 'none' ? 'image' : 'image-positions'];
    for (const key of keys) {
      void (async () => {
        const cacheKey = await this.#cacheKey(key);
        if (!cacheKey || this.#disposed || this.#sessions.has(key) || !(await this.#options.graphs!.cache.find(cacheKey))) return;
        if (!this.#disposed && !this.#sessions.has(key)) await this.#session(key);
      })().catch(() => undefined);
    }
  }

  /** Where each graph in use came from: the graph cache, or built from the weights in this process. */
  get graphOrigins(): ReadonlyMap<string, 'cache' | 'built'> {
    return this.#origins;
  }

  /** Reads the weights now if they are not yet. */
  async loadWeights(): Promise<void> {
    await this.#weights.stateDict();
  }

  /**
   * Makes `tokenEmbeddings` ready: its rows are read from the text graph's cache entry when that holds them (a few
   * kB, not the checkpoint), else from the weights, read now if they are not yet.
   */
  prepareTokenEmbeddings(): Promise<void> {
    if (!this.#tokens) {
      this.#tokens = (async () => {
        const cached = this.#weights.loaded ? undefined : await this.#cachedTokenTable().catch(() => undefined);
        return (this.#tokenTable = cached ?? tokenTableOf(await this.#weights.stateDict(), this.architecture.text));
      })();
      this.#tokens.catch(() => (this.#tokens = undefined));
    }
    return this.#tokens.then(() => undefined);
  }

  /** The token table of the text graph's cache entry: the one its session was opened from, else found and verified now. */
  async #cachedTokenTable(): Promise<TokenTable | undefined> {
    const cacheKey = await this.#cacheKey('text');
    if (!cacheKey) return undefined;
    const session = this.#sessions.get('text');
    if (session) await session;
    const dir = session ? this.#entries.get('text') : await this.#options.graphs!.cache.get(cacheKey);
    const table = dir ? await openTokenTable(dir, this.architecture.text) : undefined;
    if (dir && !table) trace('token embeddings not in the text graph entry: read from the weights');
    return table;
  }

  // -- sessions ---------------------------------------------------------------------------------------------------

  /** The int8 ResNet trunk's activation ranges, calibrated once per encoder. */
  #calibrate(): Promise<ReadonlyMap<string, ActivationRange>> {
    const { vision, embedDim } = this.architecture;
    if (vision.family !== 'resnet') throw new Error('calibration of a ViT');
    if (!this.#ranges) {
      const { store, calibration } = this.#options;
      this.#ranges = (async () => {
        const cacheable = store && !calibration;
        if (cacheable) {
          const { CALIBRATION_ID } = await import('./calibration.js');
          const saved = await store.readJson<Record<string, ActivationRange>>(CALIBRATION_ID);
          const entries = saved && typeof saved === 'object' ? Object.entries(saved) : [];
          if (entries.length > 0 && entries.every(([, r]) => Number.isFinite(r?.min) && Number.isFinite(r?.max))) return new Map(entries);
        }
        // Normalised by the preprocessing graph, as every image the int8 trunk will see.
        const { calibrateResNet, calibrationPhotographs } = await import('./calibration.js');
        const images = calibration?.pixels ?? (await Promise.all((await calibrationPhotographs()).map((img) => this.normalize([img]))));
        const ranges = await traced('int8 calibration', async () => calibrateResNet(await this.#weights.stateDict(), vision, embedDim, this.#options, images, calibration));
        if (cacheable) await store.writeJson((await import('./calibration.js')).CALIBRATION_ID, Object.fromEntries(ranges));
        return ranges;
      })();
      this.#ranges.catch(() => (this.#ranges = undefined));
    }
    return this.#ranges;
  }

  get precision(): Precision {
    return this.#options.precision ?? 'float32';
  }

  async #build(key: GraphKey): Promise<GraphBuilder> {
    const { vision, text, embedDim } = this.architecture;
    const int8 = this.precision === 'int8';
    const ranges = int8 && vision.family === 'resnet' && (key === 'image' || key === 'image-positions' || key === 'dense') ? await this.#calibrate() : undefined;
    // The builders (and protobufjs under them) are loaded only when a graph is built, not for cached graphs.
    switch (key) {
      case 'preprocess-8':
      case 'preprocess-16':
        return (await import('../graph/preprocess.js')).buildPreprocess(key === 'preprocess-8' ? 8 : 16, this.architecture.normalization);
      case 'text':
        return (await import('../graph/text.js')).buildText(await this.#weights.stateDict(), text, embedDim);
      case 'dense':
        if (vision.family !== 'resnet') throw new Error('dense graph of a ViT');
        return (await import('../graph/resnet.js')).buildResNet(await this.#weights.stateDict(), vision, embedDim, { output: 'dense', positions: false, ranges });
      case 'image':
      case 'image-positions': {
        const positions = key === 'image-positions';
        const sd = await this.#weights.stateDict();
        return vision.family === 'resnet'
          ? (await import('../graph/resnet.js')).buildResNet(sd, vision, embedDim, { output: 'pooled', positions, ranges })
          : (await import('../graph/vit.js')).buildVit(sd, vision, embedDim, { positions, int8 });
      }
    }
  }

  /** The graph cache key of `key` for this model and these options; undefined when graphs are not cached. */
  async #cacheKey(key: GraphKey): Promise<string | undefined> {
    const { graphs, device, graphOptimizationLevel, configEntries, calibration } = this.#options;
    if (!graphs?.cache.enabled || (device !== undefined && device !== 'cpu')) return undefined;
    const int8 = this.precision === 'int8' && key !== 'text' && !key.startsWith('preprocess');
    // Ranges calibrated on the caller's own images are not the cached ones.
    if (int8 && calibration) return undefined;
    return graphKey({
      kind: 'graph',
      model: graphs.model,
      graph: key,
      precision: int8 ? 'int8' : 'float32',
      calibration: int8 && this.architecture.vision.family === 'resnet' ? (await import('./calibration.js')).CALIBRATION_ID : null,
      optimization: graphOptimizationLevel ?? 'all',
      configEntries: configEntries ?? null,
      ...(key === 'text' ? { tokens: TEXT_ENTRY_TOKENS } : {}),
    });
  }

  /**
   * Pre-packing re-lays out each GEMM weight as a session opens. For float32 towers it bought no speed per image
   * (RN50 and ViT-B/32, 24 images at 512×384: the same within noise) and cost ViT-B/32 1.1 s of a 2 s warm start, so
   * it is off for them, built or cached alike (the kernels differ in the last bit, and a cached graph must give the
   * features a built one gives). int8 towers keep it: RN50 int8 scored 24 images in 2.4 s with it, 3.7 s without.
   * A caller's own entry wins.
   */
  #prepacking(key: GraphKey, options: ClipEncoderOptions): ClipEncoderOptions {
    const int8 = this.precision === 'int8' && key !== 'text' && !key.startsWith('preprocess');
    if (int8 || options.configEntries?.[NO_PREPACKING] !== undefined) return options;
    return { ...options, configEntries: { ...options.configEntries, [NO_PREPACKING]: '1' } };
  }

  /** A session over the cached optimised graph of `key`, verified while onnxruntime loads it; undefined on a miss. */
  async #cachedSession(key: GraphKey, cacheKey: string, options: RuntimeOptions): Promise<OrtSession | undefined> {
    const cache = this.#options.graphs!.cache;
    const found = await cache.find(cacheKey);
    if (!found) return undefined;
    // The check of every byte runs while onnxruntime loads the graph; a session over a damaged entry is dropped unused.
    const [session, ok] = await Promise.all([OrtSession.open(key, found.dir, options).catch(() => undefined), found.verify()]);
    if (session && ok) {
      this.#entries.set(key, found.dir);
      return session;
    }
    await session?.dispose();
    if (ok) await cache.remove(cacheKey);
    return undefined;
  }

  #session(key: GraphKey): Promise<OrtSession> {
    let session = this.#sessions.get(key);
    if (!session) {
      session = (async () => {
        // Normalisation is a few milliseconds of memory-bound arithmetic. On one thread it has no pool of
        // workers left spinning after each run, which would compete for the cores with the tower run next.
        const options = this.#prepacking(key, key === 'preprocess-8' || key === 'preprocess-16' ? { ...this.#options, threads: 1 } : this.#options);
        const cacheKey = await this.#cacheKey(key);
        if (cacheKey) {
          const cached = await traced(`${key} graph from the cache`, () => this.#cachedSession(key, cacheKey, options));
          if (cached) {
            this.#origins.set(key, 'cache');
            return cached;
          }
        }
        const model = await traced(`${key} graph built`, async () => (await this.#build(key)).serialize({ externalMinBytes: this.#options.externalMinBytes }));
        const pending = cacheKey ? await this.#options.graphs!.cache.begin(cacheKey) : undefined;
        try {
          const created = await traced(`${key} session created${pending ? ' (and saved)' : ''}`, () => OrtSession.create(key, model, options, pending?.dir));
          // A later run with a new prompt then reads its token rows from the entry, not the checkpoint.
          if (pending && key === 'text' && !(await saveTokenTable(await this.#weights.stateDict(), pending.dir))) trace('token embeddings not cached');
          if (pending) {
            const what = `${key} ${key === 'text' || key.startsWith('preprocess') ? 'float32' : this.precision}`;
            if (!(await pending.commit({ kind: 'graph', what, model: this.#options.graphs!.name }))) trace(`${key} graph not cached`);
          }
          this.#origins.set(key, 'built');
          return created;
        } catch (e) {
          await pending?.discard();
          throw e;
        }
      })();
      // A failed build is not cached, so that a later call reports the failure again rather than a stale promise.
      session.catch(() => this.#sessions.delete(key));
      this.#sessions.set(key, session);
    }
    return session;
  }

  async dispose(): Promise<void> {
    this.#disposed = true;
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    for (const s of await Promise.allSettled(sessions)) if (s.status === 'fulfilled') await s.value.dispose();
    const tokens = this.#tokens;
    this.#tokens = this.#tokenTable = undefined;
    await tokens?.then((t) => t.close(), () => undefined);
  }

  // -- pixels -----------------------------------------------------------------------------------------------------

  async normalize(images: readonly RawImage[]): Promise<PixelBatch> {
    const first = images[0];
    if (!first) throw optionError('normalize() needs at least one image');
    const { width, height } = first;
    const depth: PixelDepth = first.data instanceof Uint16Array ? 16 : 8;
    const size = width * height * 3;
    images.forEach((img, i) => {
      if (img.width !== width || img.height !== height) {
        throw optionError(
          `images batched together must have one size: image 0 is ${width}×${height}, image ${i} is ${img.width}×${img.height}; ` +
            'resize them to one size or pass them one at a time',
        );
      }
      if ((img.data instanceof Uint16Array ? 16 : 8) !== depth) {
        throw optionError(`images batched together must have one bit depth: image 0 has ${depth} bits per sample, image ${i} does not`);
      }
      if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || img.data.length !== size) {
        throw new ClipIqaError(
          'E_IMAGE',
          `image ${i}: ${img.width}×${img.height} interleaved RGB needs ${size} samples, got ${img.data.length}`,
        );
      }
    });
    let data = first.data;
    if (images.length > 1) {
      data = depth === 16 ? new Uint16Array(size * images.length) : new Uint8Array(size * images.length);
      images.forEach((img, i) => data.set(img.data, i * size));
    }
    const session = await this.#session(depth === 16 ? 'preprocess-16' : 'preprocess-8');
    const dims = [images.length, 3, height, width];
    const out = await session.run({ images: pixelTensor(data, [images.length, height, width, 3]) });
    return { batch: images.length, height, width, data: float32Data(out.pixels, 'pixels', dims) };
  }

  /** Checks the batch's shape and that the image gives a grid of at least one cell. */
  #grid(pixels: PixelBatch): Grid {
    const { batch, height, width, data } = pixels;
    if (![batch, height, width].every((n) => Number.isInteger(n) && n >= 1) || data.length !== batch * 3 * height * width) {
      throw optionError(`a pixel batch of ${batch}×3×${height}×${width} needs ${batch * 3 * height * width} floats, got ${data.length}`);
    }
    const { vision } = this.architecture;
    const grid = gridOf(vision, height, width);
    if (grid.height < 1 || grid.width < 1) {
      const min = minimumSide(vision);
      const tower = vision.family === 'resnet' ? 'ResNet image tower (32× downsampling)' : `ViT image tower (patch ${vision.patch})`;
      throw new ClipIqaError(
        'E_IMAGE_TOO_SMALL',
        `the image is ${width}×${height}, too small for this model's ${tower}: both sides must be at least ${min} pixels. ` +
          'Upscale the image before scoring it.',
      );
    }
    return grid;
  }

  #positions(mode: PositionalMode, pixels: PixelBatch, tokens: number): Float32Array | null {
    const { vision } = this.architecture;
    const width = vision.family === 'resnet' ? vision.poolWidth : vision.width;
    const rows = vision.grid * vision.grid + 1;
    const cached = mode === 'interpolate' ? this.#resampled.get(tokens) : undefined;
    if (cached) return cached;
    const term = positionalTerm(
      mode,
      this.#weights.positions,
      rows,
      width,
      tokens,
      () =>
        `positional mode 'fixed' adds the model's table as is, which fits only its native input size: ` +
        `the image is ${pixels.width}×${pixels.height}, the model's native size is ${vision.resolution}×${vision.resolution}. ` +
        `Use positional mode 'none' or 'interpolate', or resize the image to ${vision.resolution}×${vision.resolution}.`,
    );
    if (mode === 'interpolate' && term) {
      if (this.#resampled.size >= RESAMPLED_CACHE_SIZE) this.#resampled.delete(this.#resampled.keys().next().value!);
      this.#resampled.set(tokens, term);
    }
    return term;
  }

  async encodeImages(pixels: PixelBatch, mode: PositionalMode): Promise<Features> {
    const tokens = tokenCount(this.#grid(pixels));
    const positions = this.#positions(mode, pixels, tokens);
    const { batch, height, width, data } = pixels;
    const feeds: Record<string, Tensor> = { pixels: float32Tensor(data, [batch, 3, height, width]) };
    if (positions) feeds.positions = float32Tensor(positions, [tokens, positions.length / tokens]);
    const session = await this.#session(positions ? 'image-positions' : 'image');
    const dim = this.architecture.embedDim;
    const out = await session.run(feeds);
    return { count: batch, dim, data: float32Data(out.features, 'features', [batch, dim]) };
  }

  async encodeDense(pixels: PixelBatch): Promise<DenseFeatures> {
    if (this.architecture.vision.family !== 'resnet') {
      throw optionError(
        "dense features come from a ResNet image tower's attention-pool projections (MaskCLIP); this model's image tower is a ViT",
      );
    }
    const grid = this.#grid(pixels);
    const { batch, height, width, data } = pixels;
    const session = await this.#session('dense');
    const out = await session.run({ pixels: float32Tensor(data, [batch, 3, height, width]) });
    const dim = this.architecture.embedDim;
    const dense = float32Data(out.dense, 'dense', [batch, grid.height, grid.width, dim]);
    return { batch, height: grid.height, width: grid.width, dim, data: dense };
  }

  // -- text -------------------------------------------------------------------------------------------------------

  tokenEmbeddings(ids: readonly number[]): Float32Array {
    const { vocabSize } = this.architecture.text;
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw optionError(`token id ${id} at position ${i} is outside the vocabulary of ${vocabSize} tokens`);
      }
    });
    const sd = this.#weights.loaded;
    const table = this.#tokenTable ?? (sd && (this.#tokenTable = tokenTableOf(sd, this.architecture.text)));
    if (!table) throw new Error('token embeddings are not ready: await prepareTokenEmbeddings() first');
    return table.rows(ids);
  }

  async encodeTokens(rows: readonly (readonly number[])[]): Promise<Features> {
    const { contextLength } = this.architecture.text;
    const eot = rows.map((row, r) => {
      if (row.length !== contextLength) throw optionError(`token row ${r} has ${row.length} ids; this model's context is ${contextLength}`);
      // The first end-of-text token (49407), as transformers pools; OpenAI's argmax finds the same position in a
      // CLIP row, where EOT is the largest id, and is the rule for rows without one.
      const first = row.indexOf(EOT_ID);
      if (first >= 0) return first;
      let best = 0;
      for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
      return best;
    });
    if (rows.length > 0) {
      // The text graph first: when it comes from the cache, so do the token rows.
      await this.#session('text');
      await this.prepareTokenEmbeddings();
    }
    return this.encodeEmbeddings(this.tokenEmbeddings(rows.flat()), rows.length, eot);
  }

  async encodeEmbeddings(embeddings: Float32Array, count: number, eot: readonly number[]): Promise<Features> {
    const { width, contextLength } = this.architecture.text;
    const dim = this.architecture.embedDim;
    if (!Number.isInteger(count) || count < 0 || embeddings.length !== count * contextLength * width) {
      throw optionError(`${count} text embedding sequences need ${count}×${contextLength}×${width} floats, got ${embeddings.length}`);
    }
    if (eot.length !== count || !eot.every((e) => Number.isInteger(e) && e >= 0 && e < contextLength)) {
      throw optionError(`eot must hold ${count} positions in [0, ${contextLength}), got [${eot.join(', ')}]`);
    }
    if (count === 0) return { count, dim, data: new Float32Array(0) };
    // Causal attention: the EOT row never sees later rows, so only the first max(eot)+1 rows need computing
    // (6 of 77 for "Good photo."). Cutting them changes no feature beyond float32 rounding order.
    const length = Math.max(...eot) + 1;
    let rows = embeddings;
    if (length < contextLength) {
      rows = new Float32Array(count * length * width);
      for (let i = 0; i < count; i++) {
        const start = i * contextLength * width;
        rows.set(embeddings.subarray(start, start + length * width), i * length * width);
      }
    }
    const session = await this.#session('text');
    const out = await session.run({ embeddings: float32Tensor(rows, [count, length, width]), eot: int64Tensor(eot) });
    return { count, dim, data: float32Data(out.features, 'features', [count, dim]) };
  }
}
