/**
 * transformers' `CLIPModel` layout (ViT image towers only: transformers has no modified ResNet), mapped onto
 * OpenAI's as transformers' own converter (convert_clip_original_pytorch_to_hf.py) maps the other way:
 * q, k, v projections concatenated in that order into `in_proj`, `visual_projection` / `text_projection`
 * transposed (nn.Linear keeps them [out, in]), `pre_layrnorm` / `post_layernorm` → `ln_pre` / `ln_post`,
 * `layer_norm1/2` → `ln_1/2`, `fc1/fc2` → `c_fc/c_proj`, `final_layer_norm` → `ln_final`; `position_ids`
 * buffers are dropped. `config.json` gives each tower's `hidden_act`, heads and `layer_norm_eps`.
 */
import { ClipIqaError } from '../../errors.js';
import { type Tensor, type TensorData, allocateTensorData } from '../../tensor.js';
import type { Activation } from '../architecture.js';
import { StateDict } from '../state-dict.js';
import { type Json, type ModelConfig, type TowerConfig, checkTokenizer, intField, isObject, numberField, unsupported } from './config.js';

/** model_type values of other families, and what they are. */
const OTHER_FAMILIES: Record<string, string> = {
  siglip: 'a SigLIP model (sigmoid loss, its own tokenizer)',
  siglip2: 'a SigLIP 2 model (sigmoid loss, its own tokenizer)',
  chinese_clip: 'a Chinese-CLIP model (a BERT text tower and tokenizer)',
  altclip: 'an AltCLIP model (an XLM-R text tower)',
  clip_vision_model: 'a CLIP image tower alone (CLIPVisionModel): CLIP-IQA needs both towers',
  clip_text_model: 'a CLIP text tower alone (CLIPTextModel): CLIP-IQA needs both towers',
  owlvit: 'an OWL-ViT detector',
  clipseg: 'a CLIPSeg segmentation model',
  x_clip: 'an X-CLIP video model',
  blip: 'a BLIP model',
  metaclip_2: 'a MetaCLIP 2 model (its own tokenizer)',
};

const ACTIVATIONS: Record<string, Activation> = { quick_gelu: 'quick_gelu', gelu: 'gelu' };

function tower(o: Json, source: string, where: string, defaultWidth: number): TowerConfig {
  const act = o.hidden_act ?? 'quick_gelu';
  const activation = typeof act === 'string' ? ACTIVATIONS[act] : undefined;
  if (!activation) throw unsupported(source, `${where}hidden_act is ${JSON.stringify(act)} (supported: quick_gelu, gelu)`);
  const width = intField(o, 'hidden_size', source, where) ?? defaultWidth;
  return {
    activation,
    width,
    heads: intField(o, 'num_attention_heads', source, where) ?? Math.max(1, Math.floor(width / 64)),
    layers: intField(o, 'num_hidden_layers', source, where),
    layerNormEps: numberField(o, 'layer_norm_eps', source, where),
  };
}

/** Reads a transformers `config.json` of a `CLIPModel`; refuses other model types by name. */
export function parseTransformersConfig(json: Json, source: string): ModelConfig {
  const type = json.model_type;
  if (typeof type === 'string' && type !== 'clip') {
    throw unsupported(source, `model_type is "${type}"${OTHER_FAMILIES[type] ? `: ${OTHER_FAMILIES[type]}` : ''}`);
  }
  const archs = Array.isArray(json.architectures) ? json.architectures.filter((a): a is string => typeof a === 'string') : [];
  const other = archs.find((a) => a !== 'CLIPModel');
  if (other) throw unsupported(source, `architectures is ${JSON.stringify(archs)}: ${/Vision|Text/.test(other) ? 'one tower only; CLIP-IQA needs both' : `${other}, not CLIPModel`}`);
  const t = json.text_config;
  const v = json.vision_config;
  if (!isObject(t) || !isObject(v)) {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: a transformers CLIPModel config needs text_config and vision_config objects.`);
  }
  if (v.num_channels !== undefined && v.num_channels !== 3) throw unsupported(source, `vision_config.num_channels is ${JSON.stringify(v.num_channels)}`);
  const contextLength = intField(t, 'max_position_embeddings', source, 'text_config.') ?? 77;
  const vocabSize = intField(t, 'vocab_size', source, 'text_config.') ?? 49408;
  checkTokenizer(source, contextLength, vocabSize);
  return {
    layout: 'transformers',
    source,
    embedDim: intField(json, 'projection_dim', source, ''),
    text: { ...tower(t, source, 'text_config.', 512), contextLength, vocabSize },
    vision: {
      ...tower(v, source, 'vision_config.', 768),
      family: 'vit',
      imageSize: intField(v, 'image_size', source, 'vision_config.'),
      patch: intField(v, 'patch_size', source, 'vision_config.'),
    },
  };
}

/** Whether a state dict is in transformers' CLIP layout. */
export function isTransformersLayout(sd: StateDict): boolean {
  for (const k of sd.keys()) if (k.startsWith('text_model.') || k.startsWith('vision_model.')) return true;
  return false;
}

function concatRows(parts: readonly Tensor[], name: string, source: string): Tensor {
  const [first] = parts;
  if (!first || parts.some((p) => p.dtype !== first.dtype || p.shape.slice(1).join() !== first.shape.slice(1).join())) {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: the q, k and v projections behind "${name}" differ in dtype or shape.`);
  }
  const data = allocateTensorData(first.dtype, parts.reduce((n, p) => n + p.data.length, 0));
  let offset = 0;
  for (const p of parts) {
    (data as Uint8Array).set(p.data as Uint8Array, offset);
    offset += p.data.length;
  }
  return { dtype: first.dtype, shape: [parts.reduce((n, p) => n + p.shape[0]!, 0), ...first.shape.slice(1)], data };
}

function transpose(t: Tensor, name: string, source: string): Tensor {
  if (t.shape.length !== 2) throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: "${name}" has shape [${t.shape.join(', ')}]; a matrix was expected.`);
  const [rows, cols] = t.shape as [number, number];
  const src = t.data as Uint8Array;
  const out = allocateTensorData(t.dtype, t.data.length) as TensorData as Uint8Array;
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c]!;
  return { dtype: t.dtype, shape: [cols, rows], data: out as unknown as TensorData };
}

const BLOCK_RENAMES: readonly [string, string][] = [
  ['self_attn.out_proj.', 'attn.out_proj.'],
  ['layer_norm1.', 'ln_1.'],
  ['layer_norm2.', 'ln_2.'],
  ['mlp.fc1.', 'mlp.c_fc.'],
  ['mlp.fc2.', 'mlp.c_proj.'],
];

const RENAMES: Record<string, string> = {
  'text_model.embeddings.token_embedding.weight': 'token_embedding.weight',
  'text_model.embeddings.position_embedding.weight': 'positional_embedding',
  'text_model.final_layer_norm.weight': 'ln_final.weight',
  'text_model.final_layer_norm.bias': 'ln_final.bias',
  'vision_model.embeddings.class_embedding': 'visual.class_embedding',
  'vision_model.embeddings.patch_embedding.weight': 'visual.conv1.weight',
  'vision_model.embeddings.position_embedding.weight': 'visual.positional_embedding',
  'vision_model.pre_layrnorm.weight': 'visual.ln_pre.weight',
  'vision_model.pre_layrnorm.bias': 'visual.ln_pre.bias',
  'vision_model.post_layernorm.weight': 'visual.ln_post.weight',
  'vision_model.post_layernorm.bias': 'visual.ln_post.bias',
  logit_scale: 'logit_scale',
};

const TRANSPOSED: Record<string, string> = { 'visual_projection.weight': 'visual.proj', 'text_projection.weight': 'text_projection' };

const BLOCK = /^(text_model|vision_model)\.encoder\.layers\.(\d+)\.(.+)$/;

/** A transformers CLIPModel state dict in OpenAI's layout. */
export function fromTransformers(sd: StateDict): StateDict {
  const out = new Map<string, Tensor>();
  const qkv = new Map<string, Partial<Record<'q' | 'k' | 'v', Tensor>>>();
  const unknown: string[] = [];
  for (const [key, t] of sd.entries()) {
    if (key.endsWith('embeddings.position_ids')) continue;
    if (RENAMES[key]) {
      out.set(RENAMES[key], t);
      continue;
    }
    if (TRANSPOSED[key]) {
      out.set(TRANSPOSED[key], transpose(t, key, sd.source));
      continue;
    }
    const m = BLOCK.exec(key);
    if (!m) {
      unknown.push(key);
      continue;
    }
    const prefix = `${m[1] === 'text_model' ? '' : 'visual.'}transformer.resblocks.${m[2]}.`;
    const rest = m[3]!;
    const proj = /^self_attn\.([qkv])_proj\.(weight|bias)$/.exec(rest);
    if (proj) {
      const target = `${prefix}attn.in_proj_${proj[2]}`;
      const parts = qkv.get(target) ?? {};
      parts[proj[1] as 'q' | 'k' | 'v'] = t;
      qkv.set(target, parts);
      continue;
    }
    const rename = BLOCK_RENAMES.find(([from]) => rest.startsWith(from));
    if (rename) out.set(`${prefix}${rename[1]}${rest.slice(rename[0].length)}`, t);
    else unknown.push(key);
  }
  if (unknown.length > 0) {
    const shown = unknown.slice(0, 5).join(', ');
    throw unsupported(sd.source, `tensors that a transformers CLIPModel does not have (${shown}${unknown.length > 5 ? `, … ${unknown.length} in all` : ''})`);
  }
  for (const [target, parts] of qkv) {
    if (!parts.q || !parts.k || !parts.v) {
      throw new ClipIqaError('E_WEIGHTS_MISSING', `${sd.source}: "${target}" needs the q, k and v projections; the checkpoint lacks ${['q', 'k', 'v'].filter((p) => !parts[p as 'q']).join(', ')}.`);
    }
    out.set(target, concatRows([parts.q, parts.k, parts.v], target, sd.source));
  }
  return new StateDict(sd.source, out, { ...sd.metadata, layout: 'transformers' });
}
