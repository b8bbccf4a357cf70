/**
 * A restricted unpickler for PyTorch checkpoints, written from the pickle opcode definitions.
 *
 * Python's pickle is a small stack machine whose GLOBAL + REDUCE opcodes can import and call anything,
 * which is how a `.pt` file can run `os.system` when `torch.load` opens it. This interpreter never imports or
 * calls anything:
 * - the few names PyTorch needs to describe tensors and containers are on an allow-list, and "calling" one of
 *   them means rebuilding the value here, from the arguments, in plain data;
 * - names whose only use in a pickle is to run code or reach the system (os, subprocess, builtins.eval, …) are
 *   refused with E_PICKLE_REFUSED the moment they are named, so a malicious file fails loudly and says what
 *   it tried;
 * - any other class (argparse.Namespace, a Lightning callback, an OmegaConf config: what training scripts
 *   pickle beside the weights) becomes an inert placeholder, which calling, instantiating or building only
 *   turns into another placeholder. A tensor built from one, or a root object that is one, is refused; the
 *   state-dict readers refuse a chosen state dict that holds one.
 *
 * Every length, index and offset is checked against the input, and what the pickle makes the reader allocate is
 * charged to a budget (`ReadLimits.pickleBudget`), so a truncated or hostile pickle ends in a ClipIqaError,
 * never a hang, a crash or an unbounded allocation.
 */
import { ClipIqaError } from '../errors.js';
import { BYTES_PER_ELEMENT, type DType, type Tensor, type TensorData, allocateTensorData, typedView } from '../tensor.js';
import { Budget, type ReadLimits, raiseHint, resolveReadLimits } from './limits.js';
import { formatBytes } from '../util/read-file.js';

// ---------------------------------------------------------------------------------------------------------
// Values

/** A global the allow-list admits, e.g. `torch._utils._rebuild_tensor_v2` or `torch.HalfStorage`. Never called. */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly kind: GlobalKind,
  ) {}

  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** The raw little-endian bytes a persistent id names, with their element type. */
export class TorchStorage {
  constructor(
    readonly dtype: DType,
    readonly bytes: Uint8Array,
    /** The storage key: the entry `data/<key>` of a zip checkpoint, or a legacy file's storage id. */
    readonly key: string,
    /** The storage whose bytes these are: `key` itself, or for a legacy storage view, the storage it views. */
    readonly root: string = key,
  ) {}

  get numel(): number {
    return this.bytes.length / BYTES_PER_ELEMENT[this.dtype];
  }
}

/** A tensor rebuilt from a storage: dense and row-major, a view of the checkpoint's bytes where possible. */
export class TorchTensor implements Tensor {
  constructor(
    readonly dtype: DType,
    readonly shape: readonly number[],
    readonly data: TensorData,
  ) {}
}

/**
 * An instance of a TorchScript class (`__torch__.*`), as `torch.jit.save` pickles modules: the attributes
 * arrive as a dict through BUILD. Nothing of the class is known or run; it is a named bag of attributes.
 */
export class TorchScriptObject {
  readonly attributes = new Map<string, PickleValue>();
  /** A BUILD state that was not a dict of attributes (a class with its own `__getstate__`). */
  state: PickleValue | undefined;

  constructor(readonly className: string) {}
}

/**
 * A value of an allow-listed data type this reader does not interpret (numpy scalars and arrays that training
 * code leaves in checkpoint metadata): the class name and its constructor arguments, kept as inert data.
 */
export class OpaqueObject {
  state: PickleValue | undefined;

  constructor(
    readonly className: string,
    readonly args: readonly PickleValue[],
  ) {}
}

/**
 * An instance of a class outside the allow-list, kept as inert data: its qualified name, the arguments the
 * pickle gave its constructor, the state given through BUILD, and the items of a dict or list subclass
 * (Lightning's AttributeDict) given through SETITEMS / APPENDS. Nothing of the class is imported or run.
 */
export class PlaceholderObject {
  state: PickleValue | undefined;
  #items: PickleDict | undefined;
  #list: PickleValue[] | undefined;

  constructor(
    readonly className: string,
    readonly args: readonly PickleValue[],
  ) {}

  /** What SETITEM(S) gave a dict subclass. */
  get items(): PickleDict {
    return (this.#items ??= new Map());
  }

  /** What APPEND(S) gave a list subclass. */
  get list(): PickleValue[] {
    return (this.#list ??= []);
  }
}

/** A placeholder instance, or a class outside the allow-list that the pickle named. */
export function isPlaceholder(v: PickleValue | undefined): v is PlaceholderObject | PickleGlobal {
  return v instanceof PlaceholderObject || (v instanceof PickleGlobal && v.kind === 'placeholder');
}

/** The class a placeholder stands for. */
export function placeholderClass(v: PlaceholderObject | PickleGlobal): string {
  return v instanceof PlaceholderObject ? v.className : v.qualifiedName;
}

/**
 * What an unpickled checkpoint is made of. Python `dict` and `OrderedDict` become a Map (insertion-ordered),
 * `list` a mutable array and `tuple` a frozen array (`isTuple`), `set`/`frozenset` a Set, `bytes` a
 * Uint8Array (a view of the input), `int` a number (a bigint beyond 2^53), `None` null.
 */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | readonly PickleValue[]
  | PickleDict
  | PickleSet
  | TorchTensor
  | TorchStorage
  | TorchScriptObject
  | OpaqueObject
  | PlaceholderObject
  | PickleGlobal;

export type PickleDict = Map<PickleValue, PickleValue>;
export type PickleSet = Set<PickleValue>;

/** A list or a tuple. (`Array.isArray` does not narrow readonly arrays.) */
export function isArray(v: PickleValue | undefined): v is readonly PickleValue[] {
  return Array.isArray(v);
}

export function isTuple(v: PickleValue | undefined): v is readonly PickleValue[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

export function isPickleDict(v: PickleValue | undefined): v is PickleDict {
  return v instanceof Map;
}

/** A short description of a value's type, for error messages. */
export function describeValue(v: PickleValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (typeof v === 'boolean') return 'a bool';
  if (typeof v === 'number' || typeof v === 'bigint') return 'an int or float';
  if (typeof v === 'string') return 'a string';
  if (v instanceof Uint8Array) return 'bytes';
  if (isArray(v)) return Object.isFrozen(v) ? `a tuple of ${v.length}` : `a list of ${v.length}`;
  if (v instanceof Map) return `a dict of ${v.size}`;
  if (v instanceof Set) return 'a set';
  if (v instanceof TorchTensor) return `a ${v.dtype} tensor [${v.shape.join(', ')}]`;
  if (v instanceof TorchStorage) return `a ${v.dtype} storage`;
  if (v instanceof TorchScriptObject) return `a TorchScript object ${v.className}`;
  if (v instanceof OpaqueObject) return `a ${v.className}`;
  if (v instanceof PlaceholderObject) return `a ${v.className} object (not read)`;
  return `the global ${v.qualifiedName}`;
}

// ---------------------------------------------------------------------------------------------------------
// The allow-list

/** How the reader treats an allowed global: which value REDUCE or NEWOBJ on it rebuilds. */
export type GlobalKind =
  | 'ordered-dict'
  | 'rebuild-tensor'
  | 'rebuild-tensor-v2'
  | 'rebuild-parameter'
  | 'rebuild-parameter-with-state'
  | 'rebuild-from-type-v2'
  | 'tensor-class'
  | 'storage-type'
  | 'dtype'
  | 'jit-identity'
  | 'jit-type-tag'
  | 'device'
  | 'size'
  | 'set'
  | 'codecs-encode'
  | 'opaque'
  | 'dict'
  | 'reconstructor'
  | 'newobj'
  | 'torchscript-class'
  | 'placeholder';

/** Storage classes as `torch.save` names them in persistent ids, and their element type. */
const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  // PyTorch 2 names untyped storages this way; they are counted in bytes.
  UntypedStorage: 'uint8',
};

const DTYPE_NAMES = [
  'float16', 'half', 'float32', 'float', 'float64', 'double', 'bfloat16',
  'int64', 'long', 'int32', 'int', 'int16', 'short', 'int8', 'uint8', 'bool',
];

const ALLOWED = new Map<string, GlobalKind>([
  ['collections.OrderedDict', 'ordered-dict'],
  // Dict subclasses that training code leaves in checkpoints (meters, counters); read as plain dicts.
  ['collections.defaultdict', 'dict'],
  ['collections.Counter', 'dict'],
  // How protocols 0 and 1 (and 2, for some classes) pickle an instance of a plain class.
  ['copyreg._reconstructor', 'reconstructor'],
  ['copy_reg._reconstructor', 'reconstructor'],
  ['copyreg.__newobj__', 'newobj'],
  ['copy_reg.__newobj__', 'newobj'],
  ['torch._utils._rebuild_tensor', 'rebuild-tensor'],
  ['torch._utils._rebuild_tensor_v2', 'rebuild-tensor-v2'],
  ['torch._utils._rebuild_parameter', 'rebuild-parameter'],
  ['torch._utils._rebuild_parameter_with_state', 'rebuild-parameter-with-state'],
  // Tensors with Python attributes (and Parameter subclasses) pickle through this wrapper since PyTorch 1.10.
  ['torch._tensor._rebuild_from_type_v2', 'rebuild-from-type-v2'],
  ['torch.Tensor', 'tensor-class'],
  ['torch.nn.parameter.Parameter', 'tensor-class'],
  // TorchScript's pickler tags typed lists and dicts with these; in Python they return their argument.
  ['torch.jit._pickle.build_intlist', 'jit-identity'],
  ['torch.jit._pickle.build_tensorlist', 'jit-identity'],
  ['torch.jit._pickle.build_doublelist', 'jit-identity'],
  ['torch.jit._pickle.build_boollist', 'jit-identity'],
  ['torch.jit._pickle.build_tensor_from_id', 'jit-identity'],
  ['torch.jit._pickle.restore_type_tag', 'jit-type-tag'],
  ['torch.device', 'device'],
  ['torch.Size', 'size'],
  // Protocol 2 has no set opcodes, so Python pickles sets through these; they are plain containers.
  ['builtins.set', 'set'],
  ['builtins.frozenset', 'set'],
  ['__builtin__.set', 'set'],
  ['__builtin__.frozenset', 'set'],
  // Protocol 2 pickles Python 3 `bytes` as _codecs.encode(text, 'latin1'); only that exact form is accepted.
  ['_codecs.encode', 'codecs-encode'],
  // Training loops leave numpy scalars (best scores, seeds) in checkpoint metadata; kept as inert records.
  ['numpy.core.multiarray.scalar', 'opaque'],
  ['numpy._core.multiarray.scalar', 'opaque'],
  ['numpy.core.multiarray._reconstruct', 'opaque'],
  ['numpy._core.multiarray._reconstruct', 'opaque'],
  ['numpy.dtype', 'opaque'],
  ['numpy.ndarray', 'opaque'],
  ...Object.keys(STORAGE_DTYPES).flatMap((s): [string, GlobalKind][] => [
    [`torch.${s}`, 'storage-type'],
    [`torch.cuda.${s}`, 'storage-type'],
  ]),
  ...DTYPE_NAMES.map((d): [string, GlobalKind] => [`torch.${d}`, 'dtype']),
]);

/**
 * Names refused outright: modules and functions whose only use in a pickle is to run code, import, or reach
 * files, processes and the network. Nothing named is ever called anyway; refusing by name makes a malicious
 * file fail loudly, saying what it tried, instead of loading with an inert placeholder.
 */
const DENIED_MODULES = [
  'os', 'posix', 'nt', 'subprocess', '_posixsubprocess', 'pty', 'sys', 'importlib', 'imp', 'runpy', 'pkgutil',
  'zipimport', 'site', 'code', 'codeop', 'commands', 'popen2', 'pickle', '_pickle', 'cPickle', 'pickletools',
  'marshal', 'shelve', 'dill', 'cloudpickle', 'joblib', 'operator', '_operator', 'functools',
  'inspect', 'ctypes', '_ctypes', 'cffi', 'multiprocessing', 'threading', '_thread', 'thread', 'asyncio',
  'signal', 'socket', '_socket', 'ssl', 'select', 'selectors', 'http', 'urllib', 'urllib2', 'urllib3',
  'requests', 'ftplib', 'smtplib', 'telnetlib', 'webbrowser', 'shutil', 'tempfile', 'glob', 'io',
  '_io', 'fileinput', 'linecache', 'pdb', 'bdb', 'timeit', 'trace', 'profile', 'cProfile', 'distutils',
  'setuptools', 'pip', 'ensurepip', 'venv', 'sysconfig', 'platform', 'gc', 'weakref', 'atexit',
  'torch.hub', 'torch.package', 'torch.serialization', 'torch.utils.cpp_extension', 'torch._dynamo',
  'torch._inductor', 'torch.ops', 'torch._ops', 'torch.distributed', 'numpy.lib.npyio', 'numpy.ctypeslib',
  'numpy.f2py', 'numpy.testing', 'numpy.distutils', 'pandas.io', 'yaml',
];
const DENIED_NAMES = new Set([
  'torch.load', 'torch.jit.load', 'torch.compile', 'numpy.load', 'pandas.read_pickle', 'types.FunctionType',
  'types.LambdaType', 'types.CodeType', 'types.MethodType', 'types.ModuleType', 'types.BuiltinFunctionType',
]);
/** Of `builtins` (`__builtin__` in Python 2) only plain data types pass; the rest (eval, exec, getattr, open, …) are refused. */
const SAFE_BUILTINS = new Set([
  'set', 'frozenset', 'object', 'bytearray', 'bytes', 'slice', 'complex', 'range', 'dict', 'list', 'tuple',
  'int', 'float', 'str', 'bool', 'unicode', 'long',
]);

function isDenied(module: string, name: string): boolean {
  if (module === 'builtins' || module === '__builtin__') return !SAFE_BUILTINS.has(name);
  if (DENIED_NAMES.has(`${module}.${name}`)) return true;
  return DENIED_MODULES.some((m) => module === m || module.startsWith(`${m}.`));
}

/** The element type a storage class global stands for. */
export function storageDType(g: PickleGlobal): DType {
  const dtype = g.kind === 'storage-type' ? STORAGE_DTYPES[g.name] : undefined;
  if (!dtype) throw new Error(`internal: ${g.qualifiedName} is not a storage type`);
  return dtype;
}

// ---------------------------------------------------------------------------------------------------------
// The interpreter

export interface UnpickleOptions {
  /** Names the input in error messages: a file, or `file.pt: archive/data.pkl`. */
  readonly source?: string;
  /** Resolves a persistent id (BINPERSID); without it, a persistent id is an error. */
  readonly persistentLoad?: (pid: PickleValue) => PickleValue;
  /** Admits TorchScript classes (`__torch__.*`) as inert attribute records: set for TorchScript archives. */
  readonly torchScriptClasses?: boolean;
  /** Limits on allocation (pickleBudget, expandBytes); unset ones come from the environment or the defaults. */
  readonly limits?: Partial<ReadLimits>;
  /**
   * The allocation budget to charge, shared by the pickles of one load; default: a fresh one of
   * `limits.pickleBudget`.
   */
  readonly budget?: Budget;
  /**
   * Checks tensor arguments but builds each tensor with no data. For a pass that only needs to know where a
   * pickle ends and which storages it names (the legacy format stores the storages after the pickle).
   */
  readonly shapesOnly?: boolean;
}

/** Unpickles the pickle at the start of `bytes`. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions = {}): PickleValue {
  return readPickle(bytes, 0, options).value;
}

/** Unpickles the pickle that starts at `offset`; `end` is the offset just past its STOP opcode. */
export function readPickle(bytes: Uint8Array, offset: number, options: UnpickleOptions = {}): { value: PickleValue; end: number } {
  return new Unpickler(bytes, offset, options).run();
}

const OPCODE_NAMES: Readonly<Record<number, string>> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT',
  0x4a: 'BININT', 0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID',
  0x51: 'BINPERSID', 0x52: 'REDUCE', 0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND', 0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT',
  0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET', 0x69: 'INST', 0x6a: 'LONG_BINGET',
  0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT', 0x72: 'LONG_BINPUT',
  0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2',
  0x87: 'TUPLE3', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL',
  0x94: 'MEMOIZE', 0x95: 'FRAME', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

const EMPTY_TUPLE: readonly PickleValue[] = Object.freeze([]);
const utf8 = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');

/**
 * Estimated heap bytes, charged to the budget: a stack or list slot, an empty container, a dict or set entry,
 * an object the reader makes. Rough on purpose: they keep a hostile pickle's footprint within a small factor of
 * the budget, while real checkpoint pickles (kilobytes to a few megabytes) stay far below it.
 */
const COST = { slot: 16, container: 64, entry: 32, object: 96, string: 24 } as const;
/** CPython (3.11+) refuses to convert longer decimal strings to int; so does this reader, for the same reason. */
const MAX_DECIMAL_DIGITS = 4300;
/** The widest binary integer (LONG4) read: checkpoints hold counters and seeds, a few bytes wide. */
const MAX_LONG_BYTES = 64 * 1024;
/** `_rebuild_from_type_v2` wraps a rebuild function once per Python subclass level; real files nest one or two. */
const MAX_REBUILD_NESTING = 16;

/** What the stack holds; MARK lives in the metastack, so it is never a value. */
type Item = PickleValue;

class Unpickler {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #source: string;
  readonly #options: UnpickleOptions;
  #pos: number;
  #opPos = 0;
  #op = 0;
  #stack: Item[] = [];
  readonly #metastack: Item[][] = [];
  readonly #memo = new Map<number, Item>();
  readonly #globals = new Map<string, PickleGlobal>();
  readonly #limits: ReadLimits;
  readonly #budget: Budget;
  /** Bytes copied to lay strided tensors out row-major, and the bytes of the storages seen (by root storage). */
  #copied = 0;
  #storageBytes = 0;
  readonly #storageSeen = new Map<string, number>();
  /** Frozen copies of lists given to `torch.Size`, reused while the list is unchanged. */
  readonly #frozenLists = new WeakMap<readonly PickleValue[], readonly PickleValue[]>();

  constructor(bytes: Uint8Array, offset: number, options: UnpickleOptions) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#source = options.source ?? 'pickle';
    this.#options = options;
    this.#pos = offset;
    this.#limits = resolveReadLimits(options.limits);
    this.#budget = options.budget ?? pickleBudget(this.#limits, this.#source);
  }

  run(): { value: PickleValue; end: number } {
    const b = this.#bytes;
    while (true) {
      if (this.#pos >= b.length) {
        this.#opPos = this.#pos;
        throw this.#corrupt(`the data ends at byte ${b.length} before the STOP opcode (truncated?)`);
      }
      this.#opPos = this.#pos;
      const op = b[this.#pos++]!;
      this.#op = op;
      switch (op) {
        case 0x80: {
          // PROTO
          const proto = this.#u8();
          if (proto > 5) throw this.#corrupt(`pickle protocol ${proto} is newer than 5, the newest this reader knows`);
          break;
        }
        case 0x95: {
          // FRAME: a length hint for buffered readers; we hold everything already, so only check it.
          const n = this.#u64();
          if (this.#pos + n > b.length) throw this.#corrupt(`a frame of ${n} bytes runs past the end of the data (truncated?)`);
          break;
        }
        case 0x2e: {
          // STOP
          const value = this.#pop();
          if (isPlaceholder(value)) {
            throw placeholderRefusal(this.#source, placeholderClass(value), 'as the pickled object itself (a pickled model rather than its weights?)');
          }
          return { value, end: this.#pos };
        }

        // Constants and numbers
        case 0x4e:
          this.#push(null);
          break;
        case 0x88:
          this.#push(true);
          break;
        case 0x89:
          this.#push(false);
          break;
        case 0x4a: {
          this.#need(4);
          this.#push(this.#view.getInt32(this.#pos, true));
          this.#pos += 4;
          break;
        }
        case 0x4b:
          this.#push(this.#u8());
          break;
        case 0x4d: {
          this.#need(2);
          this.#push(this.#view.getUint16(this.#pos, true));
          this.#pos += 2;
          break;
        }
        case 0x8a:
          this.#push(this.#long(this.#u8()));
          break;
        case 0x8b: {
          this.#need(4);
          const n = this.#view.getInt32(this.#pos, true);
          this.#pos += 4;
          if (n < 0) throw this.#corrupt(`negative length ${n}`);
          this.#push(this.#long(n));
          break;
        }
        case 0x47: {
          this.#need(8);
          this.#charge(COST.slot);
          this.#push(this.#view.getFloat64(this.#pos, false));
          this.#pos += 8;
          break;
        }
        case 0x49: {
          // INT (text): "01" and "00" are protocol 0's True and False.
          const line = this.#line();
          if (line === '01') this.#push(true);
          else if (line === '00') this.#push(false);
          else this.#push(this.#parseInt(line));
          break;
        }
        case 0x4c:
          this.#push(this.#parseInt(this.#line().replace(/L$/, '')));
          break;
        case 0x46: {
          const line = this.#line();
          const v = Number(line);
          if (line.trim() === '' || (Number.isNaN(v) && !/^[-+]?nan$/i.test(line.trim()))) throw this.#corrupt(`"${line}" is not a float`);
          this.#push(v);
          break;
        }

        // Strings and bytes
        case 0x58:
          this.#push(this.#text(this.#take(this.#u32())));
          break;
        case 0x8c:
          this.#push(this.#text(this.#take(this.#u8())));
          break;
        case 0x8d:
          this.#push(this.#text(this.#take(this.#u64())));
          break;
        case 0x54: {
          // BINSTRING / SHORT_BINSTRING: Python 2 str, which torch.load decodes as UTF-8.
          this.#need(4);
          const n = this.#view.getInt32(this.#pos, true);
          this.#pos += 4;
          if (n < 0) throw this.#corrupt(`negative length ${n}`);
          this.#push(this.#text(this.#take(n)));
          break;
        }
        case 0x55:
          this.#push(this.#text(this.#take(this.#u8())));
          break;
        case 0x53:
          // STRING (protocol 0): a Python 2 str literal, quoted and backslash-escaped.
          this.#push(this.#text(this.#escapedString(this.#lineBytes())));
          break;
        case 0x56:
          // UNICODE (protocol 0): raw-unicode-escape text.
          this.#push(this.#rawUnicode(this.#lineBytes()));
          break;
        case 0x42:
          this.#push(this.#take(this.#u32()));
          break;
        case 0x43:
          this.#push(this.#take(this.#u8()));
          break;
        case 0x8e:
        case 0x96:
          this.#push(this.#take(this.#u64()));
          break;

        // Containers
        case 0x28:
          this.#charge(COST.container);
          this.#metastack.push(this.#stack);
          this.#stack = [];
          break;
        case 0x29:
          this.#push(EMPTY_TUPLE);
          break;
        case 0x74:
          this.#push(Object.freeze(this.#popMark()));
          break;
        case 0x85:
        case 0x86:
        case 0x87: {
          const n = op - 0x84;
          if (this.#stack.length < n) throw this.#corrupt(`needs ${n} items but the stack holds ${this.#stack.length}`);
          this.#push(Object.freeze(this.#stack.splice(this.#stack.length - n, n)));
          break;
        }
        case 0x5d:
          this.#charge(COST.container);
          this.#push([]);
          break;
        case 0x6c:
          this.#push(this.#popMark());
          break;
        case 0x61: {
          const v = this.#pop();
          this.#list(this.#top()).push(v);
          break;
        }
        case 0x65: {
          const items = this.#popMark();
          const list = this.#list(this.#top());
          for (const v of items) list.push(v);
          break;
        }
        case 0x7d:
          this.#charge(COST.container);
          this.#push(new Map());
          break;
        case 0x64: {
          const items = this.#popMark();
          this.#charge(COST.container);
          const d: PickleDict = new Map();
          this.#setItems(d, items);
          this.#push(d);
          break;
        }
        case 0x73: {
          const v = this.#pop();
          const k = this.#pop();
          this.#charge(COST.entry);
          this.#dict(this.#top()).set(k, v);
          break;
        }
        case 0x75: {
          const items = this.#popMark();
          this.#setItems(this.#dict(this.#top()), items);
          break;
        }
        case 0x8f:
          this.#charge(COST.container);
          this.#push(new Set());
          break;
        case 0x90: {
          const items = this.#popMark();
          const s = this.#top();
          this.#charge(COST.entry * items.length);
          if (s instanceof PlaceholderObject) for (const v of items) s.list.push(v);
          else if (s instanceof Set) for (const v of items) s.add(v);
          else throw this.#corrupt(`ADDITEMS onto ${describeValue(s)}, not a set`);
          break;
        }
        case 0x91: {
          const items = this.#popMark();
          this.#charge(COST.container + COST.entry * items.length);
          this.#push(new Set(items));
          break;
        }

        // Stack and memo
        case 0x30:
          if (this.#stack.length > 0) this.#stack.pop();
          else this.#popMark();
          break;
        case 0x31:
          this.#popMark();
          break;
        case 0x32:
          this.#push(this.#top());
          break;
        case 0x71:
          this.#memoize(this.#u8());
          break;
        case 0x72:
          this.#memoize(this.#u32());
          break;
        case 0x70:
          this.#memoize(this.#parseIndex(this.#line()));
          break;
        case 0x94:
          this.#memoize(this.#memo.size);
          break;
        case 0x68:
          this.#push(this.#memoGet(this.#u8()));
          break;
        case 0x6a:
          this.#push(this.#memoGet(this.#u32()));
          break;
        case 0x67:
          this.#push(this.#memoGet(this.#parseIndex(this.#line())));
          break;

        // Globals and objects
        case 0x63: {
          const module = this.#line();
          const name = this.#line();
          this.#push(this.#global(module, name));
          break;
        }
        case 0x93: {
          const name = this.#pop();
          const module = this.#pop();
          if (typeof module !== 'string' || typeof name !== 'string') {
            throw this.#corrupt(`STACK_GLOBAL needs two strings, got ${describeValue(module)} and ${describeValue(name)}`);
          }
          this.#push(this.#global(module, name));
          break;
        }
        case 0x52: {
          const args = this.#pop();
          const callable = this.#pop();
          this.#push(this.#reduce(callable, args));
          break;
        }
        case 0x81: {
          const args = this.#pop();
          const cls = this.#pop();
          this.#push(this.#newObject(cls, args));
          break;
        }
        case 0x92: {
          this.#pop(); // keyword arguments: none of the classes we admit takes any
          const args = this.#pop();
          const cls = this.#pop();
          this.#push(this.#newObject(cls, args));
          break;
        }
        case 0x62: {
          const state = this.#pop();
          this.#build(this.#top(), state);
          break;
        }
        case 0x51: {
          const pid = this.#pop();
          this.#push(this.#persistent(pid));
          break;
        }
        case 0x50:
          this.#push(this.#persistent(this.#line()));
          break;
        case 0x69: {
          // INST (protocol 0): the class named inline, its arguments since the MARK.
          const cls = this.#global(this.#line(), this.#line());
          this.#push(this.#instantiate(cls, Object.freeze(this.#popMark())));
          break;
        }
        case 0x6f: {
          // OBJ (protocol 1): MARK class arg… OBJ.
          const [cls, ...args] = this.#popMark();
          if (cls === undefined) throw this.#corrupt('OBJ needs a class after the MARK');
          this.#push(this.#instantiate(cls, Object.freeze(args)));
          break;
        }
        case 0x82:
        case 0x83:
        case 0x84:
          throw new ClipIqaError(
            'E_PICKLE_REFUSED',
            `${this.#source}: refuses the pickle's ${OPCODE_NAMES[op]} opcode at byte ${this.#opPos}: it names a global through ` +
              "Python's extension registry, which checkpoints never use. The file is not a plain PyTorch checkpoint.",
          );
        case 0x97:
        case 0x98:
          throw this.#corrupt('out-of-band buffers (protocol 5 NEXT_BUFFER) are not supported: checkpoints keep data in the file');
        default:
          throw this.#corrupt(`unknown opcode 0x${op.toString(16).padStart(2, '0')}: this is not a pickle, or it is corrupt`);
      }
    }
  }

  // -- errors ---------------------------------------------------------------------------------------------

  #corrupt(what: string): ClipIqaError {
    const name = OPCODE_NAMES[this.#op] ?? `0x${this.#op.toString(16)}`;
    return new ClipIqaError(
      'E_WEIGHTS_FORMAT',
      `${this.#source}: malformed pickle at byte ${this.#opPos} (${name}): ${what}. ` +
        'The checkpoint is truncated or corrupt: re-download it, or re-save it with torch.save.',
    );
  }

  // -- reading arguments ----------------------------------------------------------------------------------

  #need(n: number): void {
    if (this.#pos + n > this.#bytes.length) {
      throw this.#corrupt(`needs ${n} bytes of argument but the data ends at byte ${this.#bytes.length} (truncated?)`);
    }
  }

  #u8(): number {
    this.#need(1);
    return this.#bytes[this.#pos++]!;
  }

  #u32(): number {
    this.#need(4);
    const v = this.#view.getUint32(this.#pos, true);
    this.#pos += 4;
    return v;
  }

  #u64(): number {
    this.#need(8);
    const v = this.#view.getBigUint64(this.#pos, true);
    this.#pos += 8;
    // Anything past 2^53 is past the end of any buffer we could hold; the caller's bounds check reports it.
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  }

  /** `n` bytes as a view of the input: zero-copy, so a large BINBYTES costs nothing. */
  #take(n: number): Uint8Array {
    if (this.#pos + n > this.#bytes.length) {
      throw this.#corrupt(`a ${n}-byte argument runs past the end of the data at byte ${this.#bytes.length} (truncated?)`);
    }
    const out = this.#bytes.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  #lineBytes(): Uint8Array {
    const end = this.#bytes.indexOf(0x0a, this.#pos);
    if (end < 0) throw this.#corrupt('a newline-terminated argument has no newline before the end of the data (truncated?)');
    const line = this.#bytes.subarray(this.#pos, end);
    this.#pos = end + 1;
    return line;
  }

  #line(): string {
    return this.#text(this.#lineBytes());
  }

  /** UTF-8 text, charged to the budget. */
  #text(bytes: Uint8Array): string {
    this.#charge(COST.string + bytes.length);
    return utf8.decode(bytes);
  }

  /** STRING's argument: `'…'` or `"…"` with Python's escapes (`codecs.escape_decode`), as bytes. */
  #escapedString(line: Uint8Array): Uint8Array {
    const q = line[0];
    if (line.length < 2 || (q !== 0x27 && q !== 0x22) || line[line.length - 1] !== q) {
      throw this.#corrupt('the STRING argument is not a quoted string');
    }
    const body = line.subarray(1, line.length - 1);
    const out = new Uint8Array(body.length);
    let n = 0;
    for (let i = 0; i < body.length; i++) {
      const c = body[i]!;
      if (c !== 0x5c || i + 1 === body.length) {
        out[n++] = c;
        continue;
      }
      const e = body[++i]!;
      const simple: Record<number, number> = { 0x5c: 0x5c, 0x27: 0x27, 0x22: 0x22, 0x61: 7, 0x62: 8, 0x66: 12, 0x6e: 10, 0x72: 13, 0x74: 9, 0x76: 11 };
      if (simple[e] !== undefined) out[n++] = simple[e];
      else if (e === 0x0a) continue; // backslash-newline: a line continuation
      else if (e === 0x78) {
        const hex = latin1.decode(body.subarray(i + 1, i + 3));
        if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw this.#corrupt('a \\x escape in a STRING lacks two hex digits');
        out[n++] = parseInt(hex, 16);
        i += 2;
      } else if (e >= 0x30 && e <= 0x37) {
        let v = e - 0x30;
        for (let k = 0; k < 2 && i + 1 < body.length && body[i + 1]! >= 0x30 && body[i + 1]! <= 0x37; k++) v = v * 8 + body[++i]! - 0x30;
        out[n++] = v & 0xff;
      } else {
        out[n++] = 0x5c; // an unknown escape keeps its backslash, as in Python
        out[n++] = e;
      }
    }
    return out.subarray(0, n);
  }

  /** UNICODE's argument (`raw-unicode-escape`): latin-1 bytes with `\uXXXX` and `\UXXXXXXXX` escapes. */
  #rawUnicode(line: Uint8Array): string {
    this.#charge(COST.string + 2 * line.length);
    return latin1.decode(line).replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, u: string | undefined, w: string | undefined) => {
      const cp = parseInt(u ?? w!, 16);
      if (cp > 0x10ffff) throw this.#corrupt(`\\U${w} is not a code point`);
      return String.fromCodePoint(cp);
    });
  }

  /** Two's-complement little-endian integer of `n` bytes (LONG1 / LONG4). */
  #long(n: number): number | bigint {
    if (n > MAX_LONG_BYTES) throw this.#corrupt(`an integer ${n} bytes wide (over the ${MAX_LONG_BYTES} read); no checkpoint holds one`);
    const bytes = this.#take(n);
    if (n === 0) return 0;
    this.#charge(COST.string + 4 * n);
    // Through a hex string written natively: linear in n (a loop in JavaScript took 0.5 s per megabyte).
    let v = BigInt(`0x${reversedHex(bytes)}`);
    if (bytes[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return toNumberIfSafe(v);
  }

  #parseInt(text: string): number | bigint {
    if (!/^\s*[-+]?\d+\s*$/.test(text)) throw this.#corrupt(`"${text.slice(0, 40)}${text.length > 40 ? '…' : ''}" is not an integer`);
    const digits = text.trim().replace(/^[-+]/, '');
    if (digits.length > MAX_DECIMAL_DIGITS) {
      throw this.#corrupt(`an integer of ${digits.length} decimal digits exceeds the ${MAX_DECIMAL_DIGITS} that Python itself converts`);
    }
    return toNumberIfSafe(BigInt(text.trim()));
  }

  #parseIndex(text: string): number {
    const v = this.#parseInt(text);
    if (typeof v !== 'number' || v < 0) throw this.#corrupt(`"${text}" is not a memo index`);
    return v;
  }

  // -- stack ----------------------------------------------------------------------------------------------

  #push(v: Item): void {
    this.#charge(COST.slot);
    this.#stack.push(v);
  }

  #charge(bytes: number): void {
    this.#budget.charge(bytes);
  }

  #memoize(i: number): void {
    this.#charge(COST.entry);
    this.#memo.set(i, this.#top());
  }

  #pop(): Item {
    if (this.#stack.length === 0) throw this.#corrupt('the stack is empty');
    return this.#stack.pop()!;
  }

  #top(): Item {
    if (this.#stack.length === 0) throw this.#corrupt('the stack is empty');
    return this.#stack[this.#stack.length - 1]!;
  }

  #popMark(): Item[] {
    const items = this.#stack;
    const outer = this.#metastack.pop();
    if (!outer) throw this.#corrupt('no MARK to pop back to');
    this.#stack = outer;
    return items;
  }

  #memoGet(i: number): Item {
    if (!this.#memo.has(i)) throw this.#corrupt(`memo entry ${i} was never stored`);
    return this.#memo.get(i)!;
  }

  /** The list APPEND(S) adds to: a list, or the items of a placeholder for a list subclass. */
  #list(v: Item): PickleValue[] {
    if (v instanceof PlaceholderObject) return v.list;
    if (!Array.isArray(v) || Object.isFrozen(v)) throw this.#corrupt(`appends onto ${describeValue(v)}, not a list`);
    return v;
  }

  /** The dict SETITEM(S) sets: a dict, or the items of a placeholder for a dict subclass. */
  #dict(v: Item): PickleDict {
    if (v instanceof Map) return v;
    if (v instanceof PlaceholderObject) return v.items;
    throw this.#corrupt(`sets an item on ${describeValue(v)}, not a dict`);
  }

  #setItems(d: PickleDict, items: Item[]): void {
    if (items.length % 2 !== 0) throw this.#corrupt(`${items.length} items do not make key-value pairs`);
    this.#charge(COST.entry * (items.length / 2));
    for (let i = 0; i < items.length; i += 2) d.set(items[i]!, items[i + 1]!);
  }

  // -- globals and objects --------------------------------------------------------------------------------

  #global(module: string, name: string): PickleGlobal {
    const qualified = `${module}.${name}`;
    const cached = this.#globals.get(qualified);
    if (cached) return cached;
    if (isDenied(module, name)) throw refusal(this.#source, qualified, module);
    let kind = ALLOWED.get(qualified);
    if (!kind && this.#options.torchScriptClasses && (module === '__torch__' || module.startsWith('__torch__.'))) {
      kind = 'torchscript-class';
    }
    this.#charge(COST.object);
    const g = new PickleGlobal(module, name, kind ?? 'placeholder');
    this.#globals.set(qualified, g);
    return g;
  }

  #args(v: Item, what: string): readonly PickleValue[] {
    if (!Array.isArray(v)) throw this.#corrupt(`the arguments of ${what} are ${describeValue(v)}, not a tuple`);
    return v;
  }

  /** REDUCE: what calling an allowed global would give, rebuilt from its arguments without calling anything. */
  #reduce(callable: Item, argsItem: Item): PickleValue {
    if (callable instanceof PlaceholderObject) return this.#placeholder(callable.className, this.#args(argsItem, callable.className));
    if (!(callable instanceof PickleGlobal)) throw this.#corrupt(`REDUCE calls ${describeValue(callable)}, which is not callable`);
    const what = callable.qualifiedName;
    const args = this.#args(argsItem, what);
    switch (callable.kind) {
      case 'placeholder':
        return this.#placeholder(what, args);
      case 'ordered-dict': {
        const d: PickleDict = new Map();
        const init = args[0];
        if (init !== undefined && init !== null) {
          if (!Array.isArray(init)) throw this.#corrupt(`${what} is given ${describeValue(init)}, not a list of pairs`);
          this.#charge(COST.container + COST.entry * init.length);
          for (const pair of init) {
            if (!Array.isArray(pair) || pair.length !== 2) throw this.#corrupt(`${what} is given ${describeValue(pair)}, not a pair`);
            d.set(pair[0]!, pair[1]!);
          }
        }
        return d;
      }
      case 'dict': {
        // defaultdict(factory) or Counter(dict): the factory is irrelevant to reading; the items follow by SETITEMS.
        const d: PickleDict = new Map();
        const init = args[0];
        if (init instanceof Map) {
          this.#charge(COST.container + COST.entry * init.size);
          for (const [k, v] of init) d.set(k, v);
        }
        return d;
      }
      case 'reconstructor': {
        // copyreg._reconstructor(cls, base, state): `base.__new__(cls)`, then the state (protocols 0 and 1).
        const [cls] = args;
        return this.#newObject(cls ?? null, EMPTY_TUPLE);
      }
      case 'newobj': {
        const [cls, ...rest] = args;
        return this.#newObject(cls ?? null, Object.freeze(rest));
      }
      case 'rebuild-tensor':
      case 'rebuild-tensor-v2':
        return this.#tensor(args, what);
      case 'rebuild-parameter':
      case 'rebuild-parameter-with-state': {
        const data = args[0];
        if (isPlaceholder(data)) throw placeholderRefusal(this.#source, placeholderClass(data), `as the data of ${what}`);
        if (!(data instanceof TorchTensor)) throw this.#corrupt(`${what} is given ${describeValue(data)}, not a tensor`);
        return data;
      }
      case 'rebuild-from-type-v2': {
        // (func, new_type, args, state): the tensor is func(*args); the Python subclass and its state are dropped.
        // func may itself be this wrapper (a subclass of a subclass): unwrapped in a loop, to a bounded depth.
        let wrapped = args;
        for (let depth = 1; ; depth++) {
          const [func, , inner] = wrapped;
          if (isPlaceholder(func)) throw placeholderRefusal(this.#source, placeholderClass(func), `as the function that rebuilds a tensor in ${what}`);
          if (!(func instanceof PickleGlobal) || !func.kind.startsWith('rebuild-')) {
            throw this.#corrupt(`${what} wraps ${describeValue(func)}, not a tensor rebuild function`);
          }
          if (func.kind !== 'rebuild-from-type-v2') return this.#reduce(func, inner ?? null);
          if (depth >= MAX_REBUILD_NESTING) throw this.#corrupt(`${what} is nested more than ${MAX_REBUILD_NESTING} deep`);
          wrapped = this.#args(inner ?? null, what);
        }
      }
      case 'jit-identity':
      case 'jit-type-tag':
        if (args.length < 1) throw this.#corrupt(`${what} needs an argument`);
        return args[0]!;
      case 'device': {
        const [type, index] = args;
        if (typeof type !== 'string') throw this.#corrupt(`${what} is given ${describeValue(type)}, not a device name`);
        return typeof index === 'number' ? `${type}:${index}` : type;
      }
      case 'size': {
        const dims = args[0] ?? EMPTY_TUPLE;
        if (!Array.isArray(dims)) throw this.#corrupt(`${what} is given ${describeValue(dims)}, not a tuple`);
        // Shared, not copied: a memoised argument may be rebuilt thousands of times. A tuple is immutable; a
        // list can only grow (APPEND), so its frozen copy stays valid while its length is unchanged.
        if (Object.isFrozen(dims)) return dims;
        const cached = this.#frozenLists.get(dims);
        if (cached && cached.length === dims.length) return cached;
        this.#charge(COST.container + COST.slot * dims.length);
        const copy = Object.freeze(dims.slice());
        this.#frozenLists.set(dims, copy);
        return copy;
      }
      case 'set': {
        const items = args[0] ?? EMPTY_TUPLE;
        if (!Array.isArray(items) && !(items instanceof Set)) throw this.#corrupt(`${what} is given ${describeValue(items)}`);
        this.#charge(COST.container + COST.entry * (items instanceof Set ? items.size : items.length));
        return new Set(items);
      }
      case 'codecs-encode': {
        const [text, encoding] = args;
        if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
          throw refusal(this.#source, `${what} with arguments other than (text, 'latin1')`, callable.module);
        }
        this.#charge(COST.string + text.length);
        const out = new Uint8Array(text.length);
        for (let i = 0; i < text.length; i++) {
          const c = text.charCodeAt(i);
          if (c > 0xff) throw this.#corrupt(`${what}: character U+${c.toString(16)} is not latin-1`);
          out[i] = c;
        }
        return out;
      }
      case 'opaque':
        this.#charge(COST.object);
        return new OpaqueObject(what, args);
      default:
        throw this.#corrupt(`${what} cannot be called`);
    }
  }

  /** NEWOBJ: `cls.__new__(cls, *args)` for the classes we admit; a placeholder for any other class. */
  #newObject(cls: Item, argsItem: Item): PickleValue {
    if (cls instanceof PlaceholderObject) return this.#placeholder(cls.className, this.#args(argsItem, cls.className));
    if (!(cls instanceof PickleGlobal)) throw this.#corrupt(`NEWOBJ instantiates ${describeValue(cls)}, which is not a class`);
    const args = this.#args(argsItem, cls.qualifiedName);
    switch (cls.kind) {
      case 'placeholder':
        return this.#placeholder(cls.qualifiedName, args);
      case 'torchscript-class':
        this.#charge(COST.object);
        return new TorchScriptObject(cls.qualifiedName);
      case 'ordered-dict':
      case 'dict':
        this.#charge(COST.container);
        return new Map();
      case 'set':
        this.#charge(COST.container);
        return new Set();
      case 'opaque':
        this.#charge(COST.object);
        return new OpaqueObject(cls.qualifiedName, args);
      case 'size':
        return this.#reduce(cls, argsItem);
      default:
        throw this.#corrupt(`${cls.qualifiedName} cannot be instantiated`);
    }
  }

  /** INST / OBJ (protocols 0 and 1): `cls(*args)`, or `cls.__new__(cls)` for a class given no arguments. */
  #instantiate(cls: Item, args: readonly PickleValue[]): PickleValue {
    const isClass = cls instanceof PlaceholderObject || (cls instanceof PickleGlobal && !cls.kind.startsWith('rebuild-') && cls.kind !== 'codecs-encode');
    return args.length === 0 && isClass ? this.#newObject(cls, args) : this.#reduce(cls, args);
  }

  #placeholder(className: string, args: readonly PickleValue[]): PlaceholderObject {
    this.#charge(COST.object);
    return new PlaceholderObject(className, args);
  }

  /** BUILD: `obj.__setstate__(state)`, or setting attributes from a dict. */
  #build(obj: Item, state: Item): void {
    if (obj instanceof TorchScriptObject) {
      if (state instanceof Map && [...state.keys()].every((k) => typeof k === 'string')) {
        this.#charge(COST.entry * state.size);
        for (const [k, v] of state) obj.attributes.set(k as string, v);
      } else {
        obj.state = state;
      }
      return;
    }
    if (obj instanceof OpaqueObject || obj instanceof PlaceholderObject) {
      obj.state = state;
      return;
    }
    // A state_dict() is an OrderedDict carrying a `_metadata` attribute (per-module versions); a tensor may
    // carry Python attributes; a placeholder class has nothing to set. None changes the values we read.
    if (obj instanceof Map || obj instanceof TorchTensor || isPlaceholder(obj)) return;
    throw this.#corrupt(`BUILD on ${describeValue(obj)}`);
  }

  #persistent(pid: PickleValue): PickleValue {
    const load = this.#options.persistentLoad;
    if (!load) throw this.#corrupt('a persistent id (a reference to data outside the pickle) where none is expected');
    this.#charge(COST.object);
    return load(pid);
  }

  // -- tensors --------------------------------------------------------------------------------------------

  /** `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`. */
  #tensor(args: readonly PickleValue[], what: string): TorchTensor {
    const [storage, offset, size, stride] = args;
    if (isPlaceholder(storage)) throw placeholderRefusal(this.#source, placeholderClass(storage), `as the storage of a tensor (${what})`);
    if (!(storage instanceof TorchStorage)) throw this.#corrupt(`${what} is given ${describeValue(storage)}, not a storage`);
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
      throw this.#corrupt(`${what} is given the storage offset ${String(offset)}`);
    }
    const shape = this.#dims(size, `${what} size`);
    const strides = this.#dims(stride, `${what} stride`);
    if (shape.length !== strides.length) {
      throw this.#corrupt(`${what}: size [${shape.join(', ')}] and stride [${strides.join(', ')}] differ in rank`);
    }
    this.#charge(COST.object + COST.slot * 2 * shape.length);
    if (this.#options.shapesOnly) return new TorchTensor(storage.dtype, shape, allocateTensorData(storage.dtype, 0));
    const seen = this.#storageSeen.get(storage.root) ?? 0;
    if (storage.bytes.length > seen) {
      this.#storageBytes += storage.bytes.length - seen;
      this.#storageSeen.set(storage.root, storage.bytes.length);
    }
    return rebuildTensor(storage, offset, shape, strides, {
      source: this.#source,
      budget: (bytes) => {
        // A strided layout over distinct elements copies at most the storage it views; only overlapping strides
        // (0 in an expanded tensor) make more, and those get `expandBytes` beyond the storages' own size.
        this.#copied += bytes;
        const allowed = this.#storageBytes + this.#limits.expandBytes;
        if (this.#copied > allowed) {
          throw new ClipIqaError(
            'E_WEIGHTS_FORMAT',
            `${this.#source}: laying out strided tensors would copy ${formatBytes(this.#copied)}, more than the ` +
              `${formatBytes(this.#storageBytes)} their storages hold plus ${formatBytes(this.#limits.expandBytes)} (expandBytes): ` +
              'strides of 0 or overlapping strides describe a huge tensor with a few bytes. The checkpoint is corrupt or hostile; ' +
              `${raiseHint('expandBytes')}, or save contiguous tensors.`,
          );
        }
      },
    });
  }

  #dims(v: PickleValue | undefined, what: string): number[] {
    if (!Array.isArray(v)) throw this.#corrupt(`${what} is ${describeValue(v)}, not a tuple`);
    const out: number[] = [];
    for (const d of v) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) throw this.#corrupt(`${what} holds ${String(d)}, not a count`);
      out.push(d);
    }
    return out;
  }
}

/** The allocation budget of one load, failing with a message that says how to raise it. */
export function pickleBudget(limits: ReadLimits, source: string): Budget {
  return new Budget(
    limits.pickleBudget,
    () =>
      new ClipIqaError(
        'E_WEIGHTS_FORMAT',
        `${source}: unpickling would allocate more than ${formatBytes(limits.pickleBudget)} (pickleBudget) for containers, ` +
          'strings and numbers. Real checkpoints need a few megabytes; this one is hostile (objects rebuilt over and over) ' +
          `or holds an unusual amount of non-tensor data; ${raiseHint('pickleBudget')}.`,
      ),
  );
}

function toNumberIfSafe(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

const TORCH_HINT =
  'It is a PyTorch object this reader does not rebuild (only dense tensors, parameters and containers are read: ' +
  'no quantized, sparse or custom tensor types). Save a state dict of plain tensors, or convert it to safetensors.';

function refusal(source: string, qualified: string, module: string): ClipIqaError {
  const hint =
    module === 'torch' || module.startsWith('torch.')
      ? TORCH_HINT
      : 'Nothing in the file was run. If it is meant to be a checkpoint, it holds more than tensors ' +
        '(a pickled model object, or code); save model.state_dict() with torch.save, or convert it to safetensors.';
  return new ClipIqaError(
    'E_PICKLE_REFUSED',
    `${source}: refuses to load global ${qualified}: checkpoints may only hold tensors and containers, ` +
      `and importing ${qualified} could run code. ${hint}`,
  );
}

/**
 * The error for weights that depend on a class outside the allow-list: `where` says how (", the pickled object
 * itself", "the storage of a tensor", "under "state_dict"").
 */
export function placeholderRefusal(source: string, className: string, where: string): ClipIqaError {
  const hint =
    className.startsWith('torch.') || className.startsWith('__torch__')
      ? TORCH_HINT
      : 'Nothing in the file was run: objects of classes this reader does not know are kept as inert placeholders, ' +
        'but the weights cannot depend on one. If it is a pickled model, load it in Python and save ' +
        'model.state_dict() with torch.save, or convert it to safetensors.';
  return new ClipIqaError('E_PICKLE_REFUSED', `${source}: refuses to load global ${className} ${where}. ${hint}`);
}
// ---------------------------------------------------------------------------------------------------------
// Rebuilding a tensor from its storage

/** Any TensorData seen through the operations the gather needs; source and destination share one dtype. */
interface Strided {
  [index: number]: number | bigint;
  subarray(begin: number, end: number): Strided;
  set(src: Strided, offset: number): void;
}

/**
 * The dense row-major tensor that `size`/`stride` describe over `storage` from element `offset`.
 * A contiguous layout is a view of the storage bytes (no copy unless misaligned); any other layout is
 * gathered, copying whole runs where the innermost dimensions are contiguous.
 */
export function rebuildTensor(
  storage: TorchStorage,
  offset: number,
  shape: readonly number[],
  strides: readonly number[],
  context: { source: string; budget?: (bytes: number) => void },
): TorchTensor {
  const { dtype } = storage;
  const rank = shape.length;
  let count = 1;
  let last = offset; // the highest element index the tensor touches
  for (let d = 0; d < rank; d++) {
    count *= shape[d]!;
    if (shape[d]! > 0) last += (shape[d]! - 1) * strides[d]!;
  }
  const describe = () => `${dtype} tensor [${shape.join(', ')}] (storage offset ${offset}, strides [${strides.join(', ')}])`;
  if (!Number.isSafeInteger(count) || !Number.isSafeInteger(last)) {
    throw new ClipIqaError('E_WEIGHTS_FORMAT', `${context.source}: a ${describe()} has an impossible size; the checkpoint is corrupt.`);
  }
  if (count === 0) return new TorchTensor(dtype, shape, allocateTensorData(dtype, 0));
  if (last >= storage.numel) {
    throw new ClipIqaError(
      'E_WEIGHTS_FORMAT',
      `${context.source}: a ${describe()} reaches element ${last} of storage "${storage.key}", ` +
        `which holds only ${storage.numel} elements. The checkpoint is corrupt or truncated: re-download it.`,
    );
  }

  // Trailing dimensions laid out row-major form one run that can be copied whole (size-1 dims do not matter).
  let run = 1;
  let outer = rank;
  while (outer > 0 && (shape[outer - 1] === 1 || strides[outer - 1] === run)) {
    run *= shape[outer - 1]!;
    outer--;
  }
  const size = BYTES_PER_ELEMENT[dtype];
  if (outer === 0) return new TorchTensor(dtype, shape, typedView(dtype, storage.bytes, offset * size, count));

  context.budget?.(count * size);
  const src = typedView(dtype, storage.bytes, offset * size, last - offset + 1) as unknown as Strided;
  const dst = allocateTensorData(dtype, count) as unknown as Strided;
  const index = new Array<number>(outer).fill(0);
  const inner = outer - 1; // the dimension walked by the innermost loop, in steps of `run` elements
  const innerSize = shape[inner]!;
  const innerStride = strides[inner]!;
  let base = 0; // element of src (relative to offset) where the current innermost row starts
  let out = 0;
  while (out < count) {
    let s = base;
    if (run === 1) {
      for (let i = 0; i < innerSize; i++, s += innerStride) dst[out++] = src[s]!;
    } else {
      for (let i = 0; i < innerSize; i++, s += innerStride) {
        dst.set(src.subarray(s, s + run), out);
        out += run;
      }
    }
    // Advance the outer index like an odometer, keeping `base` in step.
    for (let d = inner - 1; d >= 0; d--) {
      index[d]!++;
      base += strides[d]!;
      if (index[d]! < shape[d]!) break;
      base -= index[d]! * strides[d]!;
      index[d] = 0;
    }
  }
  return new TorchTensor(dtype, shape, dst as unknown as TensorData);
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** The bytes in reverse order as hex: natively in Node, by table in the browser build (which has no Buffer). */
function reversedHex(bytes: Uint8Array): string {
  if (typeof Buffer !== 'undefined') return Buffer.from(bytes).reverse().toString('hex');
  const parts = new Array<string>(bytes.length);
  for (let i = 0; i < bytes.length; i++) parts[bytes.length - 1 - i] = HEX[bytes[i]!]!;
  return parts.join('');
}
