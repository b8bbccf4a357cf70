import onnxProto from 'onnx-proto';
import { ClipIqaError } from '../errors.js';

// onnx-proto is CommonJS with `module.exports = { onnx }`; Node's ESM loader only exposes it as the default export.
const { onnx } = onnxProto;
type ITensorProto = onnxProto.onnx.ITensorProto;
type INodeProto = onnxProto.onnx.INodeProto;
type IValueInfoProto = onnxProto.onnx.IValueInfoProto;
type IAttributeProto = onnxProto.onnx.IAttributeProto;

/** ONNX opset the towers are written against: 17 brings LayerNormalization into the default domain. */
export const OPSET = 17;
/** IR version 8 is what onnx-proto (ONNX 1.10) describes and what every onnxruntime since 1.10 reads. */
const IR_VERSION = 8;

export type ElementType = 'float32' | 'uint8' | 'int8' | 'uint16' | 'int32' | 'int64';

const ELEMENT_TYPES: Record<ElementType, onnxProto.onnx.TensorProto.DataType> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  uint8: onnx.TensorProto.DataType.UINT8,
  int8: onnx.TensorProto.DataType.INT8,
  uint16: onnx.TensorProto.DataType.UINT16,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
};

/** A dimension: a fixed size, or a name that onnxruntime treats as a free (dynamic) dimension. */
export type Dim = number | string;

/** Marks an attribute value as FLOAT; plain numbers are INT attributes, which is what ONNX means by most of them. */
export interface FloatAttr {
  readonly float: number;
}
export type AttrValue = number | readonly number[] | string | FloatAttr;
export const float = (value: number): FloatAttr => ({ float: value });

/** Initializer data the builder accepts, without copying, as the tensor's raw bytes. */
export type InitializerData = Float32Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

function elementTypeOf(data: InitializerData): ElementType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int8Array) return 'int8';
  return 'uint8';
}

/** One in-memory "file" of external initializer data, as onnxruntime-node's `externalData` session option takes it. */
export interface ExternalFile {
  readonly path: string;
  readonly data: Uint8Array;
}

/** A serialised model: the protobuf bytes plus the initializers kept outside them. */
export interface SerializedModel {
  readonly bytes: Uint8Array;
  readonly external: readonly ExternalFile[];
}

export interface SerializeOptions {
  /**
   * Initializers of at least this many bytes are stored as external data rather than inside the protobuf.
   * A protobuf message cannot exceed 2 GiB, so large towers (RN50x64, ViT-L) only load this way; it also
   * spares protobufjs one copy of every weight and onnxruntime a protobuf parse of it (RN50's image tower loads in
   * about 0.2 s this way against 1.1 s inline). Default 1 MiB; `Infinity` keeps everything inline. Only float
   * and int8 weight tensors ever go outside.
   */
  readonly externalMinBytes?: number;
}

const DEFAULT_EXTERNAL_MIN_BYTES = 1 << 20;
/** protobuf's hard limit on one serialised message. */
const PROTOBUF_LIMIT = 2 ** 31 - 1;

interface Initializer {
  readonly name: string;
  readonly type: ElementType;
  readonly dims: readonly number[];
  readonly data: InitializerData;
}

function bytesOf(data: InitializerData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function attribute(name: string, value: AttrValue): IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: ${value} is not an integer; wrap float attributes in float()`);
    return { name, type: T.INT, i: value };
  }
  if ('float' in value) return { name, type: T.FLOAT, f: value.float };
  return { name, type: T.INTS, ints: [...value] };
}

function valueInfo(name: string, type: ElementType, dims: readonly Dim[]): IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEMENT_TYPES[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/**
 * A small typed builder of ONNX graphs: inputs and outputs with named dynamic dimensions,
 * initializers from typed arrays (never copied until serialisation), nodes with generated
 * output names. Node and value names are unique per builder.
 */
export class GraphBuilder {
  readonly #name: string;
  readonly #nodes: INodeProto[] = [];
  readonly #inputs: IValueInfoProto[] = [];
  readonly #outputs: IValueInfoProto[] = [];
  readonly #initializers: Initializer[] = [];
  readonly #names = new Set<string>();
  /** Operator domains other than the default one (e.g. `com.microsoft` contrib ops), each imported at version 1. */
  readonly #domains = new Set<string>();
  #counter = 0;

  constructor(name: string) {
    this.#name = name;
  }

  #claim(name: string): string {
    if (this.#names.has(name)) throw new Error(`graph ${this.#name}: the name "${name}" is used twice`);
    this.#names.add(name);
    return name;
  }

  #fresh(hint: string): string {
    let name: string;
    do name = `${hint}_${this.#counter++}`;
    while (this.#names.has(name));
    return this.#claim(name);
  }

  input(name: string, type: ElementType, dims: readonly Dim[]): string {
    this.#inputs.push(valueInfo(this.#claim(name), type, dims));
    return name;
  }

  /** Declares `value` (a node output) as a graph output under its own name. */
  output(value: string, type: ElementType, dims: readonly Dim[]): void {
    this.#outputs.push(valueInfo(value, type, dims));
  }

  /** A weight or constant table. `name` is kept when given (handy when reading a dumped graph). */
  initializer(data: InitializerData, dims: readonly number[], name?: string): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) {
      throw new Error(`graph ${this.#name}: initializer ${name ?? ''} of shape [${dims.join(', ')}] needs ${count} values, got ${data.length}`);
    }
    const type = elementTypeOf(data);
    const claimed = name === undefined ? this.#fresh('const') : this.#claim(name);
    this.#initializers.push({ name: claimed, type, dims: [...dims], data });
    return claimed;
  }

  /** A small float32 constant (scalars: dims []). */
  floats(values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.initializer(Float32Array.from(values), dims);
  }

  /** A small int64 constant, e.g. a Reshape target or Slice bounds. */
  ints(values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.initializer(BigInt64Array.from(values.map((v) => BigInt(v))), dims);
  }

  /** Adds a node with `outputCount` fresh outputs and returns their names. */
  nodeN(op: string, inputs: readonly string[], outputCount: number, attrs: Record<string, AttrValue> = {}, domain = ''): string[] {
    const outputs = Array.from({ length: outputCount }, () => this.#fresh(op));
    if (domain !== '') this.#domains.add(domain);
    this.#nodes.push({
      opType: op,
      domain,
      name: outputs[0],
      input: [...inputs],
      output: outputs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outputs;
  }

  /** Adds a node with one output and returns its name. */
  node(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, domain = ''): string {
    return this.nodeN(op, inputs, 1, attrs, domain)[0]!;
  }

  /** Renames the value `value` to `name` by an Identity node, so that graph outputs get stable names. */
  named(value: string, name: string): string {
    this.#nodes.push({ opType: 'Identity', name: this.#claim(name), input: [value], output: [name] });
    return name;
  }

  serialize(options: SerializeOptions = {}): SerializedModel {
    const threshold = options.externalMinBytes ?? DEFAULT_EXTERNAL_MIN_BYTES;
    const external: ExternalFile[] = [];
    let inlineBytes = 0;
    const initializer: ITensorProto[] = this.#initializers.map((t) => {
      const proto: ITensorProto = { name: t.name, dataType: ELEMENT_TYPES[t.type], dims: [...t.dims] };
      const bytes = bytesOf(t.data);
      // int64 initializers are shape and index constants that onnxruntime's shape inference must read from the
      // protobuf itself; they are tiny, so they always stay inline. Quantised (int8) weights may go outside.
      if ((t.type === 'float32' || t.type === 'int8') && bytes.byteLength >= threshold) {
        // One in-memory file per tensor: onnxruntime copies each one at session creation, so nothing is concatenated
        // here. Files are numbered rather than named after tensors, whose names need not be valid relative paths.
        const path = `initializer-${external.length}.bin`;
        external.push({ path, data: bytes });
        proto.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
        proto.externalData = [
          { key: 'location', value: path },
          { key: 'offset', value: '0' },
          { key: 'length', value: String(bytes.byteLength) },
        ];
      } else {
        proto.rawData = bytes;
        inlineBytes += bytes.byteLength;
      }
      return proto;
    });
    if (inlineBytes >= PROTOBUF_LIMIT) {
      throw new ClipIqaError(
        'E_RUNTIME',
        `graph ${this.#name}: ${(inlineBytes / 2 ** 30).toFixed(2)} GiB of weights cannot be held inside one ONNX protobuf ` +
          '(2 GiB limit); store them as external data (serialize with a finite externalMinBytes).',
      );
    }
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      producerName: 'clip-iqa',
      opsetImport: [{ domain: '', version: OPSET }, ...[...this.#domains].map((domain) => ({ domain, version: 1 }))],
      graph: {
        name: this.#name,
        node: this.#nodes,
        input: this.#inputs,
        output: this.#outputs,
        initializer,
      },
    });
    return { bytes: onnx.ModelProto.encode(model).finish(), external };
  }
}
