/** The publishers' file names for weights and configs (no I/O: the browser build uses them too). */

/**
 * Weight files in the order a user expects them to be picked: open_clip's own file first (timm's repos of
 * OpenAI's models also hold a vision-only `model.safetensors` in timm's layout, which must not win), then
 * transformers', each as safetensors (no pickle) before its torch.save counterpart.
 */
export const WEIGHT_FILES = ['open_clip_model.safetensors', 'model.safetensors', 'open_clip_pytorch_model.bin', 'pytorch_model.bin'] as const;

export const OPEN_CLIP_CONFIG = 'open_clip_config.json';
export const TRANSFORMERS_CONFIG = 'config.json';

/**
 * The config file that describes a weights file, by the publishers' naming: `open_clip_*` weights have
 * `open_clip_config.json` beside them, transformers' `model*.safetensors` / `pytorch_model*.bin` have
 * `config.json`. Other names (OpenAI's `RN50.pt`, a training script's `epoch_32.pt`) have none.
 */
export function configFileFor(weightsName: string): string | null {
  if (weightsName.startsWith('open_clip_')) return OPEN_CLIP_CONFIG;
  if (/^(model|pytorch_model)([-.].*)?\.(safetensors|bin)$/.test(weightsName)) return TRANSFORMERS_CONFIG;
  return null;
}
