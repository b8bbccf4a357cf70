/**
 * What the Node library (api.ts) and the browser build (browser/api.ts) share once a model is loaded: planning a
 * call, scoring (attributes, the ensemble, CLIP-IQA+, score maps), batches that go on past a bad image, and
 * embeddings. Each build says how its inputs are named and decoded; everything else is this one code.
 */
import { ClipIqaError, errorMessage, isClipIqaError } from './errors.js';
import type { DecodeOptions, DecodedImage } from './image/decode.js';
import { type ScoreMap, denseScoreMaps } from './iqa/dense.js';
import { type LearnedContext, type LearnedPrompts, PLUS } from './iqa/plus.js';
import { DEFAULT_ATTRIBUTES, ENSEMBLE, ENSEMBLE_PAIRS, type NoisinessPolarity, type PromptPair, parsePromptPair, resolveAttributes } from './iqa/prompts.js';
import { pairScores } from './iqa/score.js';
import { TextFeatureCache } from './iqa/text-features.js';
import type { TokenMemo } from './iqa/token-memo.js';
import { type ClipEncoder, type Features, POSITIONAL_MODES, type PixelBatch, type PositionalMode } from './model/types.js';
import type { Tokenizer } from './text/tokenizer.js';
import { type ClipArchitecture, describeArchitecture } from './weights/architecture.js';
import { EMBED_IMAGE_OPTIONS, SCORE_MANY_OPTIONS, SCORE_MAPS_OPTIONS, SCORE_OPTIONS, checkOptions } from './known-options.js';

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

/** The pairs a score call evaluates, in the order their scores are reported. */
export interface ScorePlan {
  readonly pairs: PromptPair[];
  readonly ensemble: boolean;
  readonly plus: boolean;
  readonly positional: PositionalMode;
  readonly maps: readonly string[];
}

/** A decoded input with a name for messages. */
interface Prepared {
  readonly source: string;
  readonly image: DecodedImage;
}

export function checkPositional(mode: PositionalMode | undefined, what: string): PositionalMode | undefined {
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

/** What a loaded model is scored with, besides its encoder and tokenizer: the load options that calls inherit. */
export interface EngineSettings {
  readonly noisiness?: NoisinessPolarity;
  readonly positional?: PositionalMode;
  /** The positional mode CLIP-IQA+ is scored in (what the context was trained with). */
  readonly plusPositional?: PositionalMode;
  /** Decode options every call starts from. */
  readonly decode?: DecodeOptions;
}

/**
 * CLIP-IQA over one loaded model, for inputs of type `Input`. A build subclasses it with how an input is named
 * (`sourceName`) and decoded (`decodeInput`).
 */
export abstract class ClipIqaEngine<Input> {
  readonly encoder: ClipEncoder;
  readonly tokenizer: Tokenizer;
  readonly name: string;
  readonly context: LearnedContext | undefined;
  readonly #options: EngineSettings;
  readonly #text: TextFeatureCache;
  /** The CLIP-IQA+ prompts, built at load (so that a context that does not fit the model fails there). */
  readonly #plusPrompts: LearnedPrompts | undefined;
  #plusFeatures: Promise<Features> | undefined;

  protected constructor(
    encoder: ClipEncoder,
    tokenizer: Tokenizer,
    plus: { context: LearnedContext; prompts: LearnedPrompts } | undefined,
    name: string,
    options: EngineSettings,
    /** Token rows of prompts seen before (Node's cache on disk), so that a known vocabulary need not be parsed. */
    memo?: TokenMemo,
  ) {
    this.encoder = encoder;
    this.tokenizer = tokenizer;
    this.context = plus?.context;
    this.#plusPrompts = plus?.prompts;
    this.name = name;
    this.#options = options;
    this.#text = new TextFeatureCache(encoder, tokenizer, undefined, memo);
  }

  /** How an input is named in results and messages (`options` are the merged decode options of the call). */
  protected abstract sourceName(input: Input, options: DecodeOptions): string;

  /** An input's pixels, decoded with the call's merged decode options. */
  protected abstract decodeInput(input: Input, options: DecodeOptions): Promise<DecodedImage>;

  get architecture(): ClipArchitecture {
    return this.encoder.architecture;
  }

  /** e.g. "ResNet [3,4,6,3] width 64 @224, text 512×12, embed 1024". */
  describe(): string {
    return describeArchitecture(this.encoder.architecture);
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
  async score(input: Input, options: ScoreOptions = {}): Promise<ImageScores> {
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
  async *scoreMany(inputs: Iterable<Input> | AsyncIterable<Input>, options: ScoreManyOptions = {}): AsyncGenerator<BatchResult> {
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
        queue.push({ source: this.sourceName(next.value, decode), prepared });
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

  async #prepare(input: Input, decode?: DecodeOptions): Promise<Prepared> {
    const options = { ...this.#options.decode, ...decode };
    const source = this.sourceName(input, options);
    try {
      return { source, image: await this.decodeInput(input, options) };
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
  async embedImage(input: Input, options: { positional?: PositionalMode; decode?: DecodeOptions } = {}): Promise<Float32Array> {
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
  async scoreMaps(input: Input, attributes: readonly string[] | string, options: Omit<ScoreOptions, 'maps' | 'attributes'> = {}): Promise<ScoreMap[]> {
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
export function asClipIqaError(e: unknown, source: string): ClipIqaError {
  if (isClipIqaError(e)) {
    if (e.message.includes(source)) return e;
    return new ClipIqaError(e.code, `${source}: ${e.message}`, { cause: e });
  }
  return new ClipIqaError('E_RUNTIME', `${source}: ${errorMessage(e)}`, { cause: e });
}
