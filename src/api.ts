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
import { ClipIqaEngine, checkPositional } from './engine.js';
import { ClipIqaError } from './errors.js';
import { type FileRequest, type ResolvedFile, resolveSources } from './hub/resolve.js';
import type { HubOptions } from './hub/settings.js';
import { DEFAULT_LIMIT_INPUT_PIXELS, type DecodeOptions, type DecodedImage, type ImageSource, decodeImage } from './image/decode.js';
import { type UrlFetchOptions, fetchImageUrl, isHttpUrl } from './image/fetch.js';
import { type LearnedContext, type LearnedPrompts, PLUS, buildLearnedPrompts, loadLearnedContext } from './iqa/plus.js';
import type { Attribute, NoisinessPolarity } from './iqa/prompts.js';
import { TokenMemo } from './iqa/token-memo.js';
import { OnnxClipEncoder } from './model/clip-encoder.js';
import { openCheckpoint } from './model/model-weights.js';
import { traced } from './util/trace.js';
import { CachedTextEncoder, FeatureStore, modelIdentity } from './model/feature-cache.js';
import { memoryPixelLimit } from './model/memory.js';
import type { ClipEncoder, PositionalMode } from './model/types.js';
import { type Precision, type RuntimeOptions, checkDevice } from './runtime/options.js';
import { Tokenizer } from './text/tokenizer.js';
import { StateDict } from './weights/state-dict.js';
import { LOAD_OPTIONS, checkOptions } from './known-options.js';

export {
  type BatchResult,
  type ImageFailure,
  type ImageScores,
  type PlanModel,
  type ScoreManyOptions,
  type ScoreOptions,
  type ScorePlan,
  planScore,
} from './engine.js';
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
export class ClipIqa extends ClipIqaEngine<ImageSource> {
  /**
   * SHA-256 (hex) of the checkpoint: the one the hub verified for downloads, else computed once per file and
   * remembered under the cache root (keyed by path, size, mtime and inode); null for a StateDict given in memory
   * or a file that could not be read again.
   */
  readonly modelSha256: string | null;
  readonly #options: ClipIqaOptions;

  private constructor(
    encoder: ClipEncoder,
    tokenizer: Tokenizer,
    plus: { context: LearnedContext; prompts: LearnedPrompts } | undefined,
    name: string,
    options: ClipIqaOptions,
    modelSha256: string | null,
    memo?: TokenMemo,
  ) {
    super(encoder, tokenizer, plus, name, options, memo);
    this.modelSha256 = modelSha256;
    this.#options = options;
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

  /** The largest width×height decoded, as the caller set it or (by default) sized to the memory available for this model. */
  get maxPixels(): number | false {
    return this.#options.decode?.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
  }

  protected sourceName(input: ImageSource, options: DecodeOptions): string {
    return typeof input === 'string' ? input : (options.name ?? '<buffer>');
  }

  protected async decodeInput(input: ImageSource, options: DecodeOptions): Promise<DecodedImage> {
    if (typeof input === 'string' && isHttpUrl(input)) {
      const fetchOptions = this.#options.fetch;
      if (!fetchOptions) {
        throw new ClipIqaError('E_URL', `${input}: a URL, and fetching is off; load with { fetch: true } (or fetch limits) to score URLs, or download the image first`);
      }
      const fetched = await fetchImageUrl(input, fetchOptions === true ? {} : fetchOptions);
      return decodeImage(fetched.bytes, { ...options, name: input });
    }
    return decodeImage(input, options);
  }
}

export type { Attribute };
