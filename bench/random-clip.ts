import { type Tensor, float32Tensor, floatToHalf } from '../src/tensor.js';
import { StateDict } from '../src/weights/state-dict.js';

/**
 * OpenAI-layout CLIP state dicts of real shapes with random values, for timing (speed does not depend on the
 * values). Names, shapes and value scales follow ref/make_fixtures.py's random_state_dict; configs are
 * ref/bench_torch.py's.
 */

export interface RandomClipConfig {
  readonly kind: 'rn' | 'vit';
  readonly embedDim: number;
  readonly width: number;
  /** ResNet blocks per stage. */
  readonly layers?: readonly number[];
  /** ViT patch size and depth. */
  readonly patch?: number;
  readonly visionLayers?: number;
  readonly resolution: number;
  readonly textWidth: number;
  readonly textLayers: number;
}

export const CONFIGS = {
  rn50: { kind: 'rn', embedDim: 1024, width: 64, layers: [3, 4, 6, 3], resolution: 224, textWidth: 512, textLayers: 12 },
  vitb32: { kind: 'vit', embedDim: 512, width: 768, patch: 32, visionLayers: 12, resolution: 224, textWidth: 512, textLayers: 12 },
} as const satisfies Record<string, RandomClipConfig>;

/** xorshift32 → standard normals by Box–Muller: fast and reproducible. */
function normals(seed: number): (n: number, std: number) => Float32Array {
  let s = seed >>> 0 || 1;
  const uniform = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) + 0.5) / 4294967296;
  };
  return (n, std) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const r = Math.sqrt(-2 * Math.log(uniform())) * std;
      const t = 2 * Math.PI * uniform();
      out[i] = r * Math.cos(t);
      if (i + 1 < n) out[i + 1] = r * Math.sin(t);
    }
    return out;
  };
}

export function randomClip(cfg: RandomClipConfig, seed = 1, logitScale = 100): StateDict {
  const randn = normals(seed);
  const tensors = new Map<string, Tensor>();
  const put = (name: string, shape: number[], data: Float32Array) => tensors.set(name, float32Tensor(shape, data));
  const rnd = (name: string, shape: number[], std: number) => put(name, shape, randn(shape.reduce((a, b) => a * b, 1), std));
  const around = (name: string, c: number, base: number, std: number) => put(name, [c], randn(c, std).map((v) => base + v));

  const bn = (p: string, c: number) => {
    around(`${p}.weight`, c, 1, 0.15);
    rnd(`${p}.bias`, [c], 0.1);
    rnd(`${p}.running_mean`, [c], 0.1);
    around(`${p}.running_var`, c, 1, 0.15);
    tensors.set(`${p}.num_batches_tracked`, { dtype: 'int64', shape: [], data: new BigInt64Array(1) });
  };
  const conv = (p: string, cout: number, cin: number, k: number) => rnd(`${p}.weight`, [cout, cin, k, k], Math.sqrt(2 / (cin * k * k)));
  const linear = (p: string, cout: number, cin: number) => {
    rnd(`${p}.weight`, [cout, cin], cin ** -0.5);
    rnd(`${p}.bias`, [cout], 0.02);
  };
  const block = (p: string, d: number) => {
    rnd(`${p}.attn.in_proj_weight`, [3 * d, d], d ** -0.5);
    rnd(`${p}.attn.in_proj_bias`, [3 * d], 0.02);
    linear(`${p}.attn.out_proj`, d, d);
    around(`${p}.ln_1.weight`, d, 1, 0.1);
    rnd(`${p}.ln_1.bias`, [d], 0.1);
    linear(`${p}.mlp.c_fc`, 4 * d, d);
    linear(`${p}.mlp.c_proj`, d, 4 * d);
    around(`${p}.ln_2.weight`, d, 1, 0.1);
    rnd(`${p}.ln_2.bias`, [d], 0.1);
  };

  const embed = cfg.embedDim;
  if (cfg.kind === 'rn') {
    const w = cfg.width;
    conv('visual.conv1', w / 2, 3, 3);
    bn('visual.bn1', w / 2);
    conv('visual.conv2', w / 2, w / 2, 3);
    bn('visual.bn2', w / 2);
    conv('visual.conv3', w, w / 2, 3);
    bn('visual.bn3', w);
    let inplanes = w;
    (cfg.layers ?? []).forEach((count, s) => {
      const planes = w * 2 ** s;
      for (let b = 0; b < count; b++) {
        const p = `visual.layer${s + 1}.${b}`;
        conv(`${p}.conv1`, planes, inplanes, 1);
        bn(`${p}.bn1`, planes);
        conv(`${p}.conv2`, planes, planes, 3);
        bn(`${p}.bn2`, planes);
        conv(`${p}.conv3`, planes * 4, planes, 1);
        bn(`${p}.bn3`, planes * 4);
        if ((s > 0 && b === 0) || inplanes !== planes * 4) {
          conv(`${p}.downsample.0`, planes * 4, inplanes, 1);
          bn(`${p}.downsample.1`, planes * 4);
        }
        inplanes = planes * 4;
      }
    });
    const c = w * 32;
    const grid = cfg.resolution / 32;
    rnd('visual.attnpool.positional_embedding', [grid * grid + 1, c], c ** -0.5);
    for (const n of ['k_proj', 'q_proj', 'v_proj']) linear(`visual.attnpool.${n}`, c, c);
    linear('visual.attnpool.c_proj', embed, c);
  } else {
    const w = cfg.width;
    const patch = cfg.patch!;
    const grid = cfg.resolution / patch;
    rnd('visual.class_embedding', [w], w ** -0.5);
    rnd('visual.positional_embedding', [grid * grid + 1, w], w ** -0.5);
    rnd('visual.proj', [w, embed], w ** -0.5);
    rnd('visual.conv1.weight', [w, 3, patch, patch], (3 * patch * patch) ** -0.5);
    around('visual.ln_pre.weight', w, 1, 0.1);
    rnd('visual.ln_pre.bias', [w], 0.1);
    for (let i = 0; i < cfg.visionLayers!; i++) block(`visual.transformer.resblocks.${i}`, w);
    around('visual.ln_post.weight', w, 1, 0.1);
    rnd('visual.ln_post.bias', [w], 0.1);
  }
  const t = cfg.textWidth;
  rnd('positional_embedding', [77, t], 0.01);
  rnd('text_projection', [t, embed], t ** -0.5);
  put('logit_scale', [], Float32Array.of(Math.log(logitScale)));
  rnd('token_embedding.weight', [49408, t], 0.02);
  for (let i = 0; i < cfg.textLayers; i++) block(`transformer.resblocks.${i}`, t);
  around('ln_final.weight', t, 1, 0.1);
  rnd('ln_final.bias', [t], 0.1);
  return new StateDict(`random ${cfg.kind}`, tensors);
}

/**
 * The state dict as a safetensors file, so that the real CLI can load it like a download. Float tensors are stored
 * as float16 by default, as OpenAI's published checkpoints hold their weights (the reader widens them exactly);
 * `F32` keeps them as they are.
 */
export function toSafetensors(sd: StateDict, float: 'F16' | 'F32' = 'F16'): Uint8Array {
  const header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> = {};
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of sd.entries()) {
    let bytes: Uint8Array;
    let dtype: string;
    if (t.dtype === 'float32' && float === 'F16') {
      const src = t.data as Float32Array;
      const half = new Uint16Array(src.length);
      for (let i = 0; i < src.length; i++) half[i] = floatToHalf(src[i]!);
      bytes = new Uint8Array(half.buffer);
      dtype = 'F16';
    } else if (t.dtype === 'float32' || t.dtype === 'int64') {
      bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      dtype = t.dtype === 'float32' ? 'F32' : 'I64';
    } else {
      throw new Error(`toSafetensors: ${name} has dtype ${t.dtype}`);
    }
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8); // data starts 8-byte aligned
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
