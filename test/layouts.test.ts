/**
 * Reading open_clip and transformers configs, and refusing clearly — naming what was found and what is supported —
 * every model that is not CLIP as clip-iqa computes it: SigLIP, CoCa, timm or Hugging Face towers, custom text
 * towers, CLIPA, other tokenizers, transformers weights without their config, a config that belongs to other weights.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqaError } from '../src/errors.js';
import type { Tensor } from '../src/tensor.js';
import { configFileFor } from '../src/weights/files.js';
import { parseOpenClipConfig } from '../src/weights/layouts/open-clip.js';
import { parseTransformersConfig } from '../src/weights/layouts/transformers.js';
import { loadClipModel, readModelConfig } from '../src/weights/layout.js';
import { loadSafetensors } from '../src/weights/safetensors.js';
import { StateDict } from '../src/weights/state-dict.js';
import { fixture } from './helpers/shared.js';

const SUPPORTED = /clip-iqa runs CLIP models: .*QuickGELU or GELU, CLIP's BPE tokenizer \(77 tokens, 49,408 ids\)/;

function refused(f: () => unknown): ClipIqaError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ClipIqaError);
    return e as ClipIqaError;
  }
  throw new Error('expected a refusal');
}

const laion = (over: Record<string, unknown> = {}, vision: Record<string, unknown> = {}, text: Record<string, unknown> = {}) => ({
  model_cfg: {
    embed_dim: 512,
    vision_cfg: { image_size: 224, layers: 12, width: 768, patch_size: 32, ...vision },
    text_cfg: { context_length: 77, vocab_size: 49408, width: 512, heads: 8, layers: 12, ...text },
    ...over,
  },
  preprocess_cfg: { mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711] },
});

describe('open_clip configs', () => {
  it('reads the activation (quick_gelu → QuickGELU, absent → GELU), heads, epsilon and pixel statistics', () => {
    expect(parseOpenClipConfig(laion(), 'c')).toMatchObject({ layout: 'open_clip', embedDim: 512, text: { activation: 'gelu', heads: 8 }, vision: { activation: 'gelu', heads: 12, family: 'vit' } });
    expect(parseOpenClipConfig(laion({ quick_gelu: true }), 'c').text.activation).toBe('quick_gelu');
    // ViT-H-14: 80-channel heads.
    expect(parseOpenClipConfig(laion({}, { width: 1280, head_width: 80 }), 'c').vision.heads).toBe(16);
    expect(parseOpenClipConfig(laion({}, { norm_kwargs: { eps: 1e-6 } }), 'c').vision.layerNormEps).toBe(1e-6);
    expect(parseOpenClipConfig({ ...laion(), preprocess_cfg: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } }, 'c').normalization).toEqual({ mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    expect(parseOpenClipConfig(laion(), 'c').normalization).toBeUndefined();
    // A bare model config, as open_clip accepts; harmless settings at their defaults.
    expect(parseOpenClipConfig({ ...laion().model_cfg, cast_dtype: 'fp16' }, 'c').layout).toBe('open_clip');
    expect(parseOpenClipConfig(laion({ custom_text: false }, { ls_init_value: null, pool_type: 'tok' }, { hf_tokenizer_name: 'openai/clip-vit-large-patch14' }), 'c').layout).toBe('open_clip');
    // RN: layers is a list; heads follow open_clip's width·32/head_width.
    expect(parseOpenClipConfig(laion({}, { layers: [3, 4, 6, 3], width: 64, patch_size: null }), 'c').vision).toMatchObject({ family: 'resnet', heads: 32 });
  });

  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['SigLIP', laion({ custom_text: true, init_logit_bias: -10 }), /model_cfg\.custom_text is true: a custom text tower/],
    ['SigLIP (bias)', laion({ init_logit_bias: -10 }), /init_logit_bias is -10: a sigmoid-loss model \(SigLIP\)/],
    ['CoCa', laion({ multimodal_cfg: { width: 512 } }), /multimodal_cfg .*: a CoCa captioning model/],
    ['ConvNeXt', laion({}, { timm_model_name: 'convnext_base' }), /vision_cfg\.timm_model_name is "convnext_base": a timm image tower/],
    ['an HF text tower', laion({}, {}, { hf_model_name: 'xlm-roberta-base' }), /text_cfg\.hf_model_name is "xlm-roberta-base": a Hugging Face text tower/],
    ['CLIPA', laion({}, { no_ln_pre: true }), /vision_cfg\.no_ln_pre is true: a CLIPA image tower/],
    ['CLIPA pooling', laion({}, { pool_type: 'avg' }), /vision_cfg\.pool_type is "avg"/],
    ['CoCa pool', laion({}, { attentional_pool: true }), /attentional_pool is true: CoCa's attentional pool/],
    ['SigLIP text', laion({}, {}, { no_causal_mask: true, pool_type: 'last' }), /text_cfg\.no_causal_mask is true: bidirectional text attention/],
    ['another tokenizer', laion({}, {}, { hf_tokenizer_name: 'timm/ViT-SO400M-14-SigLIP' }), /hf_tokenizer_name is "timm\/ViT-SO400M-14-SigLIP": another tokenizer/],
    ['CLIPA tokenizer', laion({}, {}, { context_length: 32, vocab_size: 32000 }), /takes 32 tokens from a vocabulary of 32000 ids \(another tokenizer than CLIP's\)/],
    ['an unknown flag', laion({ shiny_new_thing: 1 }), /model_cfg\.shiny_new_thing is 1, a setting of open_clip this reader does not know/],
  ];
  for (const [what, config, message] of cases) {
    it(`refuses ${what}, naming the setting and what is supported`, () => {
      const e = refused(() => parseOpenClipConfig(config, '/m/open_clip_config.json'));
      expect(e.code).toBe('E_ARCHITECTURE');
      expect(e.message).toMatch(/^\/m\/open_clip_config\.json: /);
      expect(e.message).toMatch(message);
      expect(e.message).toMatch(SUPPORTED);
    });
  }
});

describe('transformers configs', () => {
  const clip = (over: Record<string, unknown> = {}, text: Record<string, unknown> = {}) => ({
    architectures: ['CLIPModel'],
    model_type: 'clip',
    projection_dim: 512,
    text_config: { hidden_size: 512, num_attention_heads: 8, num_hidden_layers: 12, hidden_act: 'quick_gelu', vocab_size: 49408, max_position_embeddings: 77, ...text },
    vision_config: { hidden_size: 768, num_attention_heads: 12, num_hidden_layers: 12, hidden_act: 'gelu', image_size: 224, patch_size: 32, layer_norm_eps: 1e-6 },
    ...over,
  });

  it('reads each tower’s activation, heads and epsilon', () => {
    expect(parseTransformersConfig(clip(), 'c')).toMatchObject({
      layout: 'transformers',
      embedDim: 512,
      text: { activation: 'quick_gelu', heads: 8, width: 512 },
      vision: { activation: 'gelu', heads: 12, layerNormEps: 1e-6, imageSize: 224, patch: 32 },
    });
  });

  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['SigLIP', clip({ model_type: 'siglip' }), /model_type is "siglip": a SigLIP model/],
    ['one tower', clip({ architectures: ['CLIPVisionModelWithProjection'] }), /one tower only; CLIP-IQA needs both/],
    ['another activation', clip({}, { hidden_act: 'gelu_new' }), /text_config\.hidden_act is "gelu_new" \(supported: quick_gelu, gelu\)/],
    ['another tokenizer', clip({}, { vocab_size: 250002 }), /vocabulary of 250002 ids/],
  ];
  for (const [what, config, message] of cases) {
    it(`refuses ${what}`, () => {
      const e = refused(() => parseTransformersConfig(config, 'config.json'));
      expect(e.message).toMatch(message);
      expect(e.message).toMatch(SUPPORTED);
    });
  }
});

describe('weights that are not CLIP', () => {
  const t: Tensor = { dtype: 'float32', shape: [1], data: new Float32Array(1) };
  const sd = (...keys: string[]) => new StateDict('/m/w.safetensors', new Map(keys.map((k) => [k, t])));
  const cases: [string, string[], RegExp][] = [
    ['a custom text tower', ['text.transformer.resblocks.0.ln_1.weight', 'visual.proj'], /custom text tower \(keys under "text\."/],
    ['a timm image tower', ['visual.trunk.stem.0.weight', 'token_embedding.weight'], /a timm image tower \(keys under "visual\.trunk\."/],
    ['SigLIP', ['logit_bias', 'logit_scale'], /logit_bias: SigLIP/],
    ['CoCa', ['visual.attn_pool.query'], /CoCa's attentional pool/],
    ['LayerScale', ['transformer.resblocks.0.ls_1.gamma'], /LayerScale/],
    ["timm's own file of an OpenAI repository", ['blocks.0.attn.qkv.weight', 'patch_embed.proj.weight'], /timm image model \(vision only.*open_clip_model\.safetensors is the CLIP model/],
    ['CLIPA (no ln_pre)', ['visual.proj', 'visual.conv1.weight'], /without ln_pre \(CLIPA\)/],
  ];
  for (const [what, keys, message] of cases) {
    it(`refuses ${what}`, async () => {
      const e = await loadClipModel({ weights: sd(...keys) }).then(
        () => undefined,
        (err: unknown) => err as ClipIqaError,
      );
      expect(e?.code).toBe('E_ARCHITECTURE');
      expect(e?.message).toMatch(/^\/m\/w\.safetensors: the checkpoint holds /);
      expect(e?.message).toMatch(message);
    });
  }
});

describe('configs beside weights', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'layouts-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('goes by the publishers’ names', () => {
    expect(configFileFor('open_clip_model.safetensors')).toBe('open_clip_config.json');
    expect(configFileFor('open_clip_pytorch_model.bin')).toBe('open_clip_config.json');
    expect(configFileFor('model.safetensors')).toBe('config.json');
    expect(configFileFor('pytorch_model.bin')).toBe('config.json');
    expect(configFileFor('RN50.pt')).toBeNull();
  });

  it('needs the config of transformers weights, and refuses one that belongs to other weights', async () => {
    const hf = await loadSafetensors(fixture('formats', 'hf-vit', 'model.safetensors'));
    await expect(loadClipModel({ weights: hf })).rejects.toMatchObject({ code: 'E_WEIGHTS_FORMAT', message: /need their config\.json/ });
    const wrong = join(dir, 'config.json');
    const config = JSON.parse(await (await import('node:fs/promises')).readFile(fixture('formats', 'hf-vit', 'config.json'), 'utf8'));
    config.vision_config.num_hidden_layers = 12;
    await writeFile(wrong, JSON.stringify(config));
    await expect(loadClipModel({ weights: hf, config: wrong })).rejects.toMatchObject({ code: 'E_ARCHITECTURE', message: /gives the image layers 12, but the weights have 2; the config belongs to another model/ });
    const rn = await loadSafetensors(fixture('tiny-rn', 'model.safetensors'));
    await expect(loadClipModel({ weights: rn, config: fixture('formats', 'hf-vit', 'config.json') })).rejects.toMatchObject({ message: /describes a transformers CLIPModel/ });
  });

  it('rejects a config that is not one, or far too large', async () => {
    const p = join(dir, 'open_clip_config.json');
    await writeFile(p, '{"model_cfg": ');
    await expect(readModelConfig(p)).rejects.toMatchObject({ code: 'E_WEIGHTS_FORMAT', message: /not valid JSON/ });
    await writeFile(p, '{"hello": 1}');
    await expect(readModelConfig(p)).rejects.toMatchObject({ message: /neither an open_clip config .* nor a transformers config/ });
    await writeFile(p, `{"pad": "${'x'.repeat(2 << 20)}"}`);
    await expect(readModelConfig(p)).rejects.toMatchObject({ message: /far too large for a model config/ });
  });

  it('the activation matters: the GELU model read without its config (as QuickGELU) is far from the reference', async () => {
    const sd = await loadSafetensors(fixture('formats', 'openclip-vit-gelu', 'open_clip_model.safetensors'));
    const read = await loadClipModel({ weights: sd, config: fixture('formats', 'openclip-vit-gelu', 'open_clip_config.json') });
    const guessed = await loadClipModel({ weights: sd });
    expect(read.architecture.text.activation).toBe('gelu');
    expect(guessed.architecture.text.activation).toBe('quick_gelu');
    const { ClipIqa } = await import('../src/api.js');
    const { VOCAB } = await import('./helpers/shared.js');
    const image = fixture('images', 'img0-64x64-rgb.png');
    const [a, b] = await Promise.all([
      ClipIqa.load({ model: fixture('formats', 'openclip-vit-gelu'), vocab: VOCAB, featureCache: false }),
      ClipIqa.load({ model: sd, vocab: VOCAB, featureCache: false }),
    ]);
    try {
      const expected = await loadSafetensors(fixture('formats', 'openclip-vit-gelu', 'expected.safetensors'));
      const { deviation } = await import('./helpers/shared.js');
      const want = expected.float32('fp32/image/img0-64x64-rgb.png/none');
      const right = deviation(await a.embedImage(image), want);
      const wrong = deviation(await b.embedImage(image), want);
      expect(right.maxDiff / right.maxRef).toBeLessThanOrEqual(2e-4);
      // The parity tolerance (max |Δ| ≤ 2e-4·max|expected|) is missed many times over with the wrong activation
      // (about 13× on the repository's narrow GELU fixture, 20× and more on the shared one).
      expect(wrong.maxDiff / wrong.maxRef).toBeGreaterThan(10 * 2e-4);
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });
});

describe('files beyond what fs.readFile reads at once', () => {
  it('are read whole in chunks (ViT-H-14 is a 3.9 GB file)', async () => {
    const { readRegularFile } = await import('../src/util/read-file.js');
    const path = fixture('tiny-rn', 'model.safetensors');
    const whole = await (await import('node:fs/promises')).readFile(path);
    // Chunks of 64 KiB stand for chunks of 1 GiB.
    const read = await readRegularFile(path, { maxBytes: 1 << 30, code: 'E_WEIGHTS_FORMAT', what: 'a checkpoint', raise: 'n/a', chunkBytes: 1 << 16 });
    expect(whole.length).toBeGreaterThan(1 << 16);
    expect(read.equals(whole)).toBe(true);
  });
});
