/**
 * clip-iqa: CLIP-IQA and CLIP-IQA+ in TypeScript.
 *
 *   import { ClipIqa } from 'clip-iqa';
 *   const iqa = await ClipIqa.load();                    // RN50, fetched and verified on first use
 *   const { scores } = await iqa.score('photo.jpg');     // the paper's twelve attributes
 */
export {
  ClipIqa,
  PLUS,
  resolveModelFiles,
  type BatchResult,
  type ClipIqaOptions,
  type ImageFailure,
  type ImageScores,
  type ModelFiles,
  type ScoreManyOptions,
  type ScoreOptions,
  type ScorePlan,
} from './api.js';
export { ClipIqaError, isClipIqaError, type ErrorCode } from './errors.js';
export {
  ATTRIBUTES,
  ATTRIBUTE_SETS,
  DEFAULT_ATTRIBUTES,
  ENSEMBLE,
  ENSEMBLE_PAIRS,
  findAttribute,
  parsePromptPair,
  resolveAttributes,
  type Attribute,
  type AttributeGroup,
  type NoisinessPolarity,
  type PromptPair,
} from './iqa/prompts.js';
export { pairProbability, pairScores } from './iqa/score.js';
export { denseScoreMaps, type ScoreMap } from './iqa/dense.js';
export { PLUS_CLASSNAMES, buildLearnedPrompts, loadLearnedContext, type LearnedContext, type LearnedPrompts } from './iqa/plus.js';
export {
  decodeImage,
  readImageInfo,
  type AlphaMode,
  type DecodeOptions,
  type DecodedImage,
  type IccMode,
  type ImageInfo,
  type ImageSource,
  type OrientationMode,
  type ResizePolicy,
} from './image/decode.js';
export { DEFAULT_URL_FETCH, UrlFetchError, fetchImageUrl, type FetchedImage, type UrlFetchOptions } from './image/fetch.js';
export { Tokenizer } from './text/tokenizer.js';
export { OnnxClipEncoder } from './model/clip-encoder.js';
export {
  POSITIONAL_MODES,
  type ClipEncoder,
  type DenseFeatures,
  type Features,
  type PixelBatch,
  type PositionalMode,
  type RawImage,
} from './model/types.js';
export type { RuntimeOptions } from './runtime/options.js';
export { loadCheckpoint, loadPickledObject, type LoadOptions } from './weights/load.js';
export { DEFAULT_READ_LIMITS, READ_LIMIT_ENV, type ReadLimits } from './weights/limits.js';
export { loadSafetensors, readSafetensors } from './weights/safetensors.js';
export { StateDict } from './weights/state-dict.js';
export { describeArchitecture, inferArchitecture, type Activation, type ClipArchitecture } from './weights/architecture.js';
export { loadClipModel, readModelConfig, type ClipModel, type ClipModelFiles, type Layout, type ModelConfig } from './weights/layout.js';
export * as hub from './hub/index.js';
