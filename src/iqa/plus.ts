/**
 * CLIP-IQA+: the hand-written words of the antonym pair are replaced by a learned 16-token context
 * (CoOp), trained on KonIQ. This module reads such a context from the files it ships in and builds the
 * prompts' token-embedding sequences exactly as the official PromptLearner does.
 */
import { ClipIqaError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { toFloat32 } from '../tensor.js';
import type { Tokenizer } from '../text/tokenizer.js';
import { type PickleValue, TorchTensor, isPickleDict } from '../weights/pickle.js';
import { readCheckpointFile } from '../weights/limits.js';
import { loadPickledObject, sniffCheckpointFormat } from '../weights/load.js';
import { readSafetensors } from '../weights/safetensors.js';

/** A learned context: `prompts` = 1 when one context is shared by both prompts, else one per prompt. */
export interface LearnedContext {
  readonly source: string;
  /** The key the context was found under, or `<tensor>` for a bare tensor file. */
  readonly key: string;
  readonly prompts: number;
  readonly tokens: number;
  readonly width: number;
  /** (prompts, tokens, width), row-major float32. */
  readonly data: Float32Array;
}

/** The key under which the CLIP-IQA+ score is reported. */
export const PLUS = 'clipiqa+';

/** The class names the published contexts were trained with (official config, pyiqa). */
export const PLUS_CLASSNAMES: readonly [string, string] = ['Good photo.', 'Bad photo.'];

const CONTEXT_SUFFIX = 'prompt_learner.ctx';

function fromTensor(t: Tensor, source: string, key: string): LearnedContext {
  const shape = t.shape;
  if (shape.length !== 2 && shape.length !== 3) {
    throw new ClipIqaError(
      'E_CONTEXT',
      `${source}: the context "${key}" has shape [${shape.join(', ')}]; a CLIP-IQA+ context is (tokens, width) or (prompts, tokens, width).`,
    );
  }
  const [prompts, tokens, width] = shape.length === 2 ? [1, shape[0]!, shape[1]!] : [shape[0]!, shape[1]!, shape[2]!];
  return { source, key, prompts, tokens, width, data: Float32Array.from(toFloat32(t)) };
}

/**
 * Depth-first search for `…prompt_learner.ctx` in nested dicts (MMEditing `state_dict`, pyiqa `params`). Each
 * dict is searched once and only a few levels deep: a hostile pickle can nest or share dicts without end.
 */
function findContext(value: PickleValue, path: string, seen = new Set<object>(), depth = 0): [string, TorchTensor] | undefined {
  if (!isPickleDict(value) || seen.has(value) || depth > 16) return undefined;
  seen.add(value);
  for (const [k, v] of value) {
    const key = path ? `${path}.${String(k)}` : String(k);
    if (v instanceof TorchTensor && (key === CONTEXT_SUFFIX || key.endsWith(`.${CONTEXT_SUFFIX}`) || key === 'ctx')) return [key, v];
  }
  for (const [k, v] of value) {
    const found = findContext(v, path ? `${path}.${String(k)}` : String(k), seen, depth + 1);
    if (found) return found;
  }
  return undefined;
}

/**
 * Reads a learned context from a bare tensor file (pyiqa's `CLIP-IQA+_learned_prompts-*.pth`), an
 * MMEditing checkpoint (the official `iter_80000.pth`: `state_dict` → `generator.clipmodel_0.prompt_learner.ctx`),
 * a pyiqa checkpoint (`params` → `prompt_learner.ctx`), or a safetensors file holding such a key.
 */
export async function loadLearnedContext(pathOrBytes: string | Uint8Array, source?: string): Promise<LearnedContext> {
  const name = source ?? (typeof pathOrBytes === 'string' ? pathOrBytes : 'CLIP-IQA+ context');
  let bytes: Uint8Array;
  try {
    bytes = typeof pathOrBytes === 'string' ? await readCheckpointFile(pathOrBytes) : pathOrBytes;
  } catch (e) {
    if (e instanceof ClipIqaError && e.code !== 'E_NOT_FOUND') throw e;
    throw new ClipIqaError('E_NOT_FOUND', `${name}: cannot read the CLIP-IQA+ context file (${(e as Error).message}).`, { cause: e });
  }
  if (sniffCheckpointFormat(bytes) === 'safetensors') {
    const sd = readSafetensors(bytes, name);
    const keys = [...sd.keys()];
    const key = keys.find((k) => k === CONTEXT_SUFFIX || k.endsWith(`.${CONTEXT_SUFFIX}`)) ?? (keys.length === 1 ? keys[0] : undefined);
    if (!key) throw missing(name, `tensors ${keys.slice(0, 5).join(', ')}${keys.length > 5 ? ', …' : ''}`);
    return fromTensor(sd.get(key), name, key);
  }
  const root = await loadPickledObject(bytes, { source: name });
  if (root instanceof TorchTensor) return fromTensor(root, name, '<tensor>');
  const found = findContext(root, '');
  if (!found) throw missing(name, isPickleDict(root) ? `keys ${[...root.keys()].slice(0, 5).map(String).join(', ')}` : 'no dict');
  return fromTensor(found[1], name, found[0]);
}

function missing(source: string, what: string): ClipIqaError {
  return new ClipIqaError(
    'E_CONTEXT',
    `${source}: no CLIP-IQA+ context found (${what}). Expected a bare (16, width) tensor, or a checkpoint with a ` +
      `"…${CONTEXT_SUFFIX}" tensor, such as the official iter_80000.pth or pyiqa's CLIP-IQA+ weights.`,
  );
}

/** Token-embedding sequences of the learned prompts, ready for the text tower's embedding entry. */
export interface LearnedPrompts {
  readonly classnames: readonly string[];
  /** (prompts, contextLength, width) float32. */
  readonly embeddings: Float32Array;
  /** The EOT position of each prompt: where the text tower pools. */
  readonly eot: readonly number[];
}

/**
 * Builds each prompt as the official PromptLearner with class_token_position 'middle': the text
 * `"X X … X <classname>."` is tokenized (note the extra '.', which makes "Good photo.." end in the `..` token),
 * its embeddings looked up, and the sequence rearranged to SOT, ctx[0:n/2], class tokens, ctx[n/2:], rest.
 */
export function buildLearnedPrompts(
  context: LearnedContext,
  tokenizer: Tokenizer,
  tokenEmbeddings: (ids: readonly number[]) => Float32Array,
  textWidth: number,
  classnames: readonly string[] = PLUS_CLASSNAMES,
): LearnedPrompts {
  if (context.width !== textWidth) {
    throw new ClipIqaError(
      'E_CONTEXT',
      `${context.source}: the context is ${context.width} wide, but this model's text tower is ${textWidth} wide; ` +
        'it was learned for another CLIP model (the official CLIP-IQA+ context belongs to RN50).',
    );
  }
  if (context.prompts !== 1 && context.prompts !== classnames.length) {
    throw new ClipIqaError(
      'E_CONTEXT',
      `${context.source}: the context holds ${context.prompts} prompt contexts for ${classnames.length} class names.`,
    );
  }
  const n = context.tokens;
  const half = Math.floor(n / 2);
  const L = tokenizer.contextLength;
  const width = textWidth;
  const out = new Float32Array(classnames.length * L * width);
  const eot: number[] = [];
  classnames.forEach((classname, p) => {
    const ids = tokenizer.tokenize(`${Array(n).fill('X').join(' ')} ${classname}.`);
    const emb = tokenEmbeddings(ids);
    const nameLength = tokenizer.encode(classname).length;
    const ctx = context.data.subarray((context.prompts === 1 ? 0 : p) * n * width, ((context.prompts === 1 ? 0 : p) + 1) * n * width);
    const row = (i: number) => emb.subarray(i * width, (i + 1) * width);
    const suffix = 1 + n; // first token after the X slots: the class name
    const sequence: Float32Array[] = [row(0)];
    for (let i = 0; i < half; i++) sequence.push(ctx.subarray(i * width, (i + 1) * width));
    for (let i = 0; i < nameLength; i++) sequence.push(row(suffix + i));
    for (let i = half; i < n; i++) sequence.push(ctx.subarray(i * width, (i + 1) * width));
    for (let i = suffix + nameLength; i < L; i++) sequence.push(row(i));
    sequence.forEach((r, i) => out.set(r, (p * L + i) * width));
    eot.push(ids.indexOf(Math.max(...ids)));
  });
  return { classnames, embeddings: out, eot };
}
