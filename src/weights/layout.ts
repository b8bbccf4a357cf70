/**
 * A CLIP model as it is published — OpenAI's checkpoints, open_clip's folders (`open_clip_model.safetensors` +
 * `open_clip_config.json`), transformers' (`model.safetensors` + `config.json`) — read into what the graphs take:
 * an OpenAI-layout state dict and the architecture, including what only a config can say (the MLP activation,
 * attention heads, LayerNorm epsilon). Models CLIP-IQA cannot run are refused here, naming what was found.
 */
import { ClipIqaError } from '../errors.js';
import { type ClipArchitecture, type TextTower, type VitVision, inferArchitecture } from './architecture.js';
import { type ModelConfig, type TowerConfig, isObject, unsupported } from './layouts/config.js';
import { parseOpenClipConfig } from './layouts/open-clip.js';
import { fromTransformers, isTransformersLayout, parseTransformersConfig } from './layouts/transformers.js';
import { readConfigText } from './config-file.js';
import { loadCheckpoint } from './load.js';
import { StateDict } from './state-dict.js';

export type { ModelConfig } from './layouts/config.js';

export type Layout = 'openai' | 'open_clip' | 'transformers';

export interface ClipModelFiles {
  /** The weights: a checkpoint file, its bytes, or a state dict already read. */
  readonly weights: string | Uint8Array | StateDict;
  /**
   * The config file that goes with them (`open_clip_config.json`, `config.json`), or its text and a name for
   * messages (the browser build, which has no files); null or absent: none.
   */
  readonly config?: string | { readonly source: string; readonly text: string } | null;
  /**
   * What is known of the model without a config (a registry entry's architecture): its activation and heads
   * are used when no config says otherwise.
   */
  readonly architecture?: ClipArchitecture;
  /** Names bytes in messages. */
  readonly source?: string;
}

export interface ClipModel {
  /** OpenAI-layout weights. */
  readonly sd: StateDict;
  readonly architecture: ClipArchitecture;
  /** The layout the weights were published in. */
  readonly layout: Layout;
}

/** Reads an open_clip or transformers config file, telling them apart by content. */
export async function readModelConfig(path: string): Promise<ModelConfig> {
  const text = await readConfigText(path);
  return parseModelConfig(text, path);
}

/** An open_clip or transformers config from its text, told apart by content; `path` names it in messages. */
export function parseModelConfig(text: string, path: string): ModelConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${path}: the model config is not valid JSON (${(e as Error).message}).`, { cause: e });
  }
  if (!isObject(json)) throw new ClipIqaError('E_WEIGHTS_FORMAT', `${path}: the model config is not a JSON object.`);
  if (isObject(json.model_cfg) || isObject(json.vision_cfg)) return parseOpenClipConfig(json, path);
  if ('text_config' in json || 'vision_config' in json || 'model_type' in json) return parseTransformersConfig(json, path);
  throw new ClipIqaError(
    'E_WEIGHTS_FORMAT',
    `${path}: neither an open_clip config (model_cfg) nor a transformers config (model_type, text_config, vision_config).`,
  );
}

/**
 * Refuses, by what the keys show, checkpoints of models that are not CLIP as the graphs compute it, before
 * anything else complains about a missing tensor.
 */
function checkKeys(sd: StateDict): void {
  const keys = [...sd.keys()];
  const some = (test: (k: string) => boolean) => keys.find(test);
  const found =
    (some((k) => k.startsWith('text.')) && 'a custom text tower (keys under "text."; open_clip CustomTextCLIP: EVA, SigLIP, CoCa, …)') ||
    (some((k) => k.startsWith('visual.trunk.')) && 'a timm image tower (keys under "visual.trunk."; ConvNeXt, EVA, SigLIP, …)') ||
    (some((k) => k.includes('attn_pool')) && "CoCa's attentional pool (attn_pool)") ||
    (some((k) => k === 'logit_bias') && 'a sigmoid-loss model (logit_bias: SigLIP)') ||
    (some((k) => /\.ls_[12]\.gamma$/.test(k)) && 'LayerScale (ls_1/ls_2 gammas)') ||
    (some((k) => k === 'text_projection.weight') && !isTransformersLayout(sd) && 'a text projection with a bias (text_projection.weight: SigLIP)') ||
    (some((k) => k.startsWith('vision_model.head.')) && 'a SigLIP image head (vision_model.head)') ||
    (some((k) => /^(blocks\.\d+\.attn\.qkv|patch_embed\.proj)\./.test(k)) &&
      "a timm image model (vision only, timm's layout; the model.safetensors of timm's *_clip.openai repositories is one: their open_clip_model.safetensors is the CLIP model)") ||
    (sd.has('visual.proj') && !sd.has('visual.ln_pre.weight') && 'a ViT image tower without ln_pre (CLIPA)');
  if (found) throw unsupported(sd.source, `the checkpoint holds ${found}`);
}

function applyTower<T extends TextTower | VitVision>(tower: T, c: TowerConfig, what: string, config: ModelConfig): T {
  const check = (name: string, inConfig: number | undefined, inWeights: number) => {
    if (inConfig !== undefined && inConfig !== inWeights) {
      throw new ClipIqaError(
        'E_ARCHITECTURE',
        `${config.source}: the config gives the ${what} ${name} ${inConfig}, but the weights have ${inWeights}; the config belongs to another model.`,
      );
    }
  };
  check('width', c.width, tower.width);
  check('layers', c.layers, tower.layers);
  const heads = c.heads ?? tower.heads;
  if (tower.width % heads !== 0) throw new ClipIqaError('E_ARCHITECTURE', `${config.source}: ${heads} heads do not divide the ${what} width ${tower.width}.`);
  return { ...tower, heads, activation: c.activation, ...(c.layerNormEps !== undefined && c.layerNormEps !== 1e-5 ? { layerNormEps: c.layerNormEps } : {}) };
}

/** The inferred architecture with what the config states (heads, activation, epsilon), cross-checked. */
function withConfig(arch: ClipArchitecture, config: ModelConfig): ClipArchitecture {
  const v = arch.vision;
  if (config.vision.family && config.vision.family !== v.family) {
    throw new ClipIqaError('E_ARCHITECTURE', `${config.source}: the config describes a ${config.vision.family} image tower, the weights a ${v.family}.`);
  }
  if (config.embedDim !== undefined && config.embedDim !== arch.embedDim) {
    throw new ClipIqaError('E_ARCHITECTURE', `${config.source}: the config gives embedding ${config.embedDim}, the weights ${arch.embedDim}; the config belongs to another model.`);
  }
  if (config.vision.imageSize !== undefined && config.vision.imageSize !== v.resolution) {
    throw new ClipIqaError('E_ARCHITECTURE', `${config.source}: the config gives image size ${config.vision.imageSize}, the weights' positional table ${v.resolution}.`);
  }
  const text = applyTower(arch.text, config.text, 'text', config);
  const base = { ...arch, text, ...(config.normalization ? { normalization: config.normalization } : {}) };
  if (v.family === 'resnet') return { ...base, vision: { ...v, heads: config.vision.heads ?? v.heads } };
  return { ...base, vision: applyTower(v, config.vision, 'image', config) };
}

/** The inferred architecture with a registry entry's activation and heads, when the shapes agree. */
function withKnown(arch: ClipArchitecture, known: ClipArchitecture): ClipArchitecture {
  const kv = known.vision;
  const v = arch.vision;
  const text = arch.text.width === known.text.width ? { ...arch.text, heads: known.text.heads, activation: known.text.activation } : arch.text;
  const base = { ...arch, text, ...(known.normalization ? { normalization: known.normalization } : {}) };
  if (v.family === 'vit' && kv.family === 'vit' && v.width === kv.width) return { ...base, vision: { ...v, heads: kv.heads, activation: kv.activation } };
  if (v.family === 'resnet' && kv.family === 'resnet' && v.width === kv.width) return { ...base, vision: { ...v, heads: kv.heads } };
  return base;
}

function checkTokenizer(sd: StateDict, arch: ClipArchitecture): void {
  const { contextLength, vocabSize } = arch.text;
  if (contextLength !== 77 || vocabSize !== 49408) {
    throw unsupported(sd.source, `the text tower takes ${contextLength} tokens from a vocabulary of ${vocabSize} ids (another tokenizer than CLIP's)`);
  }
}

/**
 * Reads a CLIP model in any supported layout. Without a config, OpenAI-layout weights are OpenAI's CLIP
 * (QuickGELU, 64-channel heads) unless `architecture` says otherwise; transformers weights need their config.
 */
export async function loadClipModel(files: ClipModelFiles): Promise<ClipModel> {
  const [config, raw] = await Promise.all([
    typeof files.config === 'string' ? readModelConfig(files.config) : files.config ? parseModelConfig(files.config.text, files.config.source) : undefined,
    files.weights instanceof StateDict ? files.weights : loadCheckpoint(files.weights, files.source ? { source: files.source } : {}),
  ]);
  const transformers = isTransformersLayout(raw);
  if (transformers && config?.layout !== 'transformers') {
    throw new ClipIqaError(
      'E_WEIGHTS_FORMAT',
      `${raw.source}: transformers' CLIPModel weights need their config.json (activation, heads) ` +
        `${config ? `, not the open_clip config ${config.source}` : 'beside them: put it next to the weights file, or load the folder or the hf: repository'}.`,
    );
  }
  if (!transformers && config?.layout === 'transformers') {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${config.source} describes a transformers CLIPModel, but ${raw.source} is not in that layout.`);
  }
  checkKeys(raw);
  const sd = transformers ? fromTransformers(raw) : raw;
  let architecture = inferArchitecture(sd);
  checkTokenizer(sd, architecture);
  if (config) architecture = withConfig(architecture, config);
  else if (files.architecture) architecture = withKnown(architecture, files.architecture);
  return { sd, architecture, layout: transformers ? 'transformers' : config ? 'open_clip' : 'openai' };
}
