/**
 * open_clip's layout: state-dict keys as OpenAI's `model.py` (no renaming), and `open_clip_config.json`, whose
 * `model_cfg` holds the `CLIP(**model_cfg)` arguments (a bare model config is accepted too, as open_clip does).
 *
 * Only the OpenAI-compatible path of open_clip's `CLIP` class is supported: every flag that changes the keys or
 * the arithmetic (a timm or Hugging Face tower, CoCa's attentional pool, SigLIP's logit bias and last-token pool,
 * CLIPA's missing ln_pre and pooling, LayerScale, another tokenizer) is refused by name rather than guessed.
 * `quick_gelu: true` means QuickGELU in both towers; absent or false means exact GELU (LAION, DataComp).
 */
import { ClipIqaError } from '../../errors.js';
import { type Json, type ModelConfig, checkTokenizer, intField, isObject, numberField, unsupported } from './config.js';

/** A setting open_clip accepts whose default (or absence) is all clip-iqa supports, and what else means. */
interface Flag {
  readonly ok: (v: unknown) => boolean;
  /** The model family a non-default value points to, for the message. */
  readonly means: string;
}

const absent = (v: unknown): boolean => v === undefined || v === null || v === false;
const flag = (means: string, ok: (v: unknown) => boolean = absent): Flag => ({ ok, means });

const MODEL_FLAGS: Record<string, Flag> = {
  custom_text: flag('a custom text tower (CustomTextCLIP: EVA, SigLIP, CoCa, …)'),
  multimodal_cfg: flag('a CoCa captioning model'),
  init_logit_bias: flag('a sigmoid-loss model (SigLIP): it adds a logit bias'),
  text_arch: flag('another text architecture', (v) => absent(v) || v === 'default'),
  vision_arch: flag('another image architecture', (v) => absent(v) || v === 'default'),
};

/** Keys of the model config that change nothing clip-iqa computes. */
const MODEL_IGNORED = new Set(['embed_dim', 'quick_gelu', 'vision_cfg', 'text_cfg', 'cast_dtype', 'init_logit_scale', 'output_dict', 'nonscalar_logit_scale']);

const VISION_FLAGS: Record<string, Flag> = {
  timm_model_name: flag('a timm image tower (ConvNeXt, EVA, SigLIP, …)'),
  hf_model_name: flag('a Hugging Face image tower'),
  attentional_pool: flag("CoCa's attentional pool"),
  attn_pooler_queries: flag("CoCa's attentional pool", (v) => absent(v) || typeof v === 'number'),
  attn_pooler_heads: flag("CoCa's attentional pool", (v) => absent(v) || typeof v === 'number'),
  no_ln_pre: flag('a CLIPA image tower (no ln_pre)'),
  final_ln_after_pool: flag('a CLIPA image tower (LayerNorm after pooling)'),
  pool_type: flag('a pooling other than the class token (CLIPA and others)', (v) => absent(v) || v === 'tok'),
  global_average_pool: flag('global average pooling instead of the class token'),
  ls_init_value: flag('LayerScale'),
  input_patchnorm: flag('a patch LayerNorm before the embedding'),
  pos_embed_type: flag('a positional embedding other than the learned table', (v) => absent(v) || v === 'learnable'),
  act_kwargs: flag('a parameterised activation'),
  embed_cls: flag('an extra class embedding'),
};

const VISION_IGNORED = new Set(['image_size', 'layers', 'width', 'patch_size', 'head_width', 'mlp_ratio', 'patch_dropout', 'output_tokens', 'norm_kwargs', 'timm_model_pretrained', 'timm_pool', 'timm_proj', 'timm_proj_bias', 'timm_drop', 'timm_drop_path']);

/** Tokenizers with CLIP's own BPE vocabulary. */
const CLIP_TOKENIZER = /^openai\/clip-vit-/i;

const TEXT_FLAGS: Record<string, Flag> = {
  hf_model_name: flag('a Hugging Face text tower'),
  hf_tokenizer_name: flag('another tokenizer', (v) => absent(v) || (typeof v === 'string' && CLIP_TOKENIZER.test(v))),
  text_arch: flag('another text architecture', (v) => absent(v) || v === 'default'),
  embed_cls: flag('a CoCa text tower (extra class embedding)'),
  no_causal_mask: flag('bidirectional text attention (SigLIP, CLIPA, MobileCLIP)'),
  final_ln_after_pool: flag('a CLIPA text tower (LayerNorm after pooling)'),
  pool_type: flag('a text pooling other than the end-of-text token (SigLIP, multilingual models)', (v) => absent(v) || v === 'argmax'),
  proj_type: flag('a text projection other than a plain matrix', (v) => absent(v) || v === 'linear'),
  proj_bias: flag('a text projection with a bias (SigLIP)'),
  ls_init_value: flag('LayerScale'),
  act_kwargs: flag('a parameterised activation'),
  eos_id: flag('an end-of-text id other than CLIP', (v) => absent(v) || v === 49407),
  pad_id: flag('another padding id', (v) => absent(v) || v === 0),
};

const TEXT_IGNORED = new Set(['context_length', 'vocab_size', 'width', 'heads', 'layers', 'mlp_ratio', 'output_tokens', 'norm_kwargs', 'tokenizer_kwargs', 'hf_proj_type', 'hf_pooler_type', 'hf_model_pretrained']);

function checkFlags(o: Json, flags: Record<string, Flag>, ignored: Set<string>, source: string, where: string): void {
  for (const [key, value] of Object.entries(o)) {
    const f = flags[key];
    if (f) {
      if (!f.ok(value)) throw unsupported(source, `${where}${key} is ${JSON.stringify(value)}: ${f.means}`);
    } else if (!ignored.has(key)) {
      throw unsupported(source, `${where}${key} is ${JSON.stringify(value)}, a setting of open_clip this reader does not know`);
    }
  }
}

function layerNormEps(o: Json, source: string, where: string): number | undefined {
  const kw = o.norm_kwargs;
  if (kw === undefined || kw === null) return undefined;
  if (!isObject(kw) || Object.keys(kw).some((k) => k !== 'eps')) {
    throw unsupported(source, `${where}norm_kwargs is ${JSON.stringify(kw)}: a LayerNorm other than CLIP's`);
  }
  return numberField(kw, 'eps', source, `${where}norm_kwargs.`);
}

const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

/** `preprocess_cfg.mean` / `std` when they differ from CLIP's (ViT-L-14 laion2b_s32b_b82k uses 0.5, 0.5). */
function pixelNormalization(pre: unknown, source: string): { mean: number[]; std: number[] } | undefined {
  if (!isObject(pre)) return undefined;
  const triple = (v: unknown, what: string): number[] => {
    if (v === undefined || v === null) return what === 'mean' ? CLIP_MEAN : CLIP_STD;
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x)) || (what === 'std' && v.some((x) => x <= 0))) {
      throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: preprocess_cfg.${what} is ${JSON.stringify(v)}; three numbers (RGB) were expected.`);
    }
    return v as number[];
  };
  const mean = triple(pre.mean, 'mean');
  const std = triple(pre.std, 'std');
  const same = (a: number[], b: number[]) => a.every((x, i) => Math.abs(x - b[i]!) < 1e-7);
  return same(mean, CLIP_MEAN) && same(std, CLIP_STD) ? undefined : { mean, std };
}

/** Reads an `open_clip_config.json` (or a bare open_clip model config). */
export function parseOpenClipConfig(json: Json, source: string): ModelConfig {
  const cfg = isObject(json.model_cfg) ? json.model_cfg : json;
  const vision = cfg.vision_cfg;
  const text = cfg.text_cfg;
  if (!isObject(vision) || !isObject(text)) {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: an open_clip config needs model_cfg.vision_cfg and model_cfg.text_cfg objects.`);
  }
  for (const [key, value] of Object.entries(cfg)) {
    const f = MODEL_FLAGS[key];
    if (f && !f.ok(value)) throw unsupported(source, `model_cfg.${key} is ${JSON.stringify(value)}: ${f.means}`);
    if (!f && !MODEL_IGNORED.has(key)) throw unsupported(source, `model_cfg.${key} is ${JSON.stringify(value)}, a setting of open_clip this reader does not know`);
  }
  checkFlags(vision, VISION_FLAGS, VISION_IGNORED, source, 'vision_cfg.');
  checkFlags(text, TEXT_FLAGS, TEXT_IGNORED, source, 'text_cfg.');

  const contextLength = intField(text, 'context_length', source, 'text_cfg.') ?? 77;
  const vocabSize = intField(text, 'vocab_size', source, 'text_cfg.') ?? 49408;
  checkTokenizer(source, contextLength, vocabSize);
  if (cfg.quick_gelu !== undefined && typeof cfg.quick_gelu !== 'boolean') {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: model_cfg.quick_gelu is ${JSON.stringify(cfg.quick_gelu)}; true or false was expected.`);
  }
  const activation = cfg.quick_gelu === true ? 'quick_gelu' : 'gelu';

  const layers = vision.layers;
  const resnet = Array.isArray(layers);
  const vWidth = intField(vision, 'width', source, 'vision_cfg.');
  // open_clip: heads = width / head_width for a ViT, width·32 / head_width for the ResNet's attention pool.
  const headWidth = intField(vision, 'head_width', source, 'vision_cfg.') ?? 64;
  const vHeads = vWidth === undefined ? undefined : Math.floor(((resnet ? 32 : 1) * vWidth) / headWidth);
  let imageSize = vision.image_size;
  if (Array.isArray(imageSize)) {
    if (imageSize.length !== 2 || imageSize[0] !== imageSize[1]) throw unsupported(source, `vision_cfg.image_size is ${JSON.stringify(imageSize)}: a non-square input`);
    imageSize = imageSize[0];
  }
  const textWidth = intField(text, 'width', source, 'text_cfg.');
  const normalization = pixelNormalization(json.preprocess_cfg, source);
  return {
    ...(normalization ? { normalization } : {}),
    layout: 'open_clip',
    source,
    embedDim: intField(cfg, 'embed_dim', source, 'model_cfg.'),
    text: {
      activation,
      width: textWidth,
      // CLIPTextCfg's default is 8 heads; every published config states them.
      heads: intField(text, 'heads', source, 'text_cfg.') ?? 8,
      layers: intField(text, 'layers', source, 'text_cfg.'),
      layerNormEps: layerNormEps(text, source, 'text_cfg.'),
      contextLength,
      vocabSize,
    },
    vision: {
      activation,
      family: resnet ? 'resnet' : 'vit',
      width: vWidth,
      heads: vHeads,
      layers: resnet ? undefined : intField(vision, 'layers', source, 'vision_cfg.'),
      layerNormEps: layerNormEps(vision, source, 'vision_cfg.'),
      imageSize: typeof imageSize === 'number' ? imageSize : undefined,
      patch: resnet ? undefined : intField(vision, 'patch_size', source, 'vision_cfg.'),
    },
  };
}
