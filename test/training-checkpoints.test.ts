/**
 * Issue 10, finding 18: fine-tuned CLIPs saved by training scripts carry objects of classes the reader does not
 * know beside the weights (fairseq's argparse.Namespace, Lightning callbacks as dict keys, MMEngine's
 * HistoryBuffer, OmegaConf configs). Those are kept as inert placeholders; the file is refused only when the
 * weights depend on one, and names that mean code execution are still refused by name.
 *
 * The pickles are built here byte by byte, and (when /usr/bin/python3 has torch) written by torch itself from
 * test/python/training_checkpoints.py.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toFloat32 } from '../src/tensor.js';
import { loadCheckpoint, loadPickledObject } from '../src/weights/load.js';
import { type PickleValue, PlaceholderObject } from '../src/weights/pickle.js';
import type { StateDict } from '../src/weights/state-dict.js';
import { rejects } from './helpers/rejects.js';
import { Pickle, type TensorSpec, float32Bytes, torchZip } from './helpers/pickle-bytes.js';
import { repoRoot } from './helpers/shared.js';


// One small CLIP-like state dict: the names findClipStateDict looks for, distinct values per tensor.
const CLIP: Record<string, TensorSpec & { values: number[] }> = {
  text_projection: { type: 'FloatStorage', key: '0', numel: 4, size: [2, 2], stride: [2, 1], values: [1, 2, 3, 4] },
  'token_embedding.weight': { type: 'FloatStorage', key: '1', numel: 6, size: [3, 2], stride: [2, 1], values: [5, 6, 7, 8, 9, 10] },
  'visual.proj': { type: 'FloatStorage', key: '2', numel: 4, size: [2, 2], stride: [1, 2], values: [11, 12, 13, 14] },
};
const STORAGES = { ...Object.fromEntries(Object.values(CLIP).map((t) => [t.key, float32Bytes(t.values)])), '9': float32Bytes([0.25]) };

/** `OrderedDict` of the CLIP tensors (names under `prefix`), with `_metadata` set by BUILD, as state_dict() pickles. */
function stateDict(p: Pickle, prefix = ''): Pickle {
  p.global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  for (const [name, spec] of Object.entries(CLIP)) p.str(prefix + name).tensor(spec);
  p.setitems();
  return p.emptyDict().str('_metadata').emptyDict().setitem().build();
}

/** `cls` instantiated by NEWOBJ with its attributes set by BUILD, as protocol 2 pickles a plain object. */
function object(p: Pickle, module: string, name: string, attributes: (p: Pickle) => void): Pickle {
  p.global(module, name).emptyTuple().newobj().emptyDict().mark();
  attributes(p);
  return p.setitems().build();
}

function expectClip(sd: StateDict): void {
  expect([...sd.keys()].sort()).toEqual(Object.keys(CLIP).sort());
  expect([...sd.float32('text_projection')]).toEqual([1, 2, 3, 4]);
  expect([...sd.float32('visual.proj')]).toEqual([11, 13, 12, 14]); // stored transposed
}

const zip = (p: Pickle): Uint8Array => torchZip(p.stop().toBytes(), STORAGES);

describe('checkpoints with objects of unknown classes beside the weights', () => {
  it('reads a fairseq checkpoint (argparse.Namespace in args, the weights in model)', async () => {
    const p = new Pickle().proto(2).emptyDict().mark();
    p.str('args');
    object(p, 'argparse', 'Namespace', (q) => q.str('arch').str('clip_vit').str('lr').emptyList().mark().float(0.001).appends());
    p.str('model');
    stateDict(p);
    p.str('optimizer_history').emptyList().mark().emptyDict().mark().str('criterion_name').str('CrossEntropyCriterion').str('num_updates').int(100).setitems().appends();
    p.str('extra_state').emptyDict().mark().str('epoch').int(3).setitems();
    p.setitems();
    const sd = await loadCheckpoint(zip(p), { source: 'checkpoint_best.pt' });
    expectClip(sd);
    const root = (await loadPickledObject(zip(p))) as Map<PickleValue, PickleValue>;
    const args = root.get('args') as PlaceholderObject;
    expect(args).toBeInstanceOf(PlaceholderObject);
    expect(args.className).toBe('argparse.Namespace');
    expect((args.state as Map<PickleValue, PickleValue>).get('arch')).toBe('clip_vit');
  });

  it('reads a Lightning checkpoint (a callback class as a key, AttributeDict hyper-parameters, model. prefix)', async () => {
    const p = new Pickle().proto(2).emptyDict().mark();
    p.str('epoch').int(3).str('pytorch-lightning_version').str('1.2.10');
    p.str('callbacks').emptyDict().global('pytorch_lightning.callbacks.model_checkpoint', 'ModelCheckpoint');
    p.emptyDict().mark().str('monitor').str('val_loss').str('best_model_score').tensor({ type: 'FloatStorage', key: '9', numel: 1, size: [], stride: [] }).setitems();
    p.setitem();
    p.str('state_dict');
    stateDict(p, 'model.');
    // AttributeDict is a dict subclass: NEWOBJ, then its items by SETITEMS.
    p.str('hyper_parameters').global('pytorch_lightning.utilities.parsing', 'AttributeDict').emptyTuple().newobj();
    p.mark().str('lr').float(0.001).str('log_dir').global('pathlib', 'PurePosixPath').mark().str('/runs/1').tuple().reduce().setitems();
    p.str('saved_at').global('datetime', 'datetime').mark().bytes(Uint8Array.of(7, 231, 5, 1, 12, 0, 0, 0, 0, 0)).tuple().reduce();
    p.setitems();
    const sd = await loadCheckpoint(zip(p), { source: 'epoch=3.ckpt' });
    expectClip(sd);
    expect(sd.metadata.prefix).toBe('model.');
  });

  it('reads an MMEngine checkpoint (HistoryBuffer holding numpy arrays in meta) and an OmegaConf config', async () => {
    const p = new Pickle().proto(2).emptyDict().mark();
    p.str('meta').emptyDict().mark().str('message_hub').emptyDict().mark().str('log_scalars').emptyDict().mark().str('train/loss');
    object(p, 'mmengine.logging.history_buffer', 'HistoryBuffer', (q) => {
      q.str('max_length').int(1000);
      q.str('_log_history').global('numpy.core.multiarray', '_reconstruct').mark().global('numpy', 'ndarray').mark().int(0).tuple().bytes(Uint8Array.of(0x62)).tuple().reduce();
    });
    p.setitems().setitems().setitems();
    p.str('state_dict');
    stateDict(p);
    p.str('hyper_parameters').emptyDict().str('cfg');
    object(p, 'omegaconf.dictconfig', 'DictConfig', (q) => {
      q.str('_metadata');
      object(q, 'omegaconf.base', 'ContainerMetadata', (r) => r.str('ref_type').global('typing', 'Any'));
      q.str('_content').emptyDict().mark().str('lr');
      object(q, 'omegaconf.nodes', 'AnyNode', (r) => r.str('_val').float(0.001));
      q.setitems();
    });
    p.setitem().setitems();
    expectClip(await loadCheckpoint(zip(p), { source: 'iter_100.pth' }));
  });

  it('keeps a pickled module class recorded beside a state dict as a placeholder', async () => {
    // torch.save records an nn.Module's class as the persistent id ('module', cls, source_file, source).
    const p = new Pickle().proto(2).emptyDict().mark().str('state_dict');
    stateDict(p);
    p.str('arch').mark().str('module').global('clip.model', 'CLIP').str('clip/model.py').str('class CLIP(nn.Module): ...').tuple().binpersid();
    p.setitems();
    expectClip(await loadCheckpoint(zip(p), { source: 'mixed.pt' }));
  });
});

describe('what stays refused', () => {
  it.each([
    ['os', 'system'],
    ['posix', 'system'],
    ['nt', 'system'],
    ['subprocess', 'check_output'],
    ['builtins', 'eval'],
    ['builtins', 'exec'],
    ['builtins', 'compile'],
    ['builtins', 'getattr'],
    ['builtins', '__import__'],
    ['builtins', 'open'],
    ['__builtin__', 'eval'],
    ['sys', 'modules'],
    ['importlib', 'import_module'],
    ['runpy', '_run_code'],
    ['pickle', 'loads'],
    ['_pickle', 'loads'],
    ['marshal', 'loads'],
    ['torch', 'load'],
  ])('refuses %s.%s by name even where no weight depends on it', async (module, name) => {
    // A Lightning-shaped checkpoint whose callback state calls the global: the state dict itself is fine.
    const p = new Pickle().proto(2).emptyDict().mark().str('state_dict');
    stateDict(p);
    p.str('callbacks').emptyDict().str('x').global(module, name).mark().str('id').tuple().reduce().setitem();
    p.setitems();
    const e = await rejects(loadCheckpoint(zip(p), { source: 'evil.ckpt' }));
    expect(e.code).toBe('E_PICKLE_REFUSED');
    expect(e.message).toContain(`refuses to load global ${module}.${name}: checkpoints may only hold tensors and containers`);
  });

  it('refuses a whole pickled model (the root is an unknown class), naming it', async () => {
    const p = object(new Pickle().proto(2), 'clip.model', 'CLIP', (q) => q.str('training').bool(false));
    const e = await rejects(loadCheckpoint(torchZip(p.stop().toBytes(), {}), { source: 'model.pt' }));
    expect(e.code).toBe('E_PICKLE_REFUSED');
    expect(e.message).toMatch(/^model\.pt: archive\/data\.pkl: refuses to load global clip\.model\.CLIP as the pickled object itself/);
    expect(e.message).toMatch(/save model\.state_dict\(\)/);
  });

  it('refuses weights nested in a pickled model ({"model": model}), naming the key and class', async () => {
    const p = new Pickle().proto(2).emptyDict().mark().str('epoch').int(1).str('model');
    object(p, 'clip.model', 'CLIP', (q) => q.str('_parameters').emptyDict());
    p.setitems();
    const e = await rejects(loadCheckpoint(zip(p), { source: 'ckpt.pt' }));
    expect(e.code).toBe('E_PICKLE_REFUSED');
    expect(e.message).toMatch(/^ckpt\.pt: refuses to load global clip\.model\.CLIP under "model"/);
  });

  it('refuses a state dict holding an unknown object among its tensors, naming where', async () => {
    const p = new Pickle().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce().mark();
    for (const [name, spec] of Object.entries(CLIP)) p.str(name).tensor(spec);
    p.str('visual.ln_post.weight').global('torch._utils', '_rebuild_qtensor').mark().int(0).tuple().reduce();
    p.setitems();
    const e = await rejects(loadCheckpoint(zip(p), { source: 'q.pt' }));
    expect(e.code).toBe('E_PICKLE_REFUSED');
    expect(e.message).toMatch(/^q\.pt: refuses to load global torch\._utils\._rebuild_qtensor under "visual\.ln_post\.weight" in the state dict\. It is a PyTorch object/);
  });

  it('refuses a tensor built from an unknown class', async () => {
    const storage = new Pickle().proto(2).emptyDict().str('w').global('torch._utils', '_rebuild_tensor_v2').mark();
    storage.global('mylib', 'MyStorage').emptyTuple().newobj().int(0).ints([1]).ints([1]).bool(false).none().tuple().reduce().setitem();
    const e1 = await rejects(loadCheckpoint(zip(storage), { source: 's.pt' }));
    expect(e1.code).toBe('E_PICKLE_REFUSED');
    expect(e1.message).toMatch(/refuses to load global mylib\.MyStorage as the storage of a tensor/);

    const pid = new Pickle().proto(2).emptyDict().str('w').global('torch._utils', '_rebuild_tensor_v2').mark();
    pid.mark().str('storage').global('mylib', 'MyStorage').str('0').str('cpu').int(1).tuple().binpersid();
    pid.int(0).ints([1]).ints([1]).bool(false).none().tuple().reduce().setitem();
    const e2 = await rejects(loadCheckpoint(zip(pid), { source: 'p.pt' }));
    expect(e2.code).toBe('E_PICKLE_REFUSED');
    expect(e2.message).toMatch(/refuses to load global mylib\.MyStorage as the type of a storage/);
  });
});

// ---------------------------------------------------------------------------------------------------------
// The same, written by torch itself

const python = '/usr/bin/python3';
function torchMissing(): string | false {
  if (!existsSync(python)) return `${python} is absent`;
  try {
    execFileSync(python, ['-c', 'import torch, numpy'], { stdio: 'pipe' });
    return false;
  } catch {
    return `${python} has no torch or numpy`;
  }
}
const noTorch = torchMissing();

describe.skipIf(noTorch)(`checkpoints written by torch${noTorch ? ` (skipped: ${noTorch})` : ''}`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'clip-iqa-training-'));
  let expected: { values: Record<string, number[]>; shapes: Record<string, number[]> };
  beforeAll(() => {
    execFileSync(python, [join(repoRoot, 'test', 'python', 'training_checkpoints.py'), dir], { stdio: 'pipe', timeout: 120_000 });
    expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as typeof expected;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(['fairseq.pt', 'fairseq-legacy-p2.pt', 'fairseq-legacy-p1.pt', 'lightning.ckpt', 'mmengine.pth', 'omegaconf.ckpt'])(
    '%s: the wrapped state dict, value for value',
    async (file) => {
      const sd = await loadCheckpoint(join(dir, file));
      expect([...sd.keys()].sort()).toEqual(Object.keys(expected.values).sort());
      for (const [name, values] of Object.entries(expected.values)) {
        expect(sd.shape(name), name).toEqual(expected.shapes[name]);
        expect([...toFloat32(sd.get(name))], name).toEqual(values.map(Math.fround));
      }
    },
  );

  it('refuses torch.save(model), naming the model class', async () => {
    const e = await rejects(loadCheckpoint(join(dir, 'whole-model.pt')));
    expect(e.code).toBe('E_PICKLE_REFUSED');
    expect(e.message).toMatch(/refuses to load global clipmodels\.model\.CLIP as the pickled object itself/);
  });

  it('reads protocol-0 legacy files (finding 19), and says why one with tensors cannot be read', async () => {
    const meta = (await loadPickledObject(join(dir, 'meta-p0.pt'))) as Map<PickleValue, PickleValue>;
    expect(meta.get('name')).toBe('café \\ "x"\n');
    expect(meta.get('big')).toBe(2n ** 80n);
    expect(meta.get('neg')).toBe(-7);
    expect(meta.get('ratio')).toBe(0.5);
    expect(meta.get('flags')).toEqual([true, false, null]);
    expect(meta.get('tags')).toEqual(new Set(['a', 'b']));
    expect((meta.get('args') as PlaceholderObject).className).toBe('argparse.Namespace');
    const e = await rejects(loadCheckpoint(join(dir, 'sd-p0.pt')));
    expect(e.code).toBe('E_WEIGHTS_FORMAT');
    expect(e.message).toMatch(/saved with pickle protocol 0, which writes each storage reference as text .*PyTorch itself cannot load such a file/);
  });
});
