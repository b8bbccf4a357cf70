/**
 * CLIP-IQA in this thread of the page (or of the worker, worker.ts): the Node API's engine (engine.ts) over files
 * fetched or picked by the user, images decoded by the browser and graphs run by onnxruntime-web. api.ts is the
 * public face, which runs this in a Web Worker by default.
 */
import { env } from 'onnxruntime-web';
import { ClipIqaEngine, type EngineSettings, checkPositional } from '../engine.js';
import { ClipIqaError, errorMessage } from '../errors.js';
import type { DecodeOptions, DecodedImage } from '../image/decode.js';
import { type LearnedContext, type LearnedPrompts, buildLearnedPrompts, loadLearnedContext } from '../iqa/plus.js';
import type { NoisinessPolarity } from '../iqa/prompts.js';
import { DECODE_OPTIONS, type OptionSchema, checkOptions } from '../known-options.js';
import { OnnxClipEncoder } from '../model/clip-encoder.js';
import type { ClipEncoder, PositionalMode } from '../model/types.js';
import { BACKENDS, type Backend, type RuntimeOptions, browserRuntime } from '../runtime/options.browser.js';
import { Tokenizer } from '../text/tokenizer.js';
import { OPEN_CLIP_CONFIG, TRANSFORMERS_CONFIG, WEIGHT_FILES, configFileFor } from '../weights/file-names.js';
import { loadClipModel } from '../weights/layout.js';
import type { ClipArchitecture } from '../weights/architecture.js';
import { BROWSER_LIMIT_INPUT_PIXELS, type BrowserImageSource, checkBrowserDecodeOptions, decodeBrowserImage } from './decode.js';
import { type FileSpec, type LoadProgress, type ReadFile, describe, isFileSpec, readFileSpec } from './files.js';

/** The vocabulary the build puts beside the bundle. */
export const DEFAULT_VOCAB_URL = new URL('./bpe_simple_vocab_16e6.txt.gz', import.meta.url).href;

export interface BrowserLoadOptions {
  /**
   * The CLIP checkpoint: a URL, its bytes or a File/Blob, in any format the Node build reads (safetensors,
   * torch.save, TorchScript); or a model folder as a map of file name → URL/bytes/File (open_clip's
   * `open_clip_model.safetensors` + `open_clip_config.json`, transformers' `model.safetensors` + `config.json`).
   */
  readonly model: FileSpec | Readonly<Record<string, FileSpec>>;
  /** The BPE vocabulary; default: the copy beside the bundle. */
  readonly vocab?: FileSpec;
  /** A CLIP-IQA+ learned context (adds the `clipiqa+` score). */
  readonly plus?: FileSpec;
  /** Positional mode of the image features for CLIP-IQA+; default `none`, as the official context was trained. */
  readonly plusPositional?: PositionalMode;
  /** Default positional mode for every call; default `none`. */
  readonly positional?: PositionalMode;
  /** Which way `noisiness` points; default `noisy`. */
  readonly noisiness?: NoisinessPolarity;
  /** How images are decoded (orientation, alpha, icc, resize, pixel limit). */
  readonly decode?: DecodeOptions;
  /** onnxruntime-web settings: backend (`auto`, `webgpu`, `wasm`), threads. */
  readonly runtime?: RuntimeOptions;
  /** Keep downloaded files in the browser's Cache Storage and read them from there on later visits (default true). */
  readonly cache?: boolean;
  /** Called as files are read: which file, bytes so far, total, whether from the cache. */
  readonly onProgress?: (progress: LoadProgress) => void;
  /** A name for the model in results (default: the URL or file name). */
  readonly name?: string;
  /**
   * What is known of the model that its weights do not say (activation, heads), as a registry entry knows it (the
   * serve page passes the server's); a config in a file map says it otherwise.
   */
  readonly architecture?: ClipArchitecture;
  /** Headers for the downloads (e.g. `authorization` for a server that asks for a token). */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * Run in a Web Worker (default true where workers exist), so that loading and scoring never freeze the page;
   * `false` runs in the calling thread.
   */
  readonly worker?: boolean;
}

const LOAD_OPTIONS: OptionSchema = {
  keys: ['model', 'vocab', 'plus', 'plusPositional', 'positional', 'noisiness', 'decode', 'runtime', 'cache', 'onProgress', 'name', 'worker', 'architecture', 'headers'],
  nested: { decode: DECODE_OPTIONS, runtime: { keys: ['backend', 'precision', 'threads', 'graphOptimizationLevel', 'externalMinBytes'] } },
};

let ortConfigured: { threads: number } | undefined;

/** onnxruntime-web's page-wide settings, made once: where its .wasm files are (beside this bundle) and how many threads. */
function configureOrt(threads: number | undefined): number {
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) {
    throw new ClipIqaError('E_OPTION', `runtime.threads must be a positive integer, got ${String(threads)}`);
  }
  // Threads need SharedArrayBuffer, which browsers give only to cross-origin isolated pages (COOP + COEP headers).
  const isolated = globalThis.crossOriginIsolated === true;
  const wanted = isolated ? (threads ?? Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
  if (!ortConfigured) {
    env.wasm.wasmPaths = new URL('./', import.meta.url).href;
    env.wasm.numThreads = wanted;
    ortConfigured = { threads: wanted };
  }
  return ortConfigured.threads;
}

async function chooseBackend(backend: Backend | undefined): Promise<'webgpu' | 'wasm'> {
  const b = backend ?? 'auto';
  if (!BACKENDS.includes(b)) throw new ClipIqaError('E_OPTION', `runtime.backend must be one of ${BACKENDS.join(', ')}, got "${String(b)}"`);
  if (b === 'wasm') return 'wasm';
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
  if (adapter) return 'webgpu';
  if (b === 'webgpu') throw new ClipIqaError('E_DEVICE', 'WebGPU is not available in this browser (no navigator.gpu adapter); use runtime.backend "wasm" or "auto".');
  return 'wasm';
}

/** The weights file and its config from a model given as a file map, by the publishers' naming. */
function pickFromMap(map: Readonly<Record<string, FileSpec>>): { weights: [string, FileSpec]; config: [string, FileSpec] | undefined } {
  const names = Object.keys(map);
  for (const [k, v] of Object.entries(map)) if (!isFileSpec(v)) throw new ClipIqaError('E_OPTION', `model["${k}"] must be a URL, bytes or a File/Blob, got ${describe(v)}`);
  const weights = WEIGHT_FILES.find((f) => names.includes(f)) ?? (names.filter((n) => !n.endsWith('.json')).length === 1 ? names.find((n) => !n.endsWith('.json')) : undefined);
  if (!weights) {
    throw new ClipIqaError(
      'E_NOT_FOUND',
      `the model map (${names.join(', ') || 'empty'}) names no weights file: give one of ${WEIGHT_FILES.join(', ')} (with ${OPEN_CLIP_CONFIG} or ${TRANSFORMERS_CONFIG}), or a single checkpoint.`,
    );
  }
  const configName = configFileFor(weights.split('/').pop()!);
  return { weights: [weights, map[weights]!], config: configName && map[configName] ? [configName, map[configName]] : undefined };
}

/** CLIP-IQA over one loaded checkpoint, in this thread. */
export class LocalClipIqa extends ClipIqaEngine<BrowserImageSource> {
  /** Where the graphs run: `webgpu` or `wasm`. */
  readonly backend: 'webgpu' | 'wasm';
  /** WASM threads (1 unless the page is cross-origin isolated). */
  readonly threads: number;

  private constructor(
    encoder: ClipEncoder,
    tokenizer: Tokenizer,
    plus: { context: LearnedContext; prompts: LearnedPrompts } | undefined,
    name: string,
    settings: EngineSettings,
    backend: 'webgpu' | 'wasm',
    threads: number,
  ) {
    super(encoder, tokenizer, plus, name, settings);
    this.backend = backend;
    this.threads = threads;
  }

  static async load(options: BrowserLoadOptions): Promise<LocalClipIqa> {
    if (options === null || typeof options !== 'object') throw new ClipIqaError('E_OPTION', 'ClipIqa.load needs options: { model: URL | bytes | File, … }');
    checkOptions(options, LOAD_OPTIONS, 'ClipIqa.load');
    checkPositional(options.positional, 'positional');
    checkPositional(options.plusPositional, 'plusPositional');
    if (options.decode) checkBrowserDecodeOptions(options.decode);
    if (options.runtime?.precision !== undefined && options.runtime.precision !== 'float32') {
      throw new ClipIqaError('E_OPTION', `precision '${options.runtime.precision}' is not available in the browser build; it runs float32 (the reference's arithmetic).`);
    }
    if (options.model === undefined || options.model === null) throw new ClipIqaError('E_OPTION', 'ClipIqa.load: give `model`, a checkpoint URL, bytes or File (the browser build has no registry).');
    const threads = configureOrt(options.runtime?.threads);
    const backend = await chooseBackend(options.runtime?.backend);
    browserRuntime.backend = backend;

    const read = { cache: options.cache ?? true, onProgress: options.onProgress, headers: options.headers };
    const spec = options.model;
    const { weights, config } = isFileSpec(spec) ? { weights: ['checkpoint', spec] as [string, FileSpec], config: undefined } : pickFromMap(spec);
    const [modelFile, configFile, vocabFile, plusFile] = await Promise.all([
      readFileSpec(weights[1], weights[0], { ...read, kind: 'model' }),
      config ? readFileSpec(config[1], config[0], { ...read, kind: 'config' }) : undefined,
      readFileSpec(options.vocab ?? DEFAULT_VOCAB_URL, 'vocabulary', { ...read, kind: 'vocab' }),
      options.plus === undefined ? undefined : readFileSpec(options.plus, 'CLIP-IQA+ context', { ...read, kind: 'plus' }),
    ]);
    const [clip, context] = await Promise.all([
      loadClipModel({
        weights: modelFile.bytes,
        source: modelFile.name,
        config: configFile && { source: configFile.name, text: decodeText(configFile) },
        architecture: options.architecture,
      }),
      plusFile && loadLearnedContext(plusFile.bytes, plusFile.name),
    ]);
    const tokenizer = Tokenizer.fromBytes(vocabFile.bytes, vocabFile.name);
    const encoder = OnnxClipEncoder.create(clip.sd, { ...options.runtime, architecture: clip.architecture });
    const plus = context && { context, prompts: buildLearnedPrompts(context, tokenizer, (ids) => encoder.tokenEmbeddings(ids), encoder.architecture.text.width) };
    const decode = { limitInputPixels: BROWSER_LIMIT_INPUT_PIXELS, ...options.decode };
    const name = options.name ?? modelFile.name;
    const settings = { noisiness: options.noisiness, positional: options.positional, plusPositional: options.plusPositional, decode };
    return new LocalClipIqa(encoder, tokenizer, plus, name, settings, backend, threads);
  }

  protected sourceName(input: BrowserImageSource, options: DecodeOptions): string {
    if (typeof File !== 'undefined' && input instanceof File) return options.name ?? input.name;
    if (typeof HTMLImageElement !== 'undefined' && input instanceof HTMLImageElement) return options.name ?? (input.currentSrc || input.src || '<img>');
    return options.name ?? '<image>';
  }

  protected decodeInput(input: BrowserImageSource, options: DecodeOptions): Promise<DecodedImage> {
    return decodeBrowserImage(input, options, this.sourceName(input, options));
  }
}

function decodeText(file: ReadFile): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(file.bytes);
  } catch (e) {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${file.name}: the model config is not UTF-8 text (${errorMessage(e)}).`, { cause: e });
  }
}

