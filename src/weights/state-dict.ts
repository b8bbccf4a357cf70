import { ClipIqaError } from '../errors.js';
import { type Tensor, toFloat32 } from '../tensor.js';

/**
 * Named tensors of a checkpoint, flattened to dotted OpenAI-layout names
 * (`visual.layer1.0.conv1.weight`, `transformer.resblocks.0.attn.in_proj_weight`, …).
 * A missing name is an error that says which checkpoint lacks what.
 */
export class StateDict {
  readonly source: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly #tensors: Map<string, Tensor>;

  constructor(source: string, tensors: Map<string, Tensor>, metadata: Record<string, string> = {}) {
    this.source = source;
    this.#tensors = tensors;
    this.metadata = metadata;
  }

  get size(): number {
    return this.#tensors.size;
  }

  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  keys(): IterableIterator<string> {
    return this.#tensors.keys();
  }

  entries(): IterableIterator<[string, Tensor]> {
    return this.#tensors.entries();
  }

  get(name: string): Tensor {
    const t = this.#tensors.get(name);
    if (!t) {
      throw new ClipIqaError(
        'E_WEIGHTS_MISSING',
        `${this.source}: the checkpoint has no tensor "${name}". ` +
          'It may be truncated, or not a CLIP checkpoint in the OpenAI layout (as RN50.pt, ViT-B-32.pt or their safetensors copies are).',
      );
    }
    return t;
  }

  /** The tensor's values as float32 (float16 and bfloat16 widened exactly). */
  float32(name: string): Float32Array {
    return toFloat32(this.get(name));
  }

  shape(name: string): readonly number[] {
    return this.get(name).shape;
  }

  /** A view holding only the names under `prefix.`, with the prefix removed. */
  under(prefix: string): StateDict {
    const p = prefix.endsWith('.') ? prefix : `${prefix}.`;
    const out = new Map<string, Tensor>();
    for (const [k, v] of this.#tensors) if (k.startsWith(p)) out.set(k.slice(p.length), v);
    return new StateDict(`${this.source} [${prefix}]`, out, { ...this.metadata });
  }
}
