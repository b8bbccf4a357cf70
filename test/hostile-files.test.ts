/**
 * Issue 10's attacks on the checkpoint, vocabulary and image-file readers: files of a few kilobytes that made
 * the process allocate gigabytes, loop for hours or wait forever. Each attack runs in a child process with a
 * small heap (--max-old-space-size) and a kill timeout, so a regression fails the test instead of the machine;
 * the child reports each outcome and its peak RSS. The sizes are scaled down from the attack campaign's (the
 * limits are lowered through their environment variables to match), keeping the test quick.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { deflateRawSync, gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNode } from './helpers/cli.js';
import { Pickle, buildZip, concat, float32Bytes, torchZip } from './helpers/pickle-bytes.js';
import { repoRoot } from './helpers/shared.js';

const DIR = mkdtempSync(join(tmpdir(), 'clip-iqa-hostile-'));
const DIST = join(repoRoot, 'dist');
const CHILD = join(DIR, 'child.mjs');
const MiB = 1024 * 1024;
/** What a child may reach: Node and sharp take about 100 MB; every attack used to take gigabytes. */
const MAX_RSS_MB = 400;

afterAll(() => rmSync(DIR, { recursive: true, force: true }));

beforeAll(() => {
  writeFileSync(
    CHILD,
    `import { pathToFileURL } from 'node:url';
const [dist, ...jobs] = process.argv.slice(2);
const mod = (p) => import(pathToFileURL(dist + p).href);
const { loadCheckpoint } = await mod('/weights/load.js');
const { Tokenizer } = await mod('/text/tokenizer.js');
const { decodeImage } = await mod('/image/decode.js');
for (const job of jobs) {
  const [kind, path] = job.split('=');
  process.stdout.write('start ' + path + '\\n');
  const t0 = performance.now();
  let r;
  try {
    if (kind === 'checkpoint') r = { ok: true, tensors: (await loadCheckpoint(path)).size };
    else if (kind === 'vocab') r = { ok: true, vocab: (await Tokenizer.fromFile(path)).vocabSize };
    else r = { ok: true, width: (await decodeImage(path)).width };
  } catch (e) {
    r = { ok: false, code: e.code ?? e.name, message: e.message };
  }
  process.stdout.write(JSON.stringify({ path, ms: Math.round(performance.now() - t0), ...r }) + '\\n');
}
process.stdout.write(JSON.stringify({ maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024) }) + '\\n');
`,
  );
});

interface Outcome {
  readonly path: string;
  readonly ok: boolean;
  readonly code?: string;
  readonly message?: string;
  readonly ms: number;
}

/**
 * Reads each `kind=path` in one child process and returns the outcomes in order; fails if the child crashes, is
 * killed, or grows past MAX_RSS_MB.
 */
async function readInChild(jobs: readonly string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Outcome[]> {
  const res = await runNode(['--max-old-space-size=128', CHILD, DIST, ...jobs], { env: { ...process.env, ...env }, timeoutMs });
  const lines = res.stdout.trim().split('\n');
  const started = lines.filter((l) => l.startsWith('start ')).pop();
  expect(res.signal, `the child was ended by ${res.signal} (SIGKILL: over ${timeoutMs} ms; SIGABRT: out of heap) at ${started}`).toBeNull();
  expect(res.code, `the child failed while reading ${started}: ${res.stderr.slice(-2000)}`).toBe(0);
  const results = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Outcome & { maxRssMB?: number });
  const rss = results.pop()!.maxRssMB!;
  console.log(`child peak RSS ${rss} MB; ${results.map((r) => `${basename(r.path)} ${r.ms} ms`).join(', ')}`);
  expect(rss).toBeLessThan(MAX_RSS_MB);
  expect(results).toHaveLength(jobs.length);
  return results;
}

function write(name: string, bytes: Uint8Array): string {
  const path = join(DIR, name);
  writeFileSync(path, bytes);
  return path;
}

/** A one-tensor checkpoint whose data.pkl first runs `prelude` (which must leave the stack as it found it). */
function withPrelude(prelude: (p: Pickle) => void, deflate = false): Uint8Array {
  const p = new Pickle().proto(2);
  prelude(p);
  p.tensorDict({ w: { type: 'FloatStorage', key: '0', numel: 1, size: [1], stride: [1] } }).stop();
  return torchZip(p.toBytes(), { '0': float32Bytes([1]) }, 'archive', deflate);
}

/** MARK, `n` × (the callable at memo 1 applied to the value at memo 0), LIST, POP: each rebuild kept alive. */
function rebuildMany(p: Pickle, n: number): void {
  p.mark();
  for (let i = 0; i < n; i++) p.get(1).get(0).raw(0x85).reduce();
  p.raw(0x6c, 0x30);
}

/** A memoised list (memo 0) of `n` small ints, left off the stack. */
function memoList(p: Pickle, n: number, distinct = false): void {
  p.emptyList().put(0).mark();
  for (let i = 0; i < n; i++) {
    if (distinct) p.int(i);
    else p.raw(0x4b, i & 0xff);
  }
  p.appends().raw(0x30);
}

/** A zip whose central directory lists each of `names` at one local header: every entry is the same bytes. */
function aliasedZip(pickle: Uint8Array, names: readonly string[], stream: Uint8Array, inflatedSize: number): Uint8Array {
  const zip = buildZip([
    { name: 'archive/data.pkl', data: pickle },
    { name: names[0]!, data: stream },
  ]);
  // buildZip stored the stream; rewrite its headers as a deflated entry of inflatedSize, then alias the rest.
  const view = new DataView(zip.buffer);
  const pickleEnd = 30 + 'archive/data.pkl'.length + pickle.length;
  view.setUint16(pickleEnd + 8, 8, true);
  view.setUint32(pickleEnd + 22, inflatedSize, true);
  const cdStart = view.getUint32(zip.length - 6, true);
  const cd = zip.subarray(cdStart, zip.length - 22);
  const second = 46 + 'archive/data.pkl'.length;
  const template = cd.slice(second);
  new DataView(template.buffer).setUint16(10, 8, true);
  new DataView(template.buffer).setUint32(24, inflatedSize, true);
  const enc = new TextEncoder();
  const entries = names.map((name) => {
    const nameBytes = enc.encode(name);
    const rec = new Uint8Array(46 + nameBytes.length);
    rec.set(template.subarray(0, 46));
    new DataView(rec.buffer).setUint16(28, nameBytes.length, true);
    rec.set(nameBytes, 46);
    return rec;
  });
  const newCd = concat([cd.subarray(0, second), ...entries]);
  const end = zip.slice(zip.length - 22);
  const ev = new DataView(end.buffer);
  ev.setUint16(8, names.length + 1, true);
  ev.setUint16(10, names.length + 1, true);
  ev.setUint32(12, newCd.length, true);
  return concat([zip.subarray(0, cdStart), newCd, end]);
}

describe('finding 2: pickle amplification', () => {
  it('shares what allow-listed rebuilds are given, and keeps an allocation budget for the whole load', async () => {
    // torch.Size, numpy.dtype and friends were given one memoised 100,000-element list or tuple 3,000 times and
    // copied it each time (2.4 GB of heap from a few kilobytes: a fatal OOM). Shared now, they cost nothing.
    const size = write('size.pt', withPrelude((p) => (memoList(p, 100_000), p.global('torch', 'Size').put(1).raw(0x30), rebuildMany(p, 3000)), true));
    const dtype = write(
      'dtype.pt',
      withPrelude((p) => {
        p.mark();
        for (let i = 0; i < 100_000; i++) p.raw(0x4b, i & 0xff);
        p.tuple().put(0).raw(0x30).global('numpy', 'dtype').put(1).raw(0x30);
        p.mark();
        for (let i = 0; i < 3000; i++) p.get(1).get(0).reduce();
        p.raw(0x6c, 0x30);
      }, true),
    );
    // A set must be a new object each time; copying 100,000 distinct items 3,000 times trips the budget instead.
    const set = write('set.pt', withPrelude((p) => (memoList(p, 100_000, true), p.global('builtins', 'set').put(1).raw(0x30), rebuildMany(p, 3000)), true));
    const pairs = write(
      'odict.pt',
      withPrelude((p) => {
        p.emptyList().put(0).mark();
        for (let i = 0; i < 100_000; i++) p.mark().int(i).none().tuple();
        p.appends().raw(0x30).global('collections', 'OrderedDict').put(1).raw(0x30);
        rebuildMany(p, 3000);
      }, true),
    );
    const r = await readInChild([size, dtype, set, pairs].map((p) => `checkpoint=${p}`), { CLIP_IQA_PICKLE_BUDGET: '32MiB' });
    expect(r[0]).toMatchObject({ ok: true, tensors: 1 });
    expect(r[1]).toMatchObject({ ok: true, tensors: 1 });
    for (const o of r.slice(2)) {
      expect(o).toMatchObject({ ok: false, code: 'E_WEIGHTS_FORMAT' });
      expect(o.message).toMatch(/unpickling would allocate more than 32 MiB \(pickleBudget\).*raise the limit with CLIP_IQA_PICKLE_BUDGET/);
    }
  });
});

describe('finding 3: shared containers', () => {
  it('walks a DAG of dicts (each holding the next twice, 40 deep) once, not 2^40 times', async () => {
    const p = new Pickle().proto(2);
    p.tensorDict({ w: { type: 'FloatStorage', key: '0', numel: 1, size: [1], stride: [1] } }).put(0);
    for (let d = 1; d <= 40; d++) p.emptyDict().mark().str('a').get(d - 1).str('b').get(d - 1).setitems().put(d);
    const dag = write('dag.pt', torchZip(p.stop().toBytes(), { '0': float32Bytes([1]) }));
    const [r] = await readInChild([`checkpoint=${dag}`]);
    expect(r).toMatchObject({ ok: true, tensors: 1 });
  });
});

describe('finding 4: decompression bombs', () => {
  const stream = new Uint8Array(deflateRawSync(Buffer.alloc(64 * MiB)));

  it('refuses zip entries that share one deflate stream', async () => {
    const p = new Pickle().proto(2).emptyDict().mark();
    for (const k of ['0', '1', '2']) p.str(`w${k}`).tensor({ type: 'ByteStorage', key: k, numel: 64 * MiB, size: [1], stride: [1] });
    const bomb = write('aliased.pt', aliasedZip(p.setitems().stop().toBytes(), ['archive/data/0', 'archive/data/1', 'archive/data/2'], stream, 64 * MiB));
    const [r] = await readInChild([`checkpoint=${bomb}`]);
    expect(r).toMatchObject({ ok: false, code: 'E_WEIGHTS_FORMAT' });
    expect(r!.message).toMatch(/zip entries "archive\/data\/0" and "archive\/data\/1" overlap/);
  });

  it('inflates a storage only as far as its tensors need, and data.pkl only within the pickle budget', async () => {
    const small = new Pickle().proto(2).tensorDict({ w: { type: 'ByteStorage', key: '0', numel: 4, size: [4], stride: [1] } }).stop().toBytes();
    const storage = write('storage-bomb.pt', aliasedZip(small, ['archive/data/0'], stream, 64 * MiB));
    const pickle = write('pickle-bomb.pt', buildZip([{ name: 'archive/data.pkl', data: new Uint8Array(64 * MiB).fill(0x4e), deflate: true }]));
    const [s, p] = await readInChild([`checkpoint=${storage}`, `checkpoint=${pickle}`], { CLIP_IQA_PICKLE_BUDGET: '16MiB' });
    expect(s).toMatchObject({ ok: false, code: 'E_WEIGHTS_FORMAT' });
    expect(s!.message).toMatch(/zip entry "archive\/data\/0" declares 64 MiB when inflated, more than the 4 bytes its tensors need; it is not inflated/);
    expect(p).toMatchObject({ ok: false, code: 'E_WEIGHTS_FORMAT' });
    expect(p!.message).toMatch(/"archive\/data\.pkl" declares 64 MiB when inflated, more than the 16 MiB pickle budget \(pickleBudget\)/);
  });

  it('stops a gzip vocabulary at 16 MiB unpacked', async () => {
    const vocab = write('vocab.txt.gz', gzipSync(Buffer.concat([Buffer.from('#version: 0.2\n'), Buffer.alloc(24 * MiB, 0x61)])));
    const [r] = await readInChild([`vocab=${vocab}`]);
    expect(r).toMatchObject({ ok: false, code: 'E_TOKENIZER' });
    expect(r!.message).toMatch(/it inflates to more than 16 MiB \(the real one is 3\.2 MB\)/);
  });
});

describe('finding 11: special files', () => {
  const fifo = (name: string): string => {
    const path = join(DIR, name);
    execFileSync('mkfifo', [path]);
    return path;
  };
  const fifos = process.platform !== 'win32' && existsSync('/usr/bin/mkfifo');

  it.skipIf(!fifos || !existsSync('/dev/zero'))('refuses FIFOs and devices as checkpoints, vocabularies and images instead of hanging or reading forever', async () => {
    const [pt, gz, jpg] = [fifo('m.pt'), fifo('v.txt.gz'), fifo('p.jpg')];
    const jobs = [`checkpoint=${pt}`, `vocab=${gz}`, `image=${jpg}`, 'checkpoint=/dev/zero', 'vocab=/dev/zero', 'image=/dev/zero'];
    const r = await readInChild(jobs);
    const codes = ['E_WEIGHTS_FORMAT', 'E_TOKENIZER', 'E_IMAGE'];
    const what = ['a checkpoint', 'the CLIP BPE vocabulary', 'an image'];
    r.forEach((o, i) => {
      const [kind, path] = jobs[i]!.split('=');
      expect(o, kind).toMatchObject({ ok: false, code: codes[i % 3] });
      const special = i < 3 ? 'a named pipe \\(FIFO\\)' : 'a character device';
      expect(o.message).toMatch(new RegExp(`^${path}: is ${special}, not a regular file; give the path of ${what[i % 3]}`));
    });
  });

  it('caps the size of checkpoint and image files, saying how to raise the cap', async () => {
    const png = write('big.png', await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } }).png().toBuffer());
    const pt = write('big.pt', withPrelude(() => undefined));
    const [c, i] = await readInChild([`checkpoint=${pt}`, `image=${png}`], { CLIP_IQA_MAX_CHECKPOINT_BYTES: '100', CLIP_IQA_MAX_IMAGE_BYTES: '100' });
    expect(c).toMatchObject({ ok: false, code: 'E_WEIGHTS_FORMAT' });
    expect(c!.message).toMatch(/over the 100 bytes limit for a checkpoint; .*CLIP_IQA_MAX_CHECKPOINT_BYTES/);
    expect(i).toMatchObject({ ok: false, code: 'E_IMAGE' });
    expect(i!.message).toMatch(/over the 100 bytes limit for an image; .*CLIP_IQA_MAX_IMAGE_BYTES or the maxFileBytes decode option/);
  });
});

describe('finding 12: slow paths', () => {
  it('bounds huge integers, zero-stride tensors and safetensors headers', async () => {
    // A 1 MiB LONG4 took 0.5 s per megabyte to decode.
    const long4 = torchZip(
      concat([
        Uint8Array.of(0x80, 2, 0x8b, 0, 0, 0x10, 0),
        new Uint8Array(1 << 20).fill(0x11),
        new Pickle().raw(0x30).tensorDict({ w: { type: 'FloatStorage', key: '0', numel: 1, size: [1], stride: [1] } }).stop().toBytes(),
      ]),
      { '0': float32Bytes([1]) },
    );
    // 500 bytes of storage describing a 512 MiB tensor through strides of 0.
    const stride0 = torchZip(
      new Pickle().proto(2).tensorDict({ w: { type: 'FloatStorage', key: '0', numel: 125, size: [11585, 11585], stride: [0, 0] } }).stop().toBytes(),
      { '0': float32Bytes(new Array<number>(125).fill(1)) },
    );
    // A 12 MiB header of zero-size tensors (the campaign's 75 MB one took 11 s to parse).
    const entries: string[] = [];
    for (let i = 0, len = 0; len < 12 * MiB; i++) {
      const e = `"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`;
      entries.push(e);
      len += e.length + 1;
    }
    const json = Buffer.from(`{${entries.join(',')}}`);
    const header = Buffer.alloc(8);
    header.writeBigUInt64LE(BigInt(json.length));
    const paths = [write('long4.pt', long4), write('stride0.pt', stride0), write('header.safetensors', Buffer.concat([header, json]))];
    const [l, s, h] = await readInChild(paths.map((p) => `checkpoint=${p}`));
    expect(l).toMatchObject({ ok: false, code: 'E_WEIGHTS_FORMAT' });
    expect(l!.message).toMatch(/an integer 1048576 bytes wide \(over the 65536 read\)/);
    expect(s).toMatchObject({ ok: false, code: 'E_WEIGHTS_FORMAT' });
    expect(s!.message).toMatch(/would copy 511\.\d+ MiB, more than the 500 bytes their storages hold plus 64 MiB \(expandBytes\)/);
    expect(h).toMatchObject({ ok: false, code: 'E_WEIGHTS_FORMAT' });
    expect(h!.message).toMatch(/the safetensors header is 12\.\d+ MiB, over the 8 MiB limit \(headerBytes\).*CLIP_IQA_MAX_HEADER_BYTES/);
  });
});
