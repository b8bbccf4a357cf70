import { describe, expect, it } from 'vitest';
import { ClipIqaError } from '../src/errors.js';
import {
  OpaqueObject,
  type PickleValue,
  PlaceholderObject,
  TorchScriptObject,
  TorchStorage,
  TorchTensor,
  type UnpickleOptions,
  isTuple,
  readPickle,
  unpickle,
} from '../src/weights/pickle.js';
import { Pickle, float32Bytes } from './helpers/pickle-bytes.js';

/** Resolves ('storage', type, key, location, numel) to the given bytes, as the zip reader does. */
function storages(map: Record<string, Uint8Array>): UnpickleOptions['persistentLoad'] {
  return (pid) => {
    const [, type, key] = pid as readonly PickleValue[];
    if (typeof key !== 'string' || !map[key]) throw new ClipIqaError('E_WEIGHTS_FORMAT', `no storage ${String(key)}`);
    const dtype = (type as { name: string }).name === 'HalfStorage' ? 'float16' : (type as { name: string }).name === 'LongStorage' ? 'int64' : 'float32';
    return new TorchStorage(dtype, map[key as string]!, key as string);
  };
}

function refused(fn: () => unknown): ClipIqaError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ClipIqaError);
    return e as ClipIqaError;
  }
  throw new Error('expected an error');
}

describe('restricted unpickler: containers and scalars', () => {
  it('reads dicts, lists, tuples, ints of every width, floats, strings, bytes, None and bools', () => {
    const p = new Pickle().proto(2).emptyDict().put(0).mark();
    p.str('small').int(7);
    p.str('medium').int(40000);
    p.str('negative').int(-5);
    p.str('big').long(2n ** 70n);
    p.str('long-small').long(-300n);
    p.str('pi').float(3.25);
    p.shortStr('short').shortStr('héllo');
    p.str('bytes').bytes(Uint8Array.of(1, 2, 3));
    p.str('none').none();
    p.str('flags').mark().bool(true).bool(false).tuple();
    p.str('list').emptyList().mark().int(1).int(2).appends();
    p.str('self').get(0); // memo: the dict itself
    p.setitems().stop();
    const v = unpickle(p.toBytes()) as Map<PickleValue, PickleValue>;
    expect(v.get('small')).toBe(7);
    expect(v.get('medium')).toBe(40000);
    expect(v.get('negative')).toBe(-5);
    expect(v.get('big')).toBe(2n ** 70n);
    expect(v.get('long-small')).toBe(-300);
    expect(v.get('pi')).toBe(3.25);
    expect(v.get('short')).toBe('héllo');
    expect([...(v.get('bytes') as Uint8Array)]).toEqual([1, 2, 3]);
    expect(v.get('none')).toBeNull();
    expect(v.get('flags')).toEqual([true, false]);
    expect(isTuple(v.get('flags')!)).toBe(true);
    expect(v.get('list')).toEqual([1, 2]);
    expect(isTuple(v.get('list')!)).toBe(false);
    expect(v.get('self')).toBe(v);
  });

  it('builds an OrderedDict, including a state_dict with _metadata set through BUILD', () => {
    const p = new Pickle().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce();
    p.mark().str('a').int(1).str('b').int(2).setitems();
    p.emptyDict().str('_metadata').emptyDict().setitem().build().stop();
    const v = unpickle(p.toBytes());
    expect(v).toBeInstanceOf(Map);
    expect([...(v as Map<PickleValue, PickleValue>).entries()]).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
  });

  it('reports where a pickle ends, so consecutive pickles can be read', () => {
    const a = new Pickle().proto(2).int(1).stop().toBytes();
    const b = new Pickle().proto(2).str('x').stop().toBytes();
    const both = new Uint8Array([...a, ...b]);
    const first = readPickle(both, 0);
    expect(first).toEqual({ value: 1, end: a.length });
    expect(readPickle(both, first.end).value).toBe('x');
  });

  it('admits TorchScript classes only when asked, as inert attribute records', () => {
    const p = new Pickle().proto(2).global('__torch__.model', 'CLIP').emptyTuple().newobj();
    p.emptyDict().mark().str('training').bool(false).str('scale').float(2).setitems().build().stop();
    const bytes = p.toBytes();
    expect(refused(() => unpickle(bytes, { source: 'x.pkl' })).message).toMatch(/refuses to load global __torch__\.model\.CLIP/);
    const obj = unpickle(bytes, { torchScriptClasses: true });
    expect(obj).toBeInstanceOf(TorchScriptObject);
    expect((obj as TorchScriptObject).className).toBe('__torch__.model.CLIP');
    expect((obj as TorchScriptObject).attributes.get('scale')).toBe(2);
  });

  it('passes values through the TorchScript list and type-tag helpers, and devices as names', () => {
    const p = new Pickle().proto(2).mark();
    p.global('torch.jit._pickle', 'build_intlist').mark().emptyList().mark().int(1).int(1).appends().tuple().reduce();
    p.global('torch.jit._pickle', 'restore_type_tag').mark().emptyDict().str('Dict[str, int]').tuple().reduce();
    p.global('torch', 'device').mark().str('cuda').int(0).tuple().reduce();
    p.global('torch', 'float16');
    p.tuple().stop();
    const [ints, dict, device, dtype] = unpickle(p.toBytes()) as readonly PickleValue[];
    expect(ints).toEqual([1, 1]);
    expect(dict).toEqual(new Map());
    expect(device).toBe('cuda:0');
    expect((dtype as { qualifiedName: string }).qualifiedName).toBe('torch.float16');
  });

  it('keeps numpy scalars from training metadata as inert records', () => {
    // What pickle writes for numpy.float64(0.5): scalar(dtype('f8', False, True) + BUILD state, raw bytes).
    const p = new Pickle().proto(2).global('numpy.core.multiarray', 'scalar');
    p.global('numpy', 'dtype').mark().str('f8').bool(false).bool(true).tuple().reduce();
    p.mark().int(3).str('<').none().none().none().int(-1).int(-1).int(0).tuple().build();
    p.bytes(float32Bytes([0, 1.875])).raw(0x86).reduce().stop();
    const v = unpickle(p.toBytes());
    expect(v).toBeInstanceOf(OpaqueObject);
    expect((v as OpaqueObject).className).toBe('numpy.core.multiarray.scalar');
    expect(((v as OpaqueObject).args[0] as OpaqueObject).className).toBe('numpy.dtype');
  });
});

describe('restricted unpickler: classes outside the allow-list (issue 10, finding 18)', () => {
  it('keeps an unknown class as an inert placeholder: calling, instantiating or building one yields a placeholder', () => {
    const p = new Pickle().proto(2).mark();
    p.global('argparse', 'Namespace').emptyTuple().newobj().emptyDict().str('lr').float(0.5).setitem().build(); // NEWOBJ + BUILD
    p.global('pathlib', 'PosixPath').mark().str('/runs').tuple().reduce(); // REDUCE on the class
    p.global('mylib', 'Factory').emptyTuple().newobj().mark().int(1).tuple().reduce(); // REDUCE on an instance
    p.global('mylib', 'AttrDict').emptyTuple().newobj().mark().str('k').int(2).setitems(); // a dict subclass
    p.global('mylib', 'Items').emptyTuple().newobj().mark().int(3).appends(); // a list subclass
    p.tuple().stop();
    const [ns, path, called, dict, list] = unpickle(p.toBytes()) as readonly PlaceholderObject[];
    expect(ns).toBeInstanceOf(PlaceholderObject);
    expect(ns!.className).toBe('argparse.Namespace');
    expect((ns!.state as Map<PickleValue, PickleValue>).get('lr')).toBe(0.5);
    expect(path!.className).toBe('pathlib.PosixPath');
    expect(path!.args).toEqual(['/runs']);
    expect(called).toBeInstanceOf(PlaceholderObject);
    expect(called!.className).toBe('mylib.Factory');
    expect(dict!.items.get('k')).toBe(2);
    expect(list!.list).toEqual([3]);
  });

  it('refuses a placeholder as the pickled object itself', () => {
    const bytes = new Pickle().proto(2).global('mylib', 'Model').emptyTuple().newobj().stop().toBytes();
    const e = refused(() => unpickle(bytes, { source: 'm.pkl' }));
    expect(e.code).toBe('E_PICKLE_REFUSED');
    expect(e.message).toMatch(/^m\.pkl: refuses to load global mylib\.Model as the pickled object itself/);
  });
});

describe('restricted unpickler: protocols 0 and 1 (issue 10, finding 19)', () => {
  const enc = new TextEncoder();
  const text = (s: string) => new Pickle().raw(...enc.encode(s));

  it('reads STRING and UNICODE escapes, text ints and floats, INST and OBJ', () => {
    const p = text("(dp0\nS'a\\'b\\x41\\n\\101'\np1\nVcaf\\u00e9 \\u005c \\u20ac\np2\nsI-12\nL123456789012345678901234567890L\n");
    p.raw(...enc.encode('s(I1\ni__main__\nThing\np3\nI7\nsI7\n(cargparse\nNamespace\nop4\nsF0.25\nI01\ns.'));
    const v = unpickle(p.toBytes()) as Map<PickleValue, PickleValue>;
    expect(v.get("a'bA\nA")).toBe('café \\ €');
    expect(v.get(-12)).toBe(123456789012345678901234567890n);
    const [inst, seven] = [...v.entries()].find(([k]) => k instanceof PlaceholderObject)!;
    expect((inst as PlaceholderObject).className).toBe('__main__.Thing');
    expect((inst as PlaceholderObject).args).toEqual([1]);
    expect(seven).toBe(7);
    expect((v.get(7) as PlaceholderObject).className).toBe('argparse.Namespace');
    expect(v.get(0.25)).toBe(true);
  });

  it('refuses a global named by INST by name, and integers longer than Python converts', () => {
    expect(refused(() => unpickle(text('(ios\nsystem\n.').toBytes())).code).toBe('E_PICKLE_REFUSED');
    const e = refused(() => unpickle(text(`I${'9'.repeat(5000)}\n.`).toBytes()));
    expect(e.message).toMatch(/an integer of 5000 decimal digits exceeds the 4300 that Python itself converts/);
  });
});

describe('restricted unpickler: refuses what could run code', () => {
  it('refuses os.system by GLOBAL, before anything is called', () => {
    const bytes = new Pickle().proto(2).global('os', 'system').str('echo pwned').raw(0x85).reduce().stop().toBytes();
    const e = refused(() => unpickle(bytes, { source: 'evil.pt' }));
    expect(e.code).toBe('E_PICKLE_REFUSED');
    expect(e.message).toMatch(/^evil\.pt: refuses to load global os\.system: checkpoints may only hold tensors and containers/);
  });

  it('refuses builtins.eval by STACK_GLOBAL', () => {
    const bytes = new Pickle().proto(4).shortStr('builtins').shortStr('eval').stackGlobal().shortStr('1+1').raw(0x85).reduce().stop().toBytes();
    const e = refused(() => unpickle(bytes, { source: 'evil.pt' }));
    expect(e.code).toBe('E_PICKLE_REFUSED');
    expect(e.message).toMatch(/refuses to load global builtins\.eval/);
  });

  it.each([
    ['posix', 'system'],
    ['subprocess', 'Popen'],
    ['builtins', 'exec'],
    ['torch', 'load'],
    ['torch._utils', '_rebuild_qtensor'],
    ['__main__', 'MyModel'],
  ])('refuses %s.%s', (module, name) => {
    const bytes = new Pickle().proto(2).global(module, name).stop().toBytes();
    const e = refused(() => unpickle(bytes));
    expect(e.code).toBe('E_PICKLE_REFUSED');
    expect(e.message).toContain(`global ${module}.${name}`);
  });

  it('refuses a global named by the protocol-0 INST opcode', () => {
    const bytes = new Pickle().mark().str('id').raw(0x69, ...new TextEncoder().encode('os\nsystem\n')).stop().toBytes();
    expect(refused(() => unpickle(bytes)).message).toMatch(/global os\.system/);
  });

  it('refuses extension-registry opcodes', () => {
    const bytes = new Pickle().proto(2).raw(0x82, 1).stop().toBytes();
    expect(refused(() => unpickle(bytes)).code).toBe('E_PICKLE_REFUSED');
  });

  it('accepts _codecs.encode only in the form protocol 2 uses for bytes', () => {
    const ok = new Pickle().proto(2).global('_codecs', 'encode').mark().str('\u00ff\u0001').str('latin1').tuple().reduce().stop().toBytes();
    expect([...(unpickle(ok) as Uint8Array)]).toEqual([255, 1]);
    const other = new Pickle().proto(2).global('_codecs', 'encode').mark().str('x').str('rot13').tuple().reduce().stop().toBytes();
    expect(refused(() => unpickle(other)).code).toBe('E_PICKLE_REFUSED');
  });
});

describe('restricted unpickler: malformed input', () => {
  const sample = new Pickle()
    .proto(2)
    .emptyDict()
    .mark()
    .str('w')
    .tensor({ type: 'FloatStorage', key: '0', numel: 6, size: [2, 3], stride: [1, 2] })
    .str('list')
    .emptyList()
    .mark()
    .int(1)
    .float(2.5)
    .long(2n ** 64n)
    .appends()
    .setitems()
    .stop()
    .toBytes();
  const load = storages({ '0': float32Bytes([0, 1, 2, 3, 4, 5]) });

  it('reads the sample intact', () => {
    const v = unpickle(sample, { persistentLoad: load }) as Map<PickleValue, PickleValue>;
    expect([...(v.get('w') as TorchTensor).data]).toEqual([0, 2, 4, 1, 3, 5]);
  });

  it('gives a clear error, never a hang or a crash, at every truncation point', () => {
    for (let n = 0; n < sample.length; n++) {
      const e = refused(() => unpickle(sample.subarray(0, n), { source: 'cut.pkl', persistentLoad: load }));
      expect(e.code).toBe('E_WEIGHTS_FORMAT');
      expect(e.message).toMatch(/^cut\.pkl: malformed pickle at byte \d+/);
    }
    expect(refused(() => unpickle(sample.subarray(0, 40), { persistentLoad: load })).message).toMatch(/truncated/);
  });

  it('survives random corruption: every outcome is a value or a ClipIqaError', () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 2 ** 24;
    for (let trial = 0; trial < 3000; trial++) {
      const bytes = sample.slice();
      const edits = 1 + Math.floor(rand() * 3);
      for (let i = 0; i < edits; i++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      try {
        unpickle(bytes, { persistentLoad: load, limits: { expandBytes: 1 << 20, pickleBudget: 1 << 20 } });
      } catch (e) {
        if (!(e instanceof ClipIqaError)) throw new Error(`trial ${trial}: ${String(e)} from bytes ${[...bytes].join(',')}`);
      }
    }
  });

  it('names an unknown opcode, an unsupported protocol and stack misuse', () => {
    expect(refused(() => unpickle(Uint8Array.of(0x80, 2, 0xff))).message).toMatch(/unknown opcode 0xff/);
    expect(refused(() => unpickle(Uint8Array.of(0x80, 6, 0x2e))).message).toMatch(/protocol 6/);
    expect(refused(() => unpickle(Uint8Array.of(0x80, 2, 0x2e))).message).toMatch(/stack is empty/);
    expect(refused(() => unpickle(Uint8Array.of(0x80, 2, 0x74, 0x2e))).message).toMatch(/no MARK/);
    expect(refused(() => unpickle(Uint8Array.of(0x80, 2, 0x68, 9, 0x2e))).message).toMatch(/memo entry 9 was never stored/);
    expect(refused(() => unpickle(new Pickle().proto(2).int(0).int(1).int(2).setitem().stop().toBytes())).message).toMatch(/not a dict/);
  });

  it('rejects a persistent id where no storage resolver is given', () => {
    const bytes = new Pickle().proto(2).str('x').binpersid().stop().toBytes();
    expect(refused(() => unpickle(bytes)).message).toMatch(/persistent id/);
  });
});

describe('restricted unpickler: tensors', () => {
  const read = (p: Pickle, map: Record<string, Uint8Array>, extra: Partial<UnpickleOptions> = {}) =>
    unpickle(p.toBytes(), { source: 't.pkl', persistentLoad: storages(map), ...extra });

  it('views a contiguous tensor in the storage bytes without copying, honouring the offset', () => {
    const storage = float32Bytes([9, 9, 1, 2, 3, 4, 5, 6]);
    const t = read(new Pickle().proto(2).tensor({ type: 'FloatStorage', key: '0', numel: 8, offset: 2, size: [2, 3], stride: [3, 1] }).stop(), {
      '0': storage,
    }) as TorchTensor;
    expect(t).toBeInstanceOf(TorchTensor);
    expect(t.dtype).toBe('float32');
    expect(t.shape).toEqual([2, 3]);
    expect([...t.data]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(t.data.buffer).toBe(storage.buffer);
  });

  it('treats size-1 dimensions as contiguous whatever their stride', () => {
    const storage = float32Bytes([1, 2, 3]);
    const t = read(new Pickle().proto(2).tensor({ type: 'FloatStorage', key: '0', numel: 3, size: [1, 3, 1], stride: [99, 1, 7] }).stop(), {
      '0': storage,
    }) as TorchTensor;
    expect([...t.data]).toEqual([1, 2, 3]);
    expect(t.data.buffer).toBe(storage.buffer);
  });

  it('materialises a transposed tensor into row-major order', () => {
    // storage holds the (3, 2) matrix [[0,1],[2,3],[4,5]]; its transpose is (2, 3) with strides (1, 2).
    const t = read(new Pickle().proto(2).tensor({ type: 'FloatStorage', key: '0', numel: 6, size: [2, 3], stride: [1, 2] }).stop(), {
      '0': float32Bytes([0, 1, 2, 3, 4, 5]),
    }) as TorchTensor;
    expect(t.shape).toEqual([2, 3]);
    expect([...t.data]).toEqual([0, 2, 4, 1, 3, 5]);
  });

  it('materialises a permuted 3-D tensor with an offset, and one with contiguous inner runs', () => {
    // base (2, 3, 4) contiguous at offset 1; permute(2, 0, 1) → size (4, 2, 3), stride (1, 12, 4).
    const values = Array.from({ length: 25 }, (_, i) => i - 1);
    const base = (i: number, j: number, k: number) => values[1 + i * 12 + j * 4 + k]!;
    const permuted = read(
      new Pickle().proto(2).tensor({ type: 'FloatStorage', key: '0', numel: 25, offset: 1, size: [4, 2, 3], stride: [1, 12, 4] }).stop(),
      { '0': float32Bytes(values) },
    ) as TorchTensor;
    const expected: number[] = [];
    for (let k = 0; k < 4; k++) for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) expected.push(base(i, j, k));
    expect([...permuted.data]).toEqual(expected);

    // base.transpose(0, 1) → size (3, 2, 4), stride (4, 12, 1): rows of 4 stay contiguous.
    const rows = read(
      new Pickle().proto(2).tensor({ type: 'FloatStorage', key: '0', numel: 25, offset: 1, size: [3, 2, 4], stride: [4, 12, 1] }).stop(),
      { '0': float32Bytes(values) },
    ) as TorchTensor;
    const expectedRows: number[] = [];
    for (let j = 0; j < 3; j++) for (let i = 0; i < 2; i++) for (let k = 0; k < 4; k++) expectedRows.push(base(i, j, k));
    expect([...rows.data]).toEqual(expectedRows);
  });

  it('expands a stride-0 dimension, and caps what such strides may allocate', () => {
    const t = read(new Pickle().proto(2).tensor({ type: 'FloatStorage', key: '0', numel: 2, size: [3, 2], stride: [0, 1] }).stop(), {
      '0': float32Bytes([7, 8]),
    }) as TorchTensor;
    expect([...t.data]).toEqual([7, 8, 7, 8, 7, 8]);
    const huge = new Pickle().proto(2).tensor({ type: 'FloatStorage', key: '0', numel: 1, size: [60000, 60000], stride: [0, 0] }).stop();
    expect(refused(() => read(huge, { '0': float32Bytes([1]) })).message).toMatch(
      /would copy 13\.41 GiB, more than the 4 bytes their storages hold plus 64 MiB \(expandBytes\)/,
    );
  });

  it('keeps float16 bits and int64 values', () => {
    const half = new Uint8Array(Uint16Array.of(0x3c00, 0xc000).buffer);
    const h = read(new Pickle().proto(2).tensor({ type: 'HalfStorage', key: 'h', numel: 2, size: [2], stride: [1] }).stop(), { h: half }) as TorchTensor;
    expect(h.dtype).toBe('float16');
    expect([...h.data]).toEqual([0x3c00, 0xc000]);
    const long = new Uint8Array(BigInt64Array.of(224n).buffer);
    const l = read(new Pickle().proto(2).tensor({ type: 'LongStorage', key: 'l', numel: 1, size: [], stride: [] }).stop(), { l: long }) as TorchTensor;
    expect(l.dtype).toBe('int64');
    expect(l.shape).toEqual([]);
    expect(l.data[0]).toBe(224n);
  });

  it('rejects sizes, strides or an offset that run past the storage', () => {
    const cases: [number, number[], number[]][] = [
      [0, [7], [1]], // one element too many
      [2, [2, 3], [3, 1]], // the offset pushes the end out
      [0, [2, 3], [1, 3]], // a stride reaches past the end
    ];
    for (const [offset, size, stride] of cases) {
      const p = new Pickle().proto(2).tensor({ type: 'FloatStorage', key: '0', numel: 6, offset, size, stride }).stop();
      const e = refused(() => read(p, { '0': float32Bytes([0, 1, 2, 3, 4, 5]) }));
      expect(e.code).toBe('E_WEIGHTS_FORMAT');
      expect(e.message).toMatch(/^t\.pkl: a float32 tensor \[.*\] \(storage offset \d+, strides \[.*\]\) reaches element \d+ of storage "0", which holds only 6 elements/);
    }
  });

  it('rejects a size and stride of different rank, and a negative size', () => {
    const rank = new Pickle().proto(2).tensor({ type: 'FloatStorage', key: '0', numel: 6, size: [2, 3], stride: [1] }).stop();
    expect(refused(() => read(rank, { '0': float32Bytes([0, 1, 2, 3, 4, 5]) })).message).toMatch(/differ in rank/);
    const negative = new Pickle().proto(2).tensor({ type: 'FloatStorage', key: '0', numel: 6, size: [-1], stride: [1] }).stop();
    expect(refused(() => read(negative, { '0': float32Bytes([0, 1, 2, 3, 4, 5]) })).message).toMatch(/not a count/);
  });

  it('unwraps _rebuild_from_type_v2, and refuses nesting past 16 levels with a clear error, not a stack overflow', () => {
    const wrapped = (levels: number): Pickle => {
      const p = new Pickle().proto(2).global('torch._tensor', '_rebuild_from_type_v2').put(0).raw(0x30);
      p.global('torch', 'Tensor').put(1).raw(0x30).global('torch._utils', '_rebuild_tensor_v2').put(2).raw(0x30);
      p.get(0);
      for (let i = 1; i < levels; i++) p.mark().get(0).get(1);
      p.mark().get(2).get(1);
      p.mark().mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(2).tuple().binpersid();
      p.int(0).ints([2]).ints([1]).bool(false).emptyDict().tuple(); // the tensor's arguments
      p.emptyDict().tuple(); // (_rebuild_tensor_v2, Tensor, args, state)
      for (let i = 1; i < levels; i++) p.emptyDict().tuple();
      return p.reduce().stop();
    };
    const t = read(wrapped(3), { '0': float32Bytes([4, 5]) }) as TorchTensor;
    expect([...t.data]).toEqual([4, 5]);
    const e = refused(() => read(wrapped(100_000), { '0': float32Bytes([4, 5]) }));
    expect(e.code).toBe('E_WEIGHTS_FORMAT');
    expect(e.message).toMatch(/torch\._tensor\._rebuild_from_type_v2 is nested more than 16 deep/);
  });

  it('unwraps _rebuild_parameter and an empty tensor', () => {
    const p = new Pickle().proto(2).global('torch._utils', '_rebuild_parameter').mark();
    p.tensor({ type: 'FloatStorage', key: '0', numel: 2, size: [0, 5], stride: [5, 1] }).bool(true);
    p.global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce().stop();
    const t = read(p, { '0': float32Bytes([1, 2]) }) as TorchTensor;
    expect(t.shape).toEqual([0, 5]);
    expect(t.data.length).toBe(0);
  });
});
