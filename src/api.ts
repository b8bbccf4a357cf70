/**
 * The library surface: load a CLIP checkpoint once, then score, embed and map images.
 *
 *   const iqa = await ClipIqa.load({ model: 'RN50.pt', vocab: 'bpe_simple_vocab_16e6.txt.gz' });
 *   const { scores } = await iqa.score('photo.jpg', { attributes: ['quality', 'sharpness'] });
 *
 * Data flows one way: source → pixels (image/) → image features (model/); prompts → tokens (text/) →
 * text features (iqa/text-features); features → scores (iqa/score).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { ClipIqaError, errorMessage, isClipIqaError } from './errors.js';
import { type FileRequest, type ResolvedFile, resolveSources } from './hub/resolve.js';
import type { HubOptions } from './hub/settings.js';
import { DEFAULT_LIMIT_INPUT_PIXELS, type DecodeOptions, type DecodedImage, type ImageSource, decodeImage } from './image/decode.js';
import { type UrlFetchOptions, fetchImageUrl, isHttpUrl } from './image/fetch.js';
import { type ScoreMap, denseScoreMaps } from './iqa/dense.js';
import { type LearnedContext, type LearnedPrompts, PLUS, buildLearnedPrompts, loadLearnedContext } from './iqa/plus.js';
import {
  type Attribute,
  DEFAULT_ATTRIBUTES,
  ENSEMBLE,
  ENSEMBLE_PAIRS,
  type NoisinessPolarity,
  type PromptPair,
  parsePromptPair,
  resolveAttributes,
} from './iqa/prompts.js';
import { pairScores } from './iqa/score.js';
import { TextFeatureCache, TokenMemo } from './iqa/text-features.js';
import { OnnxClipEncoder } from './model/clip-encoder.js';
import { openCheckpoint } from './model/model-weights.js';
import { traced } from './util/trace.js';
import { CachedTextEncoder, FeatureStore, modelIdentity } from './model/feature-cache.js';
import { memoryPixelLimit } from './model/memory.js';
import { type ClipEncoder, type Features, POSITIONAL_MODES, type PixelBatch, type PositionalMode } from './model/types.js';
import { type Precision, type RuntimeOptions, checkDevice } from './runtime/options.js';
import { Tokenizer } from './text/tokenizer.js';
import { type ClipArchitecture, describeArchitecture } from './weights/architecture.js';
import { StateDict } from './weights/state-dict.js';
import { EMBED_IMAGE_OPTIONS, LOAD_OPTIONS, SCORE_MANY_OPTIONS, SCORE_MAPS_OPTIONS, SCORE_OPTIONS, checkOptions } from './known-options.js';

export { PLUS };

export interface ClipIqaOptions {
  /**
   * A CLIP model: a registry name (`RN50`, the default, as in the paper; `ViT-B/32`, `ViT-B-32-laion2B`, …), a
   * Hugging Face id `hf:ORG/NAME[@REVISION][/FILE]`, a model folder (open_clip's or transformers' layout), a file
   * path (safetensors, torch.save, OpenAI TorchScript; a config beside it is read), a URL `https://…#sha256=…`,
   * its bytes, or a loaded StateDict. Registry names, hub ids and URLs are downloaded into the cache on first use.
   */
  readonly model?: string | Uint8Array | StateDict;
  /** The CLIP BPE vocabulary `bpe_simple_vocab_16e6.txt.gz`: registry name, path, URL or bytes; default: the copy in the package. */
  readonly vocab?: string | Uint8Array;
  /**
   * A CLIP-IQA+ learned context, which adds the `clipiqa+` score: `true` for the official context (`clipiqa+`),
   * a registry name, a path, `hf:ORG/NAME/FILE`, a URL, or bytes.
   */
  readonly plus?: string | Uint8Array | boolean;
  /**
   * Positional mode of the image features for CLIP-IQA+; default: what the context was trained with
   * (registry contexts know it), else `none` as the official context was trained.
   */
  readonly plusPositional?: PositionalMode;
  /** Default positional mode for every call; default `none` (CLIP-IQA). */
  readonly positional?: PositionalMode;
  /** Which way `noisiness` points; default `noisy` (official: higher = noisier). */
  readonly noisiness?: NoisinessPolarity;
  /** How images are decoded (EXIF orientation, alpha, ICC, resize, pixel limit); see `DecodeOptions`. */
  readonly decode?: DecodeOptions;
  /** onnxruntime settings: threads, optimisation level, … */
  readonly runtime?: RuntimeOptions;
  /**
   * Arithmetic of the image tower: `float32` (default; matches the PyTorch reference) or `int8` (quantised
   * weights and activations on onnxruntime's integer kernels: about 3× faster on CPUs with AVX-512 VNNI, features
   * slightly different; see the README's Performance section). Overrides `runtime.precision`.
   */
  readonly precision?: Precision;
  /**
   * Keep text features, int8 calibration ranges, prompt tokens and onnxruntime's optimised graphs on disk under the
   * cache root, per model, so that later runs skip the text tower and start without building a graph or reading
   * the checkpoint (default true; the graphs' share is bounded by `CLIP_IQA_GRAPH_CACHE_MB`, 0 turns it off).
   */
  readonly featureCache?: boolean;
  /** Where and how files are fetched: cache directory, offline mode, mirror, progress, quiet, … */
  readonly hub?: HubOptions;
  /** A name for the model in results (default: the registry name or the path). */
  readonly name?: string;
  /**
   * Let image sources be `http(s)://` URLs, fetched with safeguards (http(s) only on every redirect, at most 3
   * redirects, a byte cap, a deadline, optionally a host allow-list): `true` for the defaults (any host, 64 MiB,
   * 30 s) or the limits. Off by default: a URL is then refused with `E_URL`, never read as a path.
   */
  readonly fetch?: boolean | UrlFetchOptions;
}

export interface ScoreOptions {
  /**
   * Attribute names and set names (`look`, `feel`, `paper`, `extra`, `all`, `ensemble`), as an array or a
   * comma-separated string. Default: the paper's twelve (`paper`). An empty list scores only `prompts`.
   */
  readonly attributes?: readonly string[] | string;
  /** Your own antonym pairs: `{name, positive, negative}` or `"name=positive|negative"` / `"positive|negative"`. */
  readonly prompts?: readonly (PromptPair | string)[];
  /** Also report pyiqa's five-pair quality ensemble as `ensemble` (also asked by the attribute name `ensemble`). */
  readonly ensemble?: boolean;
  /** Also report the CLIP-IQA+ score as `clipiqa+` (needs a context; default: true when one is loaded). */
  readonly plus?: boolean;
  /** Positional mode for this call. */
  readonly positional?: PositionalMode;
  /** Per-region score maps (ResNet models) for these score names (attributes or prompt names). */
  readonly maps?: readonly string[];
  /** Decode options for this call, over the instance's. */
  readonly decode?: DecodeOptions;
}

export interface ImageScores {
  /** The file path, or the name given to bytes (`<buffer>` by default). */
  readonly source: string;
  /** The size the network saw (after orientation and any resize). */
  readonly width: number;
  readonly height: number;
  /** Score name → probability of the positive prompt, in (0, 1). */
  readonly scores: Record<string, number>;
  /** Per-region maps, when asked. */
  readonly maps?: readonly ScoreMap[];
}

export interface ImageFailure {
  readonly source: string;
  readonly error: ClipIqaError;
}

export type BatchResult = ({ readonly ok: true; readonly index: number } & ImageScores) | ({ readonly ok: false; readonly index: number } & ImageFailure);

export interface ScoreManyOptions extends ScoreOptions {
  /** How many images are decoded ahead of inference; default 2 (at least two batches). */
  readonly concurrency?: number;
  /**
   * Up to this many consecutive images of the same size run through the image tower together (default 1).
   * Scores are the same as one at a time (to float rounding); whether it is faster depends on the size and the
   * machine (see the README's Performance section).
   */
  readonly batch?: number;
}

/** A decoded input with a name for messages. */
interface Prepared {
  readonly source: string;
  readonly image: DecodedImage;
}

/** The pairs a score call evaluates, in the order their scores are reported. */
export interface ScorePlan {
  readonly pairs: PromptPair[];
  readonly ensemble: boolean;
  readonly plus: boolean;
  readonly positional: PositionalMode;
  readonly maps: readonly string[];
}

function sourceName(input: ImageSource, options?: DecodeOptions): string {
  return typeof input === 'string' ? input : (options?.name ?? '<buffer>');
}

function checkPositional(mode: PositionalMode | undefined, what: string): PositionalMode | undefined {
  if (mode !== undefined && !POSITIONAL_MODES.includes(mode)) {
    throw new ClipIqaError('E_OPTION', `${what} must be one of ${POSITIONAL_MODES.join(', ')}, got "${String(mode)}"`);
  }
  return mode;
}

/** What `plan` needs to know of a loaded model (so that a server can plan on a thread that holds no model). */
export interface PlanModel {
  readonly family: 'resnet' | 'vit';
  /** A CLIP-IQA+ context is loaded. */
  readonly plus: boolean;
  readonly noisiness?: NoisinessPolarity;
  readonly positional?: PositionalMode;
}

/** The pairs a score call with these options evaluates on such a model, in order; throws for bad options. */
export function planScore(options: ScoreOptions, model: PlanModel): ScorePlan {
  const names = options.attributes === undefined ? DEFAULT_ATTRIBUTES : typeof options.attributes === 'string' ? options.attributes.split(',') : options.attributes;
  const resolved = resolveAttributes(names, model.noisiness);
  const custom = (options.prompts ?? []).map((p) => (typeof p === 'string' ? parsePromptPair(p) : p));
  const pairs: PromptPair[] = [...resolved.attributes];
  for (const p of custom) {
    if (pairs.some((x) => x.name === p.name) || p.name === ENSEMBLE || p.name === PLUS) {
      throw new ClipIqaError('E_PROMPT', `two score names are "${p.name}"; give the prompt pair another name ("name=positive|negative")`);
    }
    pairs.push(p);
  }
  const plus = options.plus ?? model.plus;
  if (plus && !model.plus) {
    throw new ClipIqaError('E_CONTEXT', 'the CLIP-IQA+ score needs a learned context: load the model with `plus` (a context file)');
  }
  const ensemble = options.ensemble === true || resolved.ensemble;
  const positional = checkPositional(options.positional, 'positional') ?? model.positional ?? 'none';
  const maps = options.maps ?? [];
  for (const m of maps) {
    if (!pairs.some((p) => p.name === m)) {
      throw new ClipIqaError('E_OPTION', `a score map was asked for "${m}", which is not among the scored attributes (${pairs.map((p) => p.name).join(', ')})`);
    }
  }
  if (maps.length > 0 && model.family !== 'resnet') {
    throw new ClipIqaError('E_OPTION', 'per-region score maps need a ResNet CLIP model (dense attention-pool features); this model is a ViT');
  }
  if (pairs.length === 0 && !ensemble && !plus) {
    throw new ClipIqaError('E_PROMPT', 'nothing to score: give attributes, prompt pairs, the ensemble or CLIP-IQA+');
  }
  return { pairs, ensemble, plus, positional, maps };
}

/** The files `ClipIqa.load` reads, resolved through the hub: in the cache (downloaded if need be) or local paths. */
export interface ModelFiles {
  readonly modelFile?: ResolvedFile;
  readonly vocabFile?: ResolvedFile;
  readonly plusFile?: ResolvedFile;
  /** The model cache they were resolved in (derived data such as text features is kept there too). */
  readonly cacheRoot: string;
}

/**
 * Resolves (and on first use downloads) the checkpoint, vocabulary and CLIP-IQA+ context that `options` name;
 * what is given as bytes or a StateDict needs no file. A server calls it before starting workers, so that they
 * find everything in the cache.
 */
export async function resolveModelFiles(options: ClipIqaOptions): Promise<ModelFiles> {
  const { model, vocab, plus } = options;
  const requests: (FileRequest | undefined)[] = [
    model instanceof StateDict || model instanceof Uint8Array ? undefined : { spec: model, kind: 'model' },
    vocab instanceof Uint8Array ? undefined : { spec: vocab, kind: 'vocab' },
    plus === undefined || plus === false || plus instanceof Uint8Array ? undefined : { spec: plus === true ? undefined : plus, kind: 'context' },
  ];
  // One entry into the hub for all three: one reading of the environment, files fetched one after another.
  const { files, root } = await resolveSources(
    requests.filter((r) => r !== undefined),
    options.hub ?? {},
  );
  const next = (r: FileRequest | undefined) => (r ? files.shift() : undefined);
  return { modelFile: next(requests[0]), vocabFile: next(requests[1]), plusFile: next(requests[2]), cacheRoot: root };
}

/** CLIP-IQA over one loaded checkpoint. Create with `ClipIqa.load`; release with `dispose`. */
export class ClipIqa {
  readonly encoder: ClipEncoder;
  readonly tokenizer: Tokenizer;
  readonly name: string;
  readonly context: LearnedContext | undefined;
  /**
   * SHA-256 (hex) of the checkpoint: the one the hub verified for downloads, else computed once per file and
   * remembered under the cache root (keyed by path, size, mtime and inode); null for a StateDict given in memory
   * or a file that could not be read again.
   */
  readonly modelSha256: string | null;
  readonly #options: ClipIqaOptions;
  readonly #text: TextFeatureCache;
  /** The CLIP-IQA+ prompts, built at load (so that a context that does not fit the model fails there). */
  readonly #plusPrompts: LearnedPrompts | undefined;
  #plusFeatures: Promise<Features> | undefined;

  private constructor(
    encoder: ClipEncoder,
    tokenizer: Tokenizer,
    plus: { context: LearnedContext; prompts: LearnedPrompts } | undefined,
    name: string,
    options: ClipIqaOptions,
    modelSha256: string | null,
    memo?: TokenMemo,
  ) {
    this.encoder = encoder;
    this.modelSha256 = modelSha256;
    this.tokenizer = tokenizer;
    this.context = plus?.context;
    this.#plusPrompts = plus?.prompts;
    this.name = name;
    this.#options = options;
    this.#text = new TextFeatureCache(encoder, tokenizer, undefined, memo);
  }

  static async load(options: ClipIqaOptions = {}): Promise<ClipIqa> {
    checkOptions(options, LOAD_OPTIONS, 'ClipIqa.load');
    // Before any download: a GPU that cannot be used is known at once.
    checkDevice(options.runtime?.device);
    checkPositional(options.positional, 'positional');
    checkPositional(options.plusPositional, 'plusPositional');
    const { model } = options;
    const { modelFile, vocabFile, plusFile, cacheRoot } = await traced('model files resolved', () => resolveModelFiles(options));
    const plusSpec = typeof options.plus === 'boolean' ? undefined : options.plus;
    const [opened, tokenizer, context, weightsIdentity] = await Promise.all([
      // The checkpoint is read now unless its summary and graphs are cached (model/model-weights.ts).
      openCheckpoint({ model, modelFile, cacheRoot, keep: options.featureCache !== false, name: options.name }),
      traced('vocabulary read', () => (options.vocab instanceof Uint8Array ? Tokenizer.fromBytes(options.vocab) : Tokenizer.fromFile(vocabFile!.path))),
      plusSpec instanceof Uint8Array ? loadLearnedContext(plusSpec) : plusFile ? loadLearnedContext(plusFile.path) : undefined,
      options.featureCache === false ? undefined : modelIdentity({ sha256: modelFile?.sha256, path: modelFile?.path, bytes: model instanceof Uint8Array ? model : undefined }),
    ]);
    const { weights: clip, sha256: modelSha256, graphs } = opened;
    const { architecture } = clip;
    // Text features (and int8 calibration ranges) are kept on disk per model, under the cache root; the same weights
    // read with another config (activation, heads) are another model.
    const identity = weightsIdentity && `${weightsIdentity}-${createHash('sha256').update(JSON.stringify(architecture)).digest('hex').slice(0, 12)}`;
    const store = identity ? new FeatureStore(cacheRoot, identity) : undefined;
    const precision = options.precision ?? options.runtime?.precision;
    const onnx = OnnxClipEncoder.fromWeights(clip, { ...options.runtime, ...(precision ? { precision } : {}), ...(store ? { store } : {}), ...(graphs ? { graphs } : {}) });
    // Cached graphs open in the background while the caller goes on (reads the vocabulary, decodes its image).
    onnx.prefetch(options.positional ?? 'none');
    const encoder: ClipEncoder = store ? new CachedTextEncoder(onnx, store) : onnx;
    // The learned prompts take token embeddings from the text graph's cache entry, else the weights.
    if (context) await onnx.prepareTokenEmbeddings();
    const plus = context && { context, prompts: buildLearnedPrompts(context, tokenizer, (ids) => encoder.tokenEmbeddings(ids), encoder.architecture.text.width) };
    const trainedWith = plusFile?.entry?.kind === 'context' ? plusFile.entry.positional : undefined;
    // Without a pixel limit of the caller's, images are refused from their header beyond what this model can score in
    // the memory available (a 16383² WebP of 10 kB would otherwise take the network to 11 GB and more).
    const decode =
      options.decode?.limitInputPixels === undefined
        ? { ...options.decode, ...memoryPixelLimit(encoder.architecture, { precision, resize: options.decode?.resize }) }
        : options.decode;
    const name =
      options.name ??
      (modelFile?.entry ? modelFile.entry.name : modelFile ? (typeof model === 'string' ? model : modelFile.path) : model instanceof StateDict ? model.source : 'checkpoint');
    // Token rows of prompts seen before, per vocabulary: the vocabulary is then never parsed.
    const memo = store ? new TokenMemo(join(cacheRoot, 'features', `tokens-${tokenizer.digest.slice(0, 16)}.json`)) : undefined;
    return new ClipIqa(encoder, tokenizer, plus, name, { ...options, decode, plusPositional: options.plusPositional ?? trainedWith }, modelSha256, memo);
  }

  get architecture(): ClipArchitecture {
    return this.encoder.architecture;
  }

  /** e.g. "ResNet [3,4,6,3] width 64 @224, text 512×12, embed 1024". */
  describe(): string {
    return describeArchitecture(this.encoder.architecture);
  }

  /** The largest width×height decoded, as the caller set it or (by default) sized to the memory available for this model. */
  get maxPixels(): number | false {
    return this.#options.decode?.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
  }

  get logitScale(): number {
    return this.encoder.logitScale;
  }

  // -- scoring --------------------------------------------------------------------------------------------------

  /** The attributes and pairs a call with these options reports, in order (for headers and schemas). */
  plan(options: ScoreOptions = {}): ScorePlan {
    checkOptions(options, SCORE_OPTIONS, 'plan');
    return this.#plan(options);
  }

  #plan(options: ScoreOptions): ScorePlan {
    const { noisiness, positional } = this.#options;
    return planScore(options, { family: this.architecture.vision.family, plus: this.context !== undefined, noisiness, positional });
  }

  /** Scores one image. */
  async score(input: ImageSource, options: ScoreOptions = {}): Promise<ImageScores> {
    checkOptions(options, SCORE_OPTIONS, 'score');
    const plan = this.#plan(options);
    const prepared = await this.#prepare(input, options.decode);
    return (await this.#scoreGroup([prepared], plan))[0]!;
  }

  /**
   * Scores many images, yielding each result as it is ready, in input order. A bad image yields a failure
   * (`ok: false`) and the batch goes on. Decoding runs `concurrency` images ahead of inference; with `batch` > 1,
   * runs of consecutive same-size images go through the image tower together.
   */
  async *scoreMany(inputs: Iterable<ImageSource> | AsyncIterable<ImageSource>, options: ScoreManyOptions = {}): AsyncGenerator<BatchResult> {
    checkOptions(options, SCORE_MANY_OPTIONS, 'scoreMany');
    const plan = this.#plan(options);
    // Score maps need each image's own dense pass; they are scored one image at a time.
    const batch = plan.maps.length > 0 ? 1 : Math.max(1, Math.floor(options.batch ?? 1));
    // Decoding keeps a whole batch ahead, so that the next batch decodes while this one runs.
    const ahead = Math.max(1, Math.floor(options.concurrency ?? 2), 2 * batch);
    // Merged as #prepare merges them, so that a failed image is named as a decoded one would be.
    const decode = { ...this.#options.decode, ...options.decode };
    const queue: { source: string; prepared: Promise<Prepared> }[] = [];
    let index = 0;
    const take = async function* () {
      for await (const input of inputs) yield input;
    };
    const iterator = take();
    let done = false;
    const fill = async () => {
      while (!done && queue.length < ahead) {
        const next = await iterator.next();
        if (next.done) {
          done = true;
          break;
        }
        const prepared = this.#prepare(next.value, decode);
        prepared.catch(() => undefined); // surfaced when its turn comes
        queue.push({ source: sourceName(next.value, decode), prepared });
      }
    };
    try {
      await fill();
      while (queue.length > 0) {
        const item = queue.shift()!;
        await fill();
        let first: Prepared;
        try {
          first = await item.prepared;
        } catch (e) {
          yield { ok: false, index: index++, source: item.source, error: asClipIqaError(e, item.source) };
          continue;
        }
        // The following images join the batch while they decode fine and have the same size and depth.
        const group = [first];
        while (group.length < batch && queue.length > 0) {
          const next = await queue[0]!.prepared.catch(() => undefined);
          if (!next || !sameShape(next.image, first.image)) break;
          queue.shift();
          await fill();
          group.push(next);
        }
        let results: (ImageScores | ClipIqaError)[];
        try {
          results = await this.#scoreGroup(group, plan);
        } catch (e) {
          // A batch that fails as a whole is retried image by image, so that the failure is laid at the right door.
          if (group.length === 1) results = [asClipIqaError(e, first.source)];
          else {
            results = [];
            for (const g of group) results.push(await this.#scoreGroup([g], plan).then((r) => r[0]!, (err: unknown) => asClipIqaError(err, g.source)));
          }
        }
        for (const [i, r] of results.entries()) {
          if (r instanceof ClipIqaError) yield { ok: false, index: index++, source: group[i]!.source, error: r };
          else yield { ok: true, index: index++, ...r };
        }
      }
    } finally {
      // A consumer that stops early closes the inputs too (their own `finally`, an open file).
      await iterator.return(undefined);
    }
  }

  async #prepare(input: ImageSource, decode?: DecodeOptions): Promise<Prepared> {
    const options = { ...this.#options.decode, ...decode };
    const source = sourceName(input, options);
    try {
      if (typeof input === 'string' && isHttpUrl(input)) {
        const fetchOptions = this.#options.fetch;
        if (!fetchOptions) {
          throw new ClipIqaError('E_URL', `${input}: a URL, and fetching is off; load with { fetch: true } (or fetch limits) to score URLs, or download the image first`);
        }
        const fetched = await fetchImageUrl(input, fetchOptions === true ? {} : fetchOptions);
        return { source, image: await decodeImage(fetched.bytes, { ...options, name: input }) };
      }
      return { source, image: await decodeImage(input, options) };
    } catch (e) {
      throw asClipIqaError(e, source);
    }
  }

  /** Scores same-size images in one pass of the image tower (per positional mode); maps only for a single image. */
  async #scoreGroup(group: readonly Prepared[], plan: ScorePlan): Promise<ImageScores[]> {
    const { source, image } = group[0]!;
    try {
      const pixels = await this.encoder.normalize(group.map((g) => g.image));
      const scores: Record<string, number>[] = group.map(() => ({}));
      const features = new Map<PositionalMode, Promise<Features>>();
      const imageFeatures = (mode: PositionalMode) => {
        let f = features.get(mode);
        if (!f) features.set(mode, (f = this.encoder.encodeImages(pixels, mode)));
        return f;
      };
      if (plan.pairs.length > 0) {
        const text = await this.#pairFeatures(plan.pairs);
        const s = pairScores(await imageFeatures(plan.positional), text, this.logitScale);
        const n = plan.pairs.length;
        scores.forEach((row, g) => plan.pairs.forEach((p, i) => (row[p.name] = s[g * n + i]!)));
      }
      if (plan.ensemble) {
        const text = await this.#pairFeatures(ENSEMBLE_PAIRS);
        const s = pairScores(await imageFeatures(plan.positional), text, this.logitScale);
        const n = ENSEMBLE_PAIRS.length;
        scores.forEach((row, g) => (row[ENSEMBLE] = s.subarray(g * n, (g + 1) * n).reduce((a, b) => a + b, 0) / n));
      }
      if (plan.plus) {
        const text = await this.#learnedFeatures();
        const s = pairScores(await imageFeatures(this.#options.plusPositional ?? 'none'), text, this.logitScale);
        scores.forEach((row, g) => (row[PLUS] = s[g]!));
      }
      const results: ImageScores[] = group.map((g, i) => ({ source: g.source, width: g.image.width, height: g.image.height, scores: scores[i]! }));
      if (plan.maps.length === 0) return results;
      if (group.length > 1) throw new Error('score maps are computed one image at a time');
      return [{ ...results[0]!, maps: await this.#maps(pixels, plan.pairs.filter((p) => plan.maps.includes(p.name))) }];
    } catch (e) {
      throw asClipIqaError(e, group.length === 1 ? source : `${source} (and ${group.length - 1} more of ${image.width}×${image.height})`);
    }
  }

  async #maps(pixels: PixelBatch, pairs: readonly PromptPair[]): Promise<ScoreMap[]> {
    const dense = await this.encoder.encodeDense(pixels);
    const text = await this.#pairFeatures(pairs);
    return denseScoreMaps(dense, text, pairs.map((p) => p.name), this.logitScale);
  }

  #pairFeatures(pairs: readonly PromptPair[]): Promise<Features> {
    return this.#text.features(pairs.flatMap((p) => [p.positive, p.negative]));
  }

  #learnedFeatures(): Promise<Features> {
    if (!this.#plusFeatures) {
      const prompts = this.#plusPrompts!;
      this.#plusFeatures = this.encoder.encodeEmbeddings(prompts.embeddings, prompts.classnames.length, prompts.eot);
      this.#plusFeatures.catch(() => (this.#plusFeatures = undefined));
    }
    return this.#plusFeatures;
  }

  // -- embeddings ---------------------------------------------------------------------------------------------------

  /** The image's CLIP features (embedDim floats, not normalised). */
  async embedImage(input: ImageSource, options: { positional?: PositionalMode; decode?: DecodeOptions } = {}): Promise<Float32Array> {
    checkOptions(options, EMBED_IMAGE_OPTIONS, 'embedImage');
    // A bad mode is the call's fault, found before decoding, as score() finds it.
    const mode = checkPositional(options.positional, 'positional') ?? this.#options.positional ?? 'none';
    const { source, image } = await this.#prepare(input, options.decode);
    try {
      const pixels = await this.encoder.normalize([image]);
      return (await this.encoder.encodeImages(pixels, mode)).data;
    } catch (e) {
      throw asClipIqaError(e, source);
    }
  }

  /** Text features of each text (embedDim floats each, not normalised). */
  async embedText(texts: readonly string[]): Promise<Float32Array[]> {
    const f = await this.#text.features(texts);
    return texts.map((_, i) => f.data.slice(i * f.dim, (i + 1) * f.dim));
  }

  /** Per-region score maps of one image for attributes or prompt pairs (ResNet models). */
  async scoreMaps(input: ImageSource, attributes: readonly string[] | string, options: Omit<ScoreOptions, 'maps' | 'attributes'> = {}): Promise<ScoreMap[]> {
    checkOptions(options, SCORE_MAPS_OPTIONS, 'scoreMaps');
    const plan = this.#plan({ ...options, attributes, ensemble: false, plus: false });
    const { source, image } = await this.#prepare(input, options.decode);
    try {
      return await this.#maps(await this.encoder.normalize([image]), plan.pairs);
    } catch (e) {
      throw asClipIqaError(e, source);
    }
  }

  async dispose(): Promise<void> {
    await this.encoder.dispose();
  }
}

/** Whether two decoded images can share a batch: same size and bit depth. */
function sameShape(a: DecodedImage, b: DecodedImage): boolean {
  return a.width === b.width && a.height === b.height && a.data instanceof Uint16Array === b.data instanceof Uint16Array;
}

/** Errors from deeper layers that lack the input's name get it prefixed, so a batch report says which file failed. */
function asClipIqaError(e: unknown, source: string): ClipIqaError {
  if (isClipIqaError(e)) {
    if (e.message.includes(source)) return e;
    return new ClipIqaError(e.code, `${source}: ${e.message}`, { cause: e });
  }
  return new ClipIqaError('E_RUNTIME', `${source}: ${errorMessage(e)}`, { cause: e });
}

export type { Attribute };
