/**
 * TorchScript archives (`torch.jit.save`), the format of OpenAI's published CLIP files (RN50.pt, ViT-B-32.pt, …).
 *
 * The archive is a torch.save-style zip whose `data.pkl` pickles the module tree: each module is an object
 * of a `__torch__.*` class (names of the exporter's choosing, often mangled: `___torch_mangle_12`) whose
 * attributes arrive through BUILD as a dict — parameters and buffers as tensors, submodules as further
 * objects, plus non-tensor attributes such as `training`. `code/` holds the compiled methods and
 * `constants.pkl` the tensors baked into them; neither carries weights, so neither is read.
 * Walking the tree and joining attribute names gives the module's `state_dict()` names.
 */
import { ClipIqaError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { TorchScriptObject, TorchTensor, isArray, isPlaceholder, placeholderClass, placeholderRefusal } from './pickle.js';
import { StateDict } from './state-dict.js';

/** Real module trees are a few dozen levels deep at most; deeper means corrupt or hostile input. */
const MAX_DEPTH = 200;

/**
 * The tensors of a TorchScript module tree under OpenAI-style dotted names (`visual.layer1.0.conv1.weight`,
 * `transformer.resblocks.0.attn.in_proj_weight`, `logit_scale`, `input_resolution`, …). Tensors keep their
 * stored dtype (float16 stays float16). Tensor attributes that are no parameter or buffer (a block's
 * `attn_mask`) are included too, harmlessly; a list of tensors gives `name.0`, `name.1`, …
 */
export function torchScriptStateDict(root: TorchScriptObject, source: string, archiveName = ''): StateDict {
  const out = new Map<string, Tensor>();
  // Each module is walked once: a module cannot contain itself, and a pickle whose modules share submodules
  // along many paths (2^depth of them) would otherwise take exponential time. A module reached again adds no names.
  const walked = new Set<TorchScriptObject>();
  const walk = (module: TorchScriptObject, prefix: string, depth: number): void => {
    if (walked.has(module)) return;
    if (depth > MAX_DEPTH) {
      throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: TorchScript modules nested more than ${MAX_DEPTH} deep (at "${prefix}"); the archive is corrupt.`);
    }
    walked.add(module);
    for (const [name, value] of module.attributes) {
      const path = prefix + name;
      if (value instanceof TorchTensor) out.set(path, value);
      else if (value instanceof TorchScriptObject) walk(value, `${path}.`, depth + 1);
      else if (isArray(value)) value.forEach((v, i) => v instanceof TorchTensor && out.set(`${path}.${i}`, v));
      else if (isPlaceholder(value)) throw placeholderRefusal(source, placeholderClass(value), `as the module attribute "${path}"`);
    }
  };
  walk(root, '', 0);
  return new StateDict(source, out, { format: 'torchscript', class: root.className, ...(archiveName ? { archive: archiveName } : {}) });
}
