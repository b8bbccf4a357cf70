/**
 * The library refuses what it does not know: unknown option keys at every entry point (with the nearest known key
 * suggested), and execution providers (`runtime.device`, `--device`) the platform's onnxruntime-node cannot use.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqa, type ClipIqaOptions } from '../src/api.js';
import { ClipIqaError } from '../src/errors.js';
import { LOAD_OPTIONS, SCORE_OPTIONS, checkOptions, editDistance, nearestKey } from '../src/known-options.js';
import { checkDevice, sessionOptions } from '../src/runtime/options.js';
import { runCli } from './helpers/cli.js';
import { VOCAB, fixture } from './helpers/shared.js';

const MODEL = fixture('tiny-rn', 'model.safetensors');

/** The ClipIqaError a call throws (or rejects with), as `CODE: message`. */
async function failure(f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(ClipIqaError);
    return `${(e as ClipIqaError).code}: ${(e as Error).message}`;
  }
  throw new Error('no error');
}

describe('unknown option keys', () => {
  it('suggests the nearest known key for slips of the hand, of case and of style', () => {
    expect(editDistance('modle', 'model')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(nearestKey('modle', LOAD_OPTIONS.keys)).toBe('model');
    expect(nearestKey('cache_dir', ['cacheDir', 'offline'])).toBe('cacheDir');
    expect(nearestKey('thread', ['threads', 'device'])).toBe('threads');
    expect(nearestKey('attribute', SCORE_OPTIONS.keys)).toBe('attributes');
    expect(nearestKey('banana', LOAD_OPTIONS.keys)).toBeUndefined();
  });

  it('refuses an unknown key at load, before anything is read or fetched', async () => {
    // A model that does not exist: the option error comes first, without a download or a file read.
    const bad = { modle: 'RN50', model: '/nonexistent/model.safetensors' } as unknown as ClipIqaOptions;
    expect(await failure(() => ClipIqa.load(bad))).toBe('E_OPTION: ClipIqa.load: unknown option "modle"; did you mean "model"?');
    expect(await failure(() => ClipIqa.load({ hub: { cachedir: '/tmp/x' } } as unknown as ClipIqaOptions))).toBe(
      'E_OPTION: ClipIqa.load: unknown option "hub.cachedir"; did you mean "hub.cacheDir"?',
    );
    expect(await failure(() => ClipIqa.load({ runtime: { thread: 2 } } as unknown as ClipIqaOptions))).toMatch(/unknown option "runtime\.thread"; did you mean "runtime\.threads"\?/);
    expect(await failure(() => ClipIqa.load({ decode: { orientaton: 'ignore' } } as unknown as ClipIqaOptions))).toMatch(/"decode\.orientaton"; did you mean "decode\.orientation"\?/);
    expect(await failure(() => ClipIqa.load({ banana: 1 } as unknown as ClipIqaOptions))).toMatch(/unknown option "banana"; known options: model, vocab, plus, /);
    expect(await failure(() => ClipIqa.load({ hub: 'offline' } as unknown as ClipIqaOptions))).toBe('E_OPTION: ClipIqa.load: the option "hub" must be an object, got string');
    expect(await failure(() => ClipIqa.load(null as unknown as ClipIqaOptions))).toBe('E_OPTION: ClipIqa.load: the options must be an object, got null');
  });

  it('lets every documented key through (typed options as they are)', () => {
    const all = Object.fromEntries(LOAD_OPTIONS.keys.map((k) => [k, undefined]));
    expect(() => checkOptions(all, LOAD_OPTIONS, 'x')).not.toThrow();
    expect(() => checkOptions({ hub: { onProgress: () => undefined, signal: new AbortController().signal, registry: { anything: 1 } } }, LOAD_OPTIONS, 'x')).not.toThrow();
    // Values inside free-form options are not keys: config entries, a background colour, a resize policy.
    expect(() =>
      checkOptions({ runtime: { configEntries: { 'session.x': '1' } }, decode: { background: { r: 1, g: 2, b: 3 }, resize: { maxSide: 512 } } }, LOAD_OPTIONS, 'x'),
    ).not.toThrow();
  });

  describe('on a loaded model', () => {
    let iqa: ClipIqa;
    beforeAll(async () => {
      iqa = await ClipIqa.load({ model: MODEL, vocab: VOCAB, featureCache: false });
    });
    afterAll(() => iqa.dispose());
    const image = { width: 32, height: 32, data: new Uint8Array(32 * 32 * 3).fill(100) };

    it('refuses unknown keys of score, scoreMany, plan, embedImage and scoreMaps', async () => {
      const any = (o: object) => o as never;
      expect(await failure(() => iqa.score(image, any({ atributes: 'look' })))).toBe('E_OPTION: score: unknown option "atributes"; did you mean "attributes"?');
      expect(await failure(() => iqa.score(image, any({ decode: { resize: { maxSide: 64 }, failon: 'none' } })))).toMatch(/score: unknown option "decode\.failon"; did you mean "decode\.failOn"\?/);
      expect(await failure(() => iqa.plan(any({ ensamble: true })))).toMatch(/plan: unknown option "ensamble"; did you mean "ensemble"\?/);
      expect(await failure(() => iqa.embedImage(image, any({ positionl: 'none' })))).toMatch(/embedImage: unknown option "positionl"; did you mean "positional"\?/);
      expect(await failure(() => iqa.scoreMaps(image, 'quality', any({ maps: ['quality'] })))).toMatch(/scoreMaps: unknown option "maps"/);
      expect(
        await failure(async () => {
          for await (const _ of iqa.scoreMany([image], any({ batches: 2 }))) void _;
        }),
      ).toMatch(/scoreMany: unknown option "batches"; did you mean "batch"\?/);
      // Known keys still work, scoreMany's own included.
      const results = [];
      for await (const r of iqa.scoreMany([image, image], { attributes: 'quality', batch: 2, concurrency: 2 })) results.push(r);
      expect(results.map((r) => r.ok)).toEqual([true, true]);
    });
  });
});

describe('execution providers', () => {
  it('runs on the CPU when asked, as by default', async () => {
    expect(sessionOptions({ device: 'cpu' }).executionProviders).toEqual(['cpu']);
    expect(sessionOptions({}).executionProviders).toEqual(['cpu']);
    const iqa = await ClipIqa.load({ model: MODEL, vocab: VOCAB, featureCache: false, runtime: { device: 'cpu' } });
    try {
      const { scores } = await iqa.score({ width: 32, height: 32, data: new Uint8Array(32 * 32 * 3).fill(80) }, { attributes: 'quality' });
      expect(scores.quality).toBeGreaterThan(0);
      expect(scores.quality).toBeLessThan(1);
    } finally {
      await iqa.dispose();
    }
  });

  it('says what is missing for a provider this platform or installation lacks', async () => {
    const backends = new Map([
      ['cpu', true],
      ['cuda', false],
    ]);
    // Linux x64 without onnxruntime-node's CUDA binaries (this project's install skips them).
    const cuda = await failure(() => checkDevice('cuda', { platform: 'linux/x64', backends, fileExists: () => false }));
    expect(cuda).toMatch(/^E_DEVICE: the CUDA execution provider is not installed: libonnxruntime_providers_cuda\.so and libonnxruntime_providers_shared\.so are missing from /);
    expect(cuda).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12 node \/\S*node_modules\/onnxruntime-node\/script\/install\.js/);
    expect(cuda).toMatch(/CUDA 12 runtime and cuDNN 9/);
    expect(checkDevice('cuda', { platform: 'linux/x64', backends, fileExists: () => true })).toBe('cuda');
    expect(await failure(() => checkDevice('coreml', { platform: 'linux/x64', backends }))).toBe(
      "E_DEVICE: the CoreML execution provider is not available on linux/x64: onnxruntime-node ships it for darwin/x64, darwin/arm64 only; use --device cpu (runtime.device 'cpu')",
    );
    expect(await failure(() => checkDevice('dml', { platform: 'darwin/arm64', backends }))).toMatch(/DirectML execution provider is not available on darwin\/arm64: .*win32\/x64, win32\/arm64/);
    expect(await failure(() => checkDevice('coreml', { platform: 'darwin/arm64', backends }))).toMatch(/CoreML execution provider is not in this build of onnxruntime-node \(it offers cpu, cuda\)/);
    expect(await failure(() => checkDevice('tpu' as never))).toBe('E_OPTION: device must be one of cpu, cuda, coreml, dml, got "tpu"');
  });

  it('refuses an unavailable device at load, before any file is read', async () => {
    // On Linux x64 without onnxruntime-node's CUDA binaries (as this project installs it): the CUDA provider.
    const ort = dirname(createRequire(import.meta.url).resolve('onnxruntime-node'));
    const cudaMissing = `${process.platform}/${process.arch}` === 'linux/x64' && !existsSync(join(ort, '..', 'bin', 'napi-v6', 'linux', 'x64', 'libonnxruntime_providers_cuda.so'));
    const device = cudaMissing ? 'cuda' : process.platform === 'darwin' ? 'dml' : 'coreml';
    const message = await failure(() => ClipIqa.load({ model: '/nonexistent/model.safetensors', runtime: { device } }));
    expect(message).toMatch(cudaMissing ? /^E_DEVICE: the CUDA execution provider is not installed: .*ONNXRUNTIME_NODE_INSTALL=cuda12 node \S*install\.js/ : /^E_DEVICE: /);
  });

  it('takes --device on the command line, and exits 2 with the reason when it cannot be used', async () => {
    const r = await runCli(['-q', '-m', MODEL, '--vocab', VOCAB, '--device', 'coreml', '--json', fixture('images', 'img0-64x64-rgb.png')]);
    if (process.platform !== 'darwin') {
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/clip-iqa: the CoreML execution provider is not available on /);
    }
    const bad = await runCli(['--device', 'tpu', 'x.png']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--device.*tpu.*Allowed choices are cpu, cuda, coreml, dml/);
    const cpu = await runCli(['-q', '-m', MODEL, '--vocab', VOCAB, '--device', 'cpu', '-a', 'quality', '--json', fixture('images', 'img0-64x64-rgb.png')]);
    expect(cpu.code, cpu.stderr).toBe(0);
    expect((JSON.parse(cpu.stdout) as { images: { scores: { quality: number } }[] }).images[0]!.scores.quality).toBeGreaterThan(0);
  });
});
