import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { floatToHalf, type Tensor, toFloat32 } from '../src/tensor.js';
import { inferArchitecture } from '../src/weights/architecture.js';
import { DEFAULT_READ_LIMITS, resolveReadLimits } from '../src/weights/limits.js';
import { findClipStateDict, loadCheckpoint, loadPickledObject, sniffCheckpointFormat } from '../src/weights/load.js';
import { type PickleValue, TorchScriptObject, TorchStorage, TorchTensor } from '../src/weights/pickle.js';
import { readSafetensors } from '../src/weights/safetensors.js';
import type { StateDict } from '../src/weights/state-dict.js';
import { rejects } from './helpers/rejects.js';
import { Pickle, buildZip, concat, float32Bytes, int64, torchZip } from './helpers/pickle-bytes.js';
import { describeEachFixtureSet } from './helpers/shared.js';

const INTEGER_BUFFERS = ['input_resolution', 'context_length', 'vocab_size'];

/** The fixture exporter's rule (and OpenAI's): which tensors its TorchScript archives hold in float16. */
function storedAsHalf(name: string, t: Tensor): boolean {
  return (
    (name.endsWith('.weight') && t.shape.length >= 2 && !name.includes('embedding')) ||
    name.endsWith('in_proj_weight') ||
    ['in_proj_bias', 'out_proj.bias', 'c_fc.bias', 'c_proj.bias', 'q_proj.bias', 'k_proj.bias', 'v_proj.bias'].some((s) => name.endsWith(s)) ||
    name === 'text_projection' ||
    name === 'visual.proj'
  );
}

function bits(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}


describeEachFixtureSet(({ models, path: fixture, has }) => {
  const safetensors = (model: string): StateDict => readSafetensors(readFileSync(fixture(model, 'model.safetensors')), `${model}/model.safetensors`);

  describe.runIf(has('tiny-rn', 'model.pt'))('torch.save zip checkpoint (tiny-rn model.pt)', () => {
    const reference = safetensors('tiny-rn');
    const bytes = readFileSync(fixture('tiny-rn', 'model.pt'));

    it('gives the same names, shapes, dtypes and bit-identical values as model.safetensors', async () => {
      const sd = await loadCheckpoint(fixture('tiny-rn', 'model.pt'));
      expect(sd.metadata.format).toBe('torch.save');
      expect(sd.metadata.archive).toBe('model');
      expect([...sd.keys()].sort()).toEqual([...reference.keys()].sort());
      for (const [name, expected] of reference.entries()) {
        const t = sd.get(name);
        expect(t.shape, name).toEqual(expected.shape);
        expect(t.dtype, name).toBe(expected.dtype);
        expect(Buffer.from(bits(t)).equals(Buffer.from(bits(expected))), name).toBe(true);
      }
      expect(inferArchitecture(sd)).toEqual(inferArchitecture(reference));
    });

    it('views every tensor in the file bytes (no copies)', async () => {
      const sd = await loadCheckpoint(bytes, { source: 'model.pt' });
      for (const [name, t] of sd.entries()) expect(t.data.buffer, name).toBe(bytes.buffer);
    });

    it('sniffs the format by content, whatever the name', async () => {
      expect(sniffCheckpointFormat(bytes)).toBe('torch-zip');
      expect(sniffCheckpointFormat(readFileSync(fixture('tiny-rn', 'model.safetensors')))).toBe('safetensors');
      const sd = await loadCheckpoint(bytes, { source: 'weights.safetensors' });
      expect(sd.size).toBe(reference.size);
      const st = await loadCheckpoint(readFileSync(fixture('tiny-rn', 'model.safetensors')), { source: 'model.pt' });
      expect(st.size).toBe(reference.size);
    });

    it('rejects the file truncated, with a message that says so', async () => {
      for (const cut of [bytes.subarray(0, bytes.length >> 1), bytes.subarray(0, bytes.length - 10)]) {
        const e = await rejects(loadCheckpoint(cut, { source: 'cut.pt' }));
        expect(e.code).toBe('E_WEIGHTS_FORMAT');
        expect(e.message).toMatch(/^cut\.pt: not a readable zip archive \(.*\)\. .*truncated or corrupt: re-download it/);
      }
    });
  });

  describe.each(models)('TorchScript archive (%s model-jit-fp16.pt)', (model) => {
    const reference = safetensors(model);
    const path = fixture(model, 'model-jit-fp16.pt');

    it('flattens the module tree to the OpenAI state-dict names and shapes', async () => {
      const sd = await loadCheckpoint(path);
      expect(sd.metadata.format).toBe('torchscript');
      expect(sd.metadata.class).toMatch(/^__torch__\..*CLIP$/);
      const names = [...sd.keys()].filter((k) => !INTEGER_BUFFERS.includes(k) && !k.endsWith('.attn_mask'));
      expect(names.sort()).toEqual([...reference.keys()].sort());
      for (const name of names) expect(sd.shape(name), name).toEqual(reference.shape(name));
      expect(inferArchitecture(sd)).toEqual(inferArchitecture(reference));
    });

    it('keeps float16 weights as float16, equal to the float32 weights rounded to half; float32 ones bit-identical', async () => {
      const sd = await loadCheckpoint(path);
      let halves = 0;
      for (const [name, expected] of reference.entries()) {
        const t = sd.get(name);
        if (storedAsHalf(name, expected)) {
          halves++;
          expect(t.dtype, name).toBe('float16');
          const want = Uint16Array.from(expected.data as Float32Array, floatToHalf);
          expect(Buffer.from(bits(t)).equals(Buffer.from(want.buffer)), name).toBe(true);
        } else {
          expect(t.dtype, name).toBe(expected.dtype);
          expect(Buffer.from(bits(t)).equals(Buffer.from(bits(expected))), name).toBe(true);
        }
      }
      expect(halves).toBeGreaterThan(10);
    });

    it('reads the integer buffers and keeps the causal mask as a plain tensor', async () => {
      const sd = await loadCheckpoint(path);
      const arch = inferArchitecture(reference);
      for (const name of INTEGER_BUFFERS) expect(sd.get(name).dtype).toBe('int64');
      expect(Number(sd.get('input_resolution').data[0])).toBe(arch.vision.resolution);
      expect(Number(sd.get('context_length').data[0])).toBe(77);
      expect(Number(sd.get('vocab_size').data[0])).toBe(49408);
      const mask = sd.get('transformer.resblocks.0.attn_mask');
      expect(mask.shape).toEqual([77, 77]);
      const m = toFloat32(mask);
      expect(m[1]).toBe(-Infinity);
      expect(m[77]).toBe(0);
    });

    it('views every tensor in the file bytes (no copies)', async () => {
      const bytes = readFileSync(path);
      const sd = await loadCheckpoint(bytes);
      for (const [name, t] of sd.entries()) expect(t.data.buffer, name).toBe(bytes.buffer);
    });

    it('returns the module tree itself through loadPickledObject', async () => {
      const root = await loadPickledObject(path);
      expect(root).toBeInstanceOf(TorchScriptObject);
      const visual = (root as TorchScriptObject).attributes.get('visual');
      expect(visual).toBeInstanceOf(TorchScriptObject);
      expect(typeof (root as TorchScriptObject).attributes.get('training')).toBe('boolean');
    });
  });

  describe.each(models)('CLIP-IQA+ context files (%s)', (model) => {
    const expected = readSafetensors(readFileSync(fixture(model, 'expected.safetensors'))).get('fp32/clipiqa+/ctx');
    const shape = expected.shape as [number, number];

    it('reads pyiqa\'s bare float16 tensor', async () => {
      const ctx = await loadPickledObject(fixture(model, 'clipiqa+-ctx.pth'));
      expect(ctx).toBeInstanceOf(TorchTensor);
      const t = ctx as TorchTensor;
      expect(t.dtype).toBe('float16');
      expect(t.shape).toEqual(shape);
      expect(toFloat32(t)).toEqual(expected.data);
    });

    it('finds the context in the MMEditing {meta, state_dict} checkpoint', async () => {
      const root = await loadPickledObject(fixture(model, 'clipiqa+-mmedit.pth'));
      expect(root).toBeInstanceOf(Map);
      const dict = root as Map<PickleValue, PickleValue>;
      expect((dict.get('meta') as Map<PickleValue, PickleValue>).get('iter')).toBe(80000);
      const ctx = (dict.get('state_dict') as Map<PickleValue, PickleValue>).get('generator.clipmodel_0.prompt_learner.ctx') as TorchTensor;
      expect(ctx.shape).toEqual(shape);
      expect(toFloat32(ctx)).toEqual(expected.data);
      const sd = await loadCheckpoint(fixture(model, 'clipiqa+-mmedit.pth'));
      expect(sd.has('generator.clipmodel_0.prompt_learner.ctx')).toBe(true);
    });

    it('refuses a bare tensor as a model, saying what it is', async () => {
      const e = await rejects(loadCheckpoint(fixture(model, 'clipiqa+-ctx.pth')));
      expect(e.message).toContain(`holds a single float16 tensor of shape [${shape.join(', ')}], not a model's state dict`);
    });
  });
});

describe('hand-built zip checkpoints', () => {
  const six = float32Bytes([0, 1, 2, 3, 4, 5]);

  it('reads a transposed (non-contiguous) tensor into row-major order, from stored and from deflated entries', async () => {
    const pickle = new Pickle().proto(2).tensorDict({ w: { type: 'FloatStorage', key: '0', numel: 6, size: [2, 3], stride: [1, 2] } }).stop().toBytes();
    for (const deflate of [false, true]) {
      const sd = await loadCheckpoint(torchZip(pickle, { '0': six }, 'some-name', deflate), { source: 'hand.pt' });
      expect(sd.shape('w')).toEqual([2, 3]);
      expect([...sd.float32('w')]).toEqual([0, 2, 4, 1, 3, 5]);
    }
  });

  it('rejects a zip without data.pkl', async () => {
    const zip = buildZip([{ name: 'stuff/readme.txt', data: new TextEncoder().encode('hello') }]);
    const e = await rejects(loadCheckpoint(zip, { source: 'notes.zip' }));
    expect(e.code).toBe('E_WEIGHTS_FORMAT');
    expect(e.message).toMatch(/^notes\.zip: a zip file without <folder>\/data\.pkl, so not a PyTorch checkpoint \(entries: stuff\/readme\.txt\)/);
  });

  it('rejects a storage key missing from the archive', async () => {
    const pickle = new Pickle().proto(2).tensorDict({ w: { type: 'FloatStorage', key: '7', numel: 6, size: [6], stride: [1] } }).stop().toBytes();
    const e = await rejects(loadCheckpoint(torchZip(pickle, { '0': six }), { source: 'partial.pt' }));
    expect(e.message).toMatch(/^partial\.pt: the pickle refers to storage "7" but the archive has no entry archive\/data\/7\. The file is incomplete or corrupt/);
  });

  it('rejects a storage entry shorter than the pickle declares', async () => {
    const pickle = new Pickle().proto(2).tensorDict({ w: { type: 'FloatStorage', key: '0', numel: 8, size: [8], stride: [1] } }).stop().toBytes();
    const e = await rejects(loadCheckpoint(torchZip(pickle, { '0': six }), { source: 'short.pt' }));
    expect(e.message).toMatch(/storage archive\/data\/0 holds 24 bytes, but the pickle declares 8 float32 elements \(32 bytes\)/);
  });

  it('rejects a tensor whose sizes, strides and offset run past its storage', async () => {
    const pickle = new Pickle().proto(2).tensorDict({ w: { type: 'FloatStorage', key: '0', numel: 6, offset: 1, size: [2, 3], stride: [3, 1] } }).stop().toBytes();
    const e = await rejects(loadCheckpoint(torchZip(pickle, { '0': six }), { source: 'over.pt' }));
    expect(e.code).toBe('E_WEIGHTS_FORMAT');
    expect(e.message).toMatch(/a float32 tensor \[2, 3\] \(storage offset 1, strides \[3, 1\]\) reaches element 6 of storage "0", which holds only 6 elements/);
  });

  it('refuses duplicate entry names (torch reads the first, other readers the last)', async () => {
    const pickle = new Pickle().proto(2).tensorDict({ w: { type: 'FloatStorage', key: '0', numel: 6, size: [6], stride: [1] } }).stop().toBytes();
    const zip = buildZip([
      { name: 'archive/data.pkl', data: pickle },
      { name: 'archive/data/0', data: six },
      { name: 'archive/data/0', data: float32Bytes([9, 9, 9, 9, 9, 9]) },
    ]);
    const e = await rejects(loadCheckpoint(zip, { source: 'dup.pt' }));
    expect(e.code).toBe('E_WEIGHTS_FORMAT');
    expect(e.message).toMatch(/^dup\.pt: the zip holds two entries named "archive\/data\/0"; torch reads the first, other zip readers the last/);
  });

  it('caps what deflated entries may inflate to in all (inflateBytes)', async () => {
    const pickle = new Pickle()
      .proto(2)
      .tensorDict({ a: { type: 'ByteStorage', key: '0', numel: 4096, size: [4096], stride: [1] }, b: { type: 'ByteStorage', key: '1', numel: 4096, size: [4096], stride: [1] } })
      .stop()
      .toBytes();
    const zip = torchZip(pickle, { '0': new Uint8Array(4096), '1': new Uint8Array(4096) }, 'archive', true);
    expect((await loadCheckpoint(zip, { limits: { inflateBytes: 10_000 } })).size).toBe(2);
    const e = await rejects(loadCheckpoint(zip, { source: 'z.pt', limits: { inflateBytes: 6000 } }));
    expect(e.message).toMatch(/^z\.pt: inflating its deflated zip entries would take more than 5\.86 KiB \(inflateBytes\).*CLIP_IQA_MAX_INFLATE_BYTES/);
  });

  it('refuses a checkpoint without tensors: an empty state dict, a tensor-less TorchScript module', async () => {
    const empty = new Pickle().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce().stop().toBytes();
    const e1 = await rejects(loadCheckpoint(torchZip(empty, {}), { source: 'empty.pt' }));
    expect(e1.message).toMatch(/^empty\.pt: the checkpoint holds no tensors \(top-level keys: none\)/);
    const module = new Pickle().proto(2).global('__torch__.model', 'CLIP').emptyTuple().newobj();
    module.emptyDict().mark().str('training').bool(false).setitems().build().stop();
    const e2 = await rejects(loadCheckpoint(torchZip(module.toBytes(), {}), { source: 'jit.pt' }));
    expect(e2.code).toBe('E_WEIGHTS_FORMAT');
    expect(e2.message).toMatch(/^jit\.pt: the checkpoint holds no tensors \(attributes of __torch__\.model\.CLIP: "training"\)/);
  });

  it('refuses a data.pkl that calls os.system, naming it', async () => {
    const evil = new Pickle().proto(2).global('os', 'system').str('touch /tmp/pwned').raw(0x85).reduce().stop().toBytes();
    const e = await rejects(loadCheckpoint(torchZip(evil, {}), { source: 'evil.pth' }));
    expect(e.code).toBe('E_PICKLE_REFUSED');
    expect(e.message).toMatch(/refuses to load global os\.system: checkpoints may only hold tensors and containers/);
  });
});

describe('legacy (pre-1.6) torch.save files', () => {
  const header = [
    new Pickle().proto(2).long(0x1950a86a20f9469cfc6cn).stop().toBytes(),
    new Pickle().proto(2).int(1001).stop().toBytes(),
    new Pickle().proto(2).emptyDict().mark().str('protocol_version').int(1001).str('little_endian').bool(true).setitems().stop().toBytes(),
  ];
  const body = new Pickle()
    .proto(2)
    .tensorDict({
      'module.a': { type: 'FloatStorage', key: '140', numel: 6, size: [3, 2], stride: [1, 3], legacy: true },
      'module.b': { type: 'LongStorage', key: '99', numel: 1, size: [], stride: [], legacy: true },
    })
    .stop()
    .toBytes();
  const keys = new Pickle().proto(2).emptyList().mark().str('140').str('99').appends().stop().toBytes();
  const file = concat([...header, body, keys, int64(6), float32Bytes([0, 1, 2, 3, 4, 5]), int64(1), new Uint8Array(BigInt64Array.of(42n).buffer)]);

  it('reads the tensors (and strips a module. prefix that every name has)', async () => {
    expect(sniffCheckpointFormat(file)).toBe('torch-legacy');
    const sd = await loadCheckpoint(file, { source: 'old.pth' });
    expect([...sd.keys()]).toEqual(['a', 'b']);
    expect(sd.metadata.format).toBe('torch.save (legacy)');
    expect([...sd.float32('a')]).toEqual([0, 3, 1, 4, 2, 5]);
    expect(sd.get('b').data[0]).toBe(42n);
  });

  it('recognises and reads files written with pickle protocol 1 (issue 10, finding 19)', async () => {
    // Protocol 1 has no PROTO opcode or NEWTRUE/NEWFALSE: the magic number is a text LONG, bools are I01/I00.
    const enc = new TextEncoder();
    const text = (s: string) => enc.encode(s);
    const body = new Pickle().emptyDict().mark().str('a').global('torch._utils', '_rebuild_tensor_v2').mark();
    body.mark().str('storage').global('torch', 'FloatStorage').str('140').str('cpu').int(6).none().tuple().binpersid();
    body.int(0).ints([3, 2]).ints([1, 3]).raw(...text('I00\n')).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
    body.setitems().stop();
    const p1 = concat([
      text('L119547037146038801333356L\n.'),
      new Pickle().int(1001).stop().toBytes(),
      new Pickle().emptyDict().mark().str('little_endian').raw(...text('I01\n')).setitems().stop().toBytes(),
      body.toBytes(),
      new Pickle().emptyList().mark().str('140').appends().stop().toBytes(),
      int64(6),
      float32Bytes([0, 1, 2, 3, 4, 5]),
    ]);
    expect(sniffCheckpointFormat(p1)).toBe('torch-legacy');
    const sd = await loadCheckpoint(p1, { source: 'p1.pth' });
    expect([...sd.float32('a')]).toEqual([0, 3, 1, 4, 2, 5]);
  });

  it('rejects the file truncated', async () => {
    const e = await rejects(loadCheckpoint(file.subarray(0, file.length - 4), { source: 'old.pth' }));
    expect(e.message).toMatch(/^old\.pth: not a valid legacy torch\.save file: storage "99" runs past the end of the file/);
  });
});

describe('loadCheckpoint: inputs that are no checkpoint', () => {
  it('names the file and the accepted formats', async () => {
    const e = await rejects(loadCheckpoint(new TextEncoder().encode('<html>Not Found</html>'), { source: 'RN50.pt' }));
    expect(e.code).toBe('E_WEIGHTS_FORMAT');
    expect(e.message).toMatch(/^RN50\.pt: not a checkpoint this reader recognises: it starts with bytes 3c 68 74 6d/);
    expect(e.message).toMatch(/Accepted formats: safetensors; PyTorch checkpoints written by torch\.save .* TorchScript archives/);
    const pickle = await rejects(loadCheckpoint(new Pickle().proto(2).int(1).stop().toBytes(), { source: 'x.pkl' }));
    expect(pickle.message).toMatch(/a Python pickle but not a torch\.save file/);
  });

  it('reports a missing file as not found', async () => {
    const e = await rejects(loadCheckpoint('/nonexistent/RN50.pt'));
    expect(e.code).toBe('E_NOT_FOUND');
    expect(e.message).toContain('/nonexistent/RN50.pt');
  });
});

describe('read limits', () => {
  it('come from the option, else the environment variable, else the default; a bad value is E_OPTION', () => {
    expect(resolveReadLimits({}, {})).toEqual(DEFAULT_READ_LIMITS);
    expect(resolveReadLimits({}, { CLIP_IQA_PICKLE_BUDGET: '1GiB', CLIP_IQA_MAX_INFLATE_BYTES: '5e9' })).toMatchObject({
      pickleBudget: 2 ** 30,
      inflateBytes: 5e9,
    });
    expect(resolveReadLimits({ pickleBudget: 1000 }, { CLIP_IQA_PICKLE_BUDGET: '1GiB' }).pickleBudget).toBe(1000);
    expect(() => resolveReadLimits({}, { CLIP_IQA_MAX_HEADER_BYTES: 'lots' })).toThrowError(/^CLIP_IQA_MAX_HEADER_BYTES="lots" is not a size/);
    expect(() => resolveReadLimits({ expandBytes: -1 })).toThrowError(/limits\.expandBytes must be a positive whole number of bytes/);
  });
});

describe('findClipStateDict', () => {
  const t = (): TorchTensor => new TorchTensor('float32', [1], new Float32Array(1));
  const clip = (prefix: string) =>
    new Map<PickleValue, PickleValue>([
      [`${prefix}text_projection`, t()],
      [`${prefix}token_embedding.weight`, t()],
      [`${prefix}visual.proj`, t()],
    ]);

  it('unwraps state_dict / model / params and a DataParallel module. prefix', () => {
    for (const key of ['state_dict', 'model', 'params']) {
      const root = new Map<PickleValue, PickleValue>([
        ['epoch', 3],
        [key, clip('module.')],
      ]);
      expect([...findClipStateDict(root, 'ckpt').keys()].sort()).toEqual(['text_projection', 'token_embedding.weight', 'visual.proj']);
    }
  });

  it('finds a CLIP model nested under one prefix among other tensors', () => {
    const sd = clip('generator.clip_model.');
    sd.set('generator.prompt_learner.ctx', t());
    const found = findClipStateDict(new Map<PickleValue, PickleValue>([['state_dict', sd]]), 'mmedit');
    expect([...found.keys()].sort()).toEqual(['text_projection', 'token_embedding.weight', 'visual.proj']);
    expect(found.metadata.prefix).toBe('generator.clip_model.');
  });

  it('flattens nested dicts with dots and skips non-tensor leaves', () => {
    const root = new Map<PickleValue, PickleValue>([
      ['visual', new Map<PickleValue, PickleValue>([['conv1', new Map<PickleValue, PickleValue>([['weight', t()]])]])],
      ['logit_scale', t()],
      ['note', 'hello'],
    ]);
    expect([...findClipStateDict(root, 'nested').keys()]).toEqual(['visual.conv1.weight', 'logit_scale']);
  });

  it('says what it found when there are no tensors', () => {
    const root = new Map<PickleValue, PickleValue>([['meta', new Map()]]);
    expect(() => findClipStateDict(root, 'empty.pth')).toThrowError(/^empty\.pth: the checkpoint holds no tensors \(top-level keys: "meta"\)/);
    expect(() => findClipStateDict(new TorchStorage('uint8', new Uint8Array(0), 'k'), 'odd.pth')).toThrowError(/not a dict of tensors/);
  });
});
