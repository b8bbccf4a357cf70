/**
 * Byte builders for hand-made pickles, zip archives and legacy torch.save files, so tests can describe
 * malformed and hostile checkpoints exactly (no Python-generated binaries in the repository).
 */
import { crc32, deflateRawSync } from 'node:zlib';

const enc = new TextEncoder();

export interface TensorSpec {
  /** The storage class: FloatStorage, HalfStorage, … */
  readonly type: string;
  readonly key: string;
  /** Elements the storage holds. */
  readonly numel: number;
  readonly offset?: number;
  readonly size: readonly number[];
  readonly stride: readonly number[];
  /** Write the legacy (pre-1.6) persistent id, which has a sixth field. */
  readonly legacy?: boolean;
}

/** A pickle assembler: each method appends one opcode with its argument. */
export class Pickle {
  readonly #out: number[] = [];

  raw(...bytes: number[]): this {
    for (const b of bytes) this.#out.push(b & 0xff);
    return this;
  }

  #u32(n: number): number[] {
    return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
  }

  proto(v = 2): this {
    return this.raw(0x80, v);
  }
  /** GLOBAL 'module\nname\n'. */
  global(module: string, name: string): this {
    return this.raw(0x63, ...enc.encode(`${module}\n${name}\n`));
  }
  stackGlobal(): this {
    return this.raw(0x93);
  }
  /** BINUNICODE. */
  str(s: string): this {
    const b = enc.encode(s);
    return this.raw(0x58, ...this.#u32(b.length), ...b);
  }
  shortStr(s: string): this {
    const b = enc.encode(s);
    return this.raw(0x8c, b.length, ...b);
  }
  /** The smallest of BININT1 / BININT2 / BININT that holds n. */
  int(n: number): this {
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    if (n >= 0 && n < 65536) return this.raw(0x4d, n & 0xff, n >> 8);
    return this.raw(0x4a, ...this.#u32(n));
  }
  /** LONG1 of a bigint, two's complement little-endian. */
  long(v: bigint): this {
    const bytes: number[] = [];
    let x = v;
    while (true) {
      bytes.push(Number(x & 0xffn));
      x >>= 8n;
      const sign = bytes[bytes.length - 1]! & 0x80;
      if ((x === 0n && !sign) || (x === -1n && sign)) break;
    }
    return this.raw(0x8a, bytes.length, ...bytes);
  }
  float(v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, false);
    return this.raw(0x47, ...b);
  }
  bytes(b: Uint8Array): this {
    return this.raw(0x43, b.length, ...b);
  }
  none(): this {
    return this.raw(0x4e);
  }
  bool(v: boolean): this {
    return this.raw(v ? 0x88 : 0x89);
  }
  mark(): this {
    return this.raw(0x28);
  }
  tuple(): this {
    return this.raw(0x74);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  emptyList(): this {
    return this.raw(0x5d);
  }
  appends(): this {
    return this.raw(0x65);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  setitem(): this {
    return this.raw(0x73);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  put(i: number): this {
    return this.raw(0x71, i);
  }
  get(i: number): this {
    return this.raw(0x68, i);
  }
  memoize(): this {
    return this.raw(0x94);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  newobj(): this {
    return this.raw(0x81);
  }
  build(): this {
    return this.raw(0x62);
  }
  binpersid(): this {
    return this.raw(0x51);
  }
  stop(): this {
    return this.raw(0x2e);
  }

  /** A tuple of ints, MARK … TUPLE. */
  ints(values: readonly number[]): this {
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }

  /**
   * `torch._utils._rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False,
   * OrderedDict())`, as torch.save writes a tensor.
   */
  tensor(t: TensorSpec): this {
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.mark().str('storage').global('torch', t.type).str(t.key).str('cpu').int(t.numel);
    if (t.legacy) this.none(); // legacy files add view metadata, None unless the storage is a view
    this.tuple().binpersid();
    this.int(t.offset ?? 0).ints(t.size).ints(t.stride).bool(false);
    this.global('collections', 'OrderedDict').emptyTuple().reduce();
    return this.tuple().reduce();
  }

  /** A dict of tensors: EMPTY_DICT MARK (str, tensor)… SETITEMS. */
  tensorDict(entries: Record<string, TensorSpec>): this {
    this.emptyDict().mark();
    for (const [k, t] of Object.entries(entries)) this.str(k).tensor(t);
    return this.setitems();
  }

  toBytes(): Uint8Array {
    return Uint8Array.from(this.#out);
  }
}

export function float32Bytes(values: readonly number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

export interface ZipInput {
  readonly name: string;
  readonly data: Uint8Array;
  /** Compress with DEFLATE (torch never does; a re-zipped checkpoint might). */
  readonly deflate?: boolean;
}

/** A minimal zip writer: local headers, data, central directory, end record. */
export function buildZip(files: readonly ZipInput[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const f of files) {
    const name = enc.encode(f.name);
    const body = f.deflate ? new Uint8Array(deflateRawSync(f.data)) : f.data;
    const crc = crc32(f.data);
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(8, f.deflate ? 8 : 0, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, body.length, true);
    lv.setUint32(22, f.data.length, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const cd = new Uint8Array(46 + name.length);
    const cv = new DataView(cd.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(10, f.deflate ? 8 : 0, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, body.length, true);
    cv.setUint32(24, f.data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    cd.set(name, 46);
    chunks.push(local, body);
    central.push(cd);
    offset += local.length + body.length;
  }
  const cdSize = central.reduce((n, c) => n + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, files.length, true);
  ev.setUint16(10, files.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  return concat([...chunks, ...central, end]);
}

/** A torch.save-style zip: `<top>/data.pkl`, `<top>/data/<key>` for each storage, `<top>/version`. */
export function torchZip(pickle: Uint8Array, storages: Record<string, Uint8Array>, top = 'archive', deflate = false): Uint8Array {
  return buildZip([
    { name: `${top}/data.pkl`, data: pickle, deflate },
    ...Object.entries(storages).map(([k, data]) => ({ name: `${top}/data/${k}`, data, deflate })),
    { name: `${top}/version`, data: enc.encode('3\n') },
  ]);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An int64 little-endian, as legacy torch.save writes each storage's element count. */
export function int64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigInt64(0, BigInt(n), true);
  return b;
}
