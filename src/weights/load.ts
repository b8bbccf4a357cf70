/**
 * One entry point for CLIP checkpoints in any of the formats users have: safetensors, torch.save zip
 * archives (`.pt`, `.pth`, `.bin`), OpenAI's TorchScript archives, and legacy (pre-1.6) torch.save files.
 * The format is sniffed from the content, never from the file name.
 */
import { ClipIqaError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { type ReadLimits, readCheckpointFile, resolveReadLimits } from './limits.js';
import {
  type PickleDict,
  type PickleValue,
  TorchScriptObject,
  TorchTensor,
  describeValue,
  isPlaceholder,
  placeholderClass,
  placeholderRefusal,
} from './pickle.js';
import { isSafetensors, readSafetensors } from './safetensors.js';
import { StateDict } from './state-dict.js';
import { type TorchArchive, isLegacyTorchSave, isZip, readLegacyTorchSave, readTorchZip, stateDictFromValue } from './torch-save.js';
import { torchScriptStateDict } from './torchscript.js';

export type CheckpointFormat = 'safetensors' | 'torch-zip' | 'torch-legacy';

export interface LoadOptions {
  /** Names the input in error messages when bytes are given (a path names itself). */
  readonly source?: string;
  /**
   * What reading may cost (file size, pickle budget, inflation, …); unset limits come from their environment
   * variables or the defaults (see `ReadLimits`).
   */
  readonly limits?: Partial<ReadLimits>;
}

const ACCEPTED =
  'Accepted formats: safetensors; PyTorch checkpoints written by torch.save (zip archives, .pt/.pth/.bin, and the ' +
  'legacy format before PyTorch 1.6); TorchScript archives such as OpenAI\'s RN50.pt or ViT-B-32.pt.';

/** The checkpoint format the bytes are in, or null for none we read. */
export function sniffCheckpointFormat(bytes: Uint8Array): CheckpointFormat | null {
  if (isZip(bytes)) return 'torch-zip';
  if (isSafetensors(bytes)) return 'safetensors';
  if (isLegacyTorchSave(bytes)) return 'torch-legacy';
  return null;
}

interface Input {
  readonly bytes: Uint8Array;
  readonly source: string;
  readonly limits: ReadLimits;
}

async function input(pathOrBytes: string | Uint8Array, options: LoadOptions): Promise<Input> {
  const limits = resolveReadLimits(options.limits);
  if (typeof pathOrBytes !== 'string') return { bytes: pathOrBytes, source: options.source ?? 'checkpoint', limits };
  return { bytes: await readCheckpointFile(pathOrBytes, limits.checkpointBytes), source: options.source ?? pathOrBytes, limits };
}

/**
 * Runs a reader, turning an engine limit it hits (a stack overflow on absurd nesting, a Map or array past V8's
 * maximum size) into the clear error any malformed checkpoint gets: the budgets should catch such files first.
 */
async function guarded<T>(source: string, read: () => T | Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    if (e instanceof RangeError) {
      throw new ClipIqaError(
        'E_WEIGHTS_FORMAT',
        `${source}: the checkpoint is nested too deeply or holds too many objects to read (${e.message}); it is corrupt or hostile.`,
        { cause: e },
      );
    }
    throw e;
  }
}

function unrecognised(bytes: Uint8Array, source: string): ClipIqaError {
  const head = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  let what = `it starts with bytes ${head || '(empty file)'}`;
  if (bytes.length >= 262 && new TextDecoder().decode(bytes.subarray(257, 262)) === 'ustar') {
    what = 'it is a tar file: the torch.save format of PyTorch 0.3 and earlier, which is not read. Re-save it with a recent PyTorch';
  } else if (bytes[0] === 0x80) {
    what = 'it is a Python pickle but not a torch.save file (no torch magic number, no zip archive)';
  }
  return new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: not a checkpoint this reader recognises: ${what}. ${ACCEPTED}`);
}

async function readArchive({ bytes, source, limits }: Input, format: CheckpointFormat): Promise<TorchArchive> {
  return guarded(source, () => (format === 'torch-zip' ? readTorchZip(bytes, source, limits) : readLegacyTorchSave(bytes, source, limits)));
}

/**
 * The raw unpickled root of a torch.save or TorchScript file: a Map for dicts and OrderedDicts, a TorchTensor,
 * a TorchScriptObject, … — for callers that look for something other than a CLIP state dict (a CLIP-IQA+
 * context: `state_dict` → `generator.clipmodel_0.prompt_learner.ctx` in MMEditing checkpoints,
 * `params` → `prompt_learner.ctx` in pyiqa's, or a bare tensor).
 */
export async function loadPickledObject(pathOrBytes: string | Uint8Array, options: LoadOptions = {}): Promise<PickleValue> {
  const file = await input(pathOrBytes, options);
  const { bytes, source } = file;
  const format = sniffCheckpointFormat(bytes);
  if (format === 'safetensors') {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: a safetensors file, which holds named tensors and no pickled object; read it with loadCheckpoint.`);
  }
  if (format === null) throw unrecognised(bytes, source);
  return (await readArchive(file, format)).root;
}

/**
 * A CLIP state dict in the OpenAI layout from any supported checkpoint file (or its bytes). Tensors are views
 * of the file's bytes where their layout allows, and keep their stored dtype (widen with `toFloat32`).
 * Wrapped checkpoints are unwrapped: see `findClipStateDict`.
 */
export async function loadCheckpoint(pathOrBytes: string | Uint8Array, options: LoadOptions = {}): Promise<StateDict> {
  const file = await input(pathOrBytes, options);
  const { bytes, source } = file;
  const format = sniffCheckpointFormat(bytes);
  if (format === null) throw unrecognised(bytes, source);
  if (format === 'safetensors') return normalizeStateDict(readSafetensors(bytes, source, file.limits));
  const archive = await readArchive(file, format);
  return guarded(source, () =>
    findClipStateDict(archive.root, source, {
      format: format === 'torch-zip' ? 'torch.save' : 'torch.save (legacy)',
      ...(archive.archiveName ? { archive: archive.archiveName } : {}),
    }),
  );
}

/** Keys under which training code nests the model's state dict, in the order they are tried. */
const WRAPPER_KEYS = ['state_dict', 'model_state_dict', 'model', 'params_ema', 'params', 'module', 'net', 'network', 'weights'];

function holdsTensors(v: PickleValue | undefined): boolean {
  if (v instanceof TorchScriptObject) return true;
  if (!(v instanceof Map)) return false;
  for (const x of v.values()) if (x instanceof TorchTensor || x instanceof Map) return true;
  return false;
}

/**
 * The CLIP state dict inside an unpickled checkpoint:
 * - a TorchScript module tree is flattened to its state-dict names;
 * - a dict whose values include tensors is the state dict itself; otherwise the first of `state_dict`,
 *   `model_state_dict`, `model`, `params_ema`, `params`, … that holds tensors is (MMEditing's
 *   `{meta, state_dict}`, open_clip's `{epoch, state_dict, …}`, pyiqa's `{params}`);
 * - a `module.` prefix on every name (DataParallel) is removed, and when the CLIP tensors sit under one
 *   prefix (`generator.clip_model.text_projection`, …) that prefix is removed too.
 */
export function findClipStateDict(root: PickleValue, source: string, metadata: Record<string, string> = {}): StateDict {
  if (root instanceof TorchScriptObject) return nonEmpty(torchScriptStateDict(root, source, metadata.archive), source, root);
  if (isPlaceholder(root)) throw placeholderRefusal(source, placeholderClass(root), 'as the pickled object itself');
  if (root instanceof TorchTensor) {
    throw new ClipIqaError(
      'E_WEIGHTS_FORMAT',
      `${source}: holds a single ${root.dtype} tensor of shape [${root.shape.join(', ')}], not a model's state dict. ` +
        'If it is a CLIP-IQA+ learned context, give it as the context, not as the model.',
    );
  }
  if (!(root instanceof Map)) {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: the pickled object is ${describeValue(root)}, not a dict of tensors (a state dict).`);
  }
  let dict: PickleDict | TorchScriptObject = root;
  const direct = [...root.values()].some((v) => v instanceof TorchTensor);
  if (!direct) {
    const key = WRAPPER_KEYS.find((k) => holdsTensors(root.get(k)));
    if (key !== undefined) dict = root.get(key) as PickleDict | TorchScriptObject;
    else {
      // `{'model': model}`: the weights are a pickled model object, which is refused by name.
      for (const k of WRAPPER_KEYS) {
        const v = root.get(k);
        if (isPlaceholder(v)) throw placeholderRefusal(source, placeholderClass(v), `under "${k}"`);
      }
    }
  }
  const sd =
    dict instanceof TorchScriptObject ? torchScriptStateDict(dict, source, metadata.archive) : stateDictFromValue(dict, source, metadata);
  return normalizeStateDict(nonEmpty(sd, source, root));
}

/** A state dict with no tensors is an error that says what the checkpoint holds instead. */
function nonEmpty(sd: StateDict, source: string, root: PickleDict | TorchScriptObject): StateDict {
  if (sd.size > 0) return sd;
  const names = root instanceof Map ? [...root.keys()] : [...root.attributes.keys()];
  const keys = names.slice(0, 10).map((k) => JSON.stringify(typeof k === 'string' ? k : describeValue(k)));
  const what = root instanceof Map ? 'top-level keys' : `attributes of ${root.className}`;
  throw new ClipIqaError('E_WEIGHTS_FORMAT', `${source}: the checkpoint holds no tensors (${what}: ${keys.join(', ') || 'none'}).`);
}

/** Strips a `module.` prefix shared by every name, then a prefix under which the CLIP tensors sit. */
function normalizeStateDict(sd: StateDict): StateDict {
  let names = [...sd.keys()];
  let prefix = '';
  if (names.length > 0 && names.every((k) => k.startsWith('module.'))) {
    prefix = 'module.';
    names = names.map((k) => k.slice(prefix.length));
  }
  if (!names.includes('text_projection')) {
    const has = new Set(names);
    const found = names
      .filter((k) => k.endsWith('.text_projection'))
      .map((k) => k.slice(0, -'text_projection'.length))
      .filter((p) => has.has(`${p}token_embedding.weight`) && names.some((k) => k.startsWith(`${p}visual.`)));
    if (found.length === 1) prefix += found[0]!;
  }
  if (prefix === '') return sd;
  const out = new Map<string, Tensor>();
  for (const [k, v] of sd.entries()) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  return new StateDict(sd.source, out, { ...sd.metadata, prefix });
}
