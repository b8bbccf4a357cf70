import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClipIqaError } from '../src/errors.js';
import {
  DEFAULT_REGISTRY,
  cacheRoot,
  contextsFor,
  createRegistry,
  findEntry,
  formatProgressLine,
  getEntry,
  mirrorUrl,
  parseContentRange,
  parseSource,
  type ModelEntry,
} from '../src/hub/index.js';

const OPENAI = ['RN50', 'RN101', 'RN50x4', 'RN50x16', 'RN50x64', 'ViT-B/32', 'ViT-B/16', 'ViT-L/14', 'ViT-L/14@336px'];

describe('registry', () => {
  it('holds the nine OpenAI checkpoints: the hub copy first, then each CDN URL carrying its SHA-256', () => {
    const models = DEFAULT_REGISTRY.entries.filter((e): e is ModelEntry => e.kind === 'model');
    expect(models.map((m) => m.name).slice(0, 9)).toEqual(OPENAI);
    for (const m of models.slice(0, 9)) {
      const url = m.urls[0]!;
      expect(url).toMatch(/^https:\/\/openaipublic\.azureedge\.net\/clip\/models\/[0-9a-f]{64}\//);
      expect(url.split('/')[5]).toBe(m.sha256);
      expect(url.endsWith(`/${m.fileName}`)).toBe(true);
      expect(m.urls[1]).toBe(url.replace('openaipublic.azureedge.net', 'openaipublic.blob.core.windows.net'));
      // open_clip's file by name: the repositories' model.safetensors is timm's vision-only tower.
      expect(m.hub![0]).toMatchObject({ repo: expect.stringMatching(/^timm\/.*_clip(_\d+)?\.openai$/), file: 'open_clip_model.safetensors' });
      expect(m.architecture.text.activation).toBe('quick_gelu');
      expect(m.license).toMatch(/MIT/);
      expect(m.sizeApproximate).toBe(true);
      expect(m.sizeBytes).toBeGreaterThan(200e6);
      const v = m.architecture.vision;
      expect(v.grid * (v.family === 'vit' ? v.patch : 32)).toBe(v.resolution);
    }
    expect(findEntry(DEFAULT_REGISTRY, 'RN50', 'model')!.architecture.vision).toMatchObject({ family: 'resnet', layers: [3, 4, 6, 3], resolution: 224 });
    // The pins MODEL-SOURCES.md §2.2 knows: revision and SHA-256 of open_clip_model.safetensors.
    expect(findEntry(DEFAULT_REGISTRY, 'RN50', 'model')!.hub![0]).toEqual({
      repo: 'timm/resnet50_clip.openai',
      revision: 'ec3d92cf63a5f9d591f0d611b736895966c73076',
      file: 'open_clip_model.safetensors',
      sha256: 'da0baa37fb2211eee5729ab69ed587eb10d48f5b7076ceeed01552fc3d4cb4ee',
    });
    expect(findEntry(DEFAULT_REGISTRY, 'ViT-L/14@336px', 'model')!.hub!.map((h) => h.file)).toEqual(['open_clip_model.safetensors', 'open_clip_pytorch_model.bin']);
    expect(DEFAULT_REGISTRY.defaults.model).toBe('RN50');
  });

  it("lists OpenCLIP's LAION-2B and DataComp-XL models by hub id, with exact GELU", () => {
    const want: Record<string, string> = {
      'ViT-B-32-laion2B': 'laion/CLIP-ViT-B-32-laion2B-s34B-b79K',
      'ViT-B-16-laion2B': 'laion/CLIP-ViT-B-16-laion2B-s34B-b88K',
      'ViT-L-14-laion2B': 'laion/CLIP-ViT-L-14-laion2B-s32B-b82K',
      'ViT-H-14-laion2B': 'laion/CLIP-ViT-H-14-laion2B-s32B-b79K',
      'ViT-B-32-DataComp.XL': 'laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K',
      'ViT-L-14-DataComp.XL': 'laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K',
    };
    for (const [name, repo] of Object.entries(want)) {
      const m = getEntry(DEFAULT_REGISTRY, name, 'model');
      expect(m.hub!.map((h) => [h.repo, h.file])).toEqual([
        [repo, 'open_clip_model.safetensors'],
        [repo, 'open_clip_pytorch_model.bin'],
      ]);
      expect(m.urls).toEqual([]);
      expect(m.architecture.text.activation).toBe('gelu');
      expect(m.architecture.vision).toMatchObject({ family: 'vit', activation: 'gelu' });
    }
    // ViT-H-14's heads are 80 channels wide, not 64: 16 heads, which no inference from shapes would find.
    expect(getEntry(DEFAULT_REGISTRY, 'ViT-H-14-laion2B', 'model').architecture.vision.heads).toBe(16);
    expect(getEntry(DEFAULT_REGISTRY, 'ViT-L-14-laion2B', 'model').architecture.normalization).toEqual({ mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    expect(findEntry(DEFAULT_REGISTRY, 'ViT-B-32:laion2b_s34b_b79k', 'model')?.name).toBe('ViT-B-32-laion2B');
  });

  it('describes the vocabulary and the CLIP-IQA+ contexts with their base model and positional mode', () => {
    const vocab = getEntry(DEFAULT_REGISTRY, 'vocab', 'vocab');
    expect(vocab).toMatchObject({ sha256: '924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a', sizeBytes: 1_356_917, sizeApproximate: false });
    const ctx = (n: string) => getEntry(DEFAULT_REGISTRY, n, 'context');
    expect(ctx('clipiqa+')).toMatchObject({ baseModel: 'RN50', positional: 'none', sha256: null, sha256Prefix: '603f3273', format: 'bare-tensor' });
    expect(ctx('clipiqa+_rn50_512')).toMatchObject({ baseModel: 'RN50', positional: 'interpolate', sha256Prefix: '89f5d940' });
    expect(ctx('clipiqa+_vitL14_512')).toMatchObject({ baseModel: 'ViT-L/14', positional: 'interpolate', sha256Prefix: 'e66488f2', ctxShape: [2, 16, 768] });
    const official = ctx('iter_80000');
    expect(official).toMatchObject({ name: 'clipiqa+_official', sha256: null, sha256Prefix: null, format: 'mmedit', positional: 'none' });
    expect(official.urls[0]).toBe('https://github.com/IceClear/CLIP-IQA/releases/download/Pretrained/iter_80000.pth');
    // pyiqa's files: its Hugging Face repository first, the GitHub release as fallback; the prefix is in the file name.
    for (const n of ['clipiqa+', 'clipiqa+_rn50_512', 'clipiqa+_vitL14_512']) {
      const e = ctx(n);
      expect(e.hub).toEqual([{ repo: 'chaofengc/IQA-PyTorch-Weights', file: e.fileName }]);
      expect(e.urls).toEqual([`https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/${e.fileName}`]);
      expect(e.fileName).toContain(`-${e.sha256Prefix}.pth`);
    }
    expect(contextsFor(DEFAULT_REGISTRY, 'vit-l-14').map((c) => c.name)).toEqual(['clipiqa+_vitL14_512']);
  });

  it('forgives spelling', () => {
    for (const n of ['vit-b-32', 'ViT-B/32', 'ViT-B-32', 'vitb32', ' VIT_B_32 ']) expect(findEntry(DEFAULT_REGISTRY, n, 'model')?.name).toBe('ViT-B/32');
    expect(findEntry(DEFAULT_REGISTRY, 'vit-l-14-336px', 'model')?.name).toBe('ViT-L/14@336px');
    expect(findEntry(DEFAULT_REGISTRY, 'rn50', 'model')?.name).toBe('RN50');
    expect(findEntry(DEFAULT_REGISTRY, 'CLIP-IQA+', 'context')?.name).toBe('clipiqa+');
    expect(findEntry(DEFAULT_REGISTRY, 'RN50', 'context')).toBeUndefined();
  });

  it('names what exists when a name is unknown, nearest first', () => {
    const err = (() => {
      try {
        getEntry(DEFAULT_REGISTRY, 'RN5O', 'model');
      } catch (e) {
        return e as ClipIqaError;
      }
      throw new Error('no error');
    })();
    expect(err.code).toBe('E_NOT_FOUND');
    expect(err.message).toMatch(/Unknown model "RN5O"\. Known: RN50, /);
    expect(() => getEntry(DEFAULT_REGISTRY, 'clipiqa+', 'model')).toThrow(/"clipiqa\+" is a context, not a model/);
  });

  it('takes extra entries and rejects inconsistent ones', () => {
    const rn50 = findEntry(DEFAULT_REGISTRY, 'RN50', 'model')!;
    const reg = createRegistry([{ ...rn50, name: 'tiny', aliases: [], fileName: 'tiny.safetensors', urls: ['http://127.0.0.1:1/tiny'] }]);
    expect(findEntry(reg, 'TINY', 'model')?.fileName).toBe('tiny.safetensors');
    expect(() => createRegistry([{ ...rn50, name: 'other', aliases: [] }])).toThrow(/file name RN50\.pt is also used by "RN50"/);
    expect(() => createRegistry([{ ...rn50, name: 'x', fileName: 'x.pt', aliases: ['vit-b-32'] }])).toThrow(/also used by "ViT-B\/32"/);
    expect(() => createRegistry([{ ...rn50, name: 'bad', aliases: [], fileName: 'b.pt', sha256: 'ABC' }])).toThrow(/64 lower-case hex/);
    // Same kind and name as a built-in entry: replaces it.
    const replaced = createRegistry([{ ...rn50, urls: ['http://127.0.0.1:1/RN50.pt'] }]);
    expect(findEntry(replaced, 'RN50', 'model')!.urls).toEqual(['http://127.0.0.1:1/RN50.pt']);
  });
});

describe('cache root', () => {
  const home = '/home/u';
  it('follows CLIP_IQA_HOME, then the platform convention', () => {
    expect(cacheRoot({ env: { CLIP_IQA_HOME: '/data/c' }, homedir: home, platform: 'linux' })).toBe('/data/c');
    expect(cacheRoot({ cacheDir: '/x', env: { CLIP_IQA_HOME: '/data/c' } })).toBe('/x');
    expect(cacheRoot({ env: {}, homedir: home, platform: 'linux' })).toBe('/home/u/.cache/clip-iqa');
    expect(cacheRoot({ env: { XDG_CACHE_HOME: '/xdg' }, homedir: home, platform: 'linux' })).toBe('/xdg/clip-iqa');
    expect(cacheRoot({ env: { XDG_CACHE_HOME: 'relative' }, homedir: home, platform: 'linux' })).toBe('/home/u/.cache/clip-iqa');
    expect(cacheRoot({ env: {}, homedir: home, platform: 'darwin' })).toBe('/home/u/Library/Caches/clip-iqa');
    expect(cacheRoot({ env: { LOCALAPPDATA: 'C:\\Users\\u\\AppData\\Local' }, homedir: 'C:\\Users\\u', platform: 'win32' })).toBe(
      'C:\\Users\\u\\AppData\\Local\\clip-iqa\\Cache',
    );
  });
});

describe('sources', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hub-src-'));
    await writeFile(join(dir, 'm.pt'), 'x');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('tells registry names, paths and URLs apart', async () => {
    expect(await parseSource('vit-b-32', 'model')).toMatchObject({ type: 'registry', entry: { name: 'ViT-B/32' } });
    expect(await parseSource(join(dir, 'm.pt'), 'model')).toEqual({ type: 'path', path: join(dir, 'm.pt') });
    expect(await parseSource(`file://${join(dir, 'm.pt')}`, 'model')).toEqual({ type: 'path', path: join(dir, 'm.pt') });
    const sha = 'a'.repeat(64);
    expect(await parseSource(`https://h/x/My%20Model.pt#sha256=${sha.toUpperCase()}`, 'model')).toEqual({
      type: 'url',
      url: 'https://h/x/My%20Model.pt',
      sha256: sha,
      fileName: 'My_Model.pt',
    });
    expect(await parseSource('http://h/m.pt', 'model')).toMatchObject({ type: 'url', sha256: null });
    await expect(parseSource('https://h/m.pt#sha256=abc', 'model')).rejects.toMatchObject({ code: 'E_OPTION', message: /64-hex-digit/ });
    await expect(parseSource('s3://b/m.pt', 'model')).rejects.toMatchObject({ code: 'E_OPTION' });
    await expect(parseSource('./missing.pt', 'model')).rejects.toMatchObject({ code: 'E_NOT_FOUND', message: /No such model file: .*missing\.pt/ });
    await expect(parseSource('RN51', 'model')).rejects.toMatchObject({ code: 'E_NOT_FOUND', message: /Known: RN50.*No file .*RN51 exists either/ });
    // A folder is a model (open_clip's or transformers' layout); never a vocabulary or a context.
    expect(await parseSource(dir, 'model')).toEqual({ type: 'path', path: dir, folder: true });
    await expect(parseSource(dir, 'vocab')).rejects.toMatchObject({ code: 'E_NOT_FOUND', message: /is a directory/ });
  });

  it('maps registry files onto a mirror by file name', () => {
    expect(mirrorUrl('http://intranet/clip/', 'RN50.pt')).toBe('http://intranet/clip/RN50.pt');
    expect(mirrorUrl('http://intranet/clip', 'CLIP-IQA+_learned_prompts-603f3273.pth')).toBe('http://intranet/clip/CLIP-IQA%2B_learned_prompts-603f3273.pth');
    expect(mirrorUrl('/srv/mirror', 'RN50.pt')).toBe('file:///srv/mirror/RN50.pt');
  });
});

describe('small pieces', () => {
  it('parses Content-Range strictly', () => {
    expect(parseContentRange('bytes 100-199/200')).toEqual({ start: 100, end: 199, total: 200 });
    expect(parseContentRange('bytes 0-9/*')).toEqual({ start: 0, end: 9, total: null });
    expect(parseContentRange('bytes 10-5/200')).toBeNull();
    expect(parseContentRange('bytes 0-200/200')).toBeNull();
    expect(parseContentRange('items 0-1/2')).toBeNull();
    expect(parseContentRange(undefined)).toBeNull();
  });

  it('draws a progress line with size, rate and ETA', () => {
    const line = formatProgressLine(
      { fileName: 'RN50.pt', url: 'u', bytesDone: 128 * 2 ** 20, totalBytes: 256 * 2 ** 20, resumedFrom: 0, bytesPerSecond: 10 * 2 ** 20, etaSeconds: 12.8, done: false },
      100,
    );
    expect(line).toMatch(/^RN50\.pt\s+50% \[#+-+\] 128 MiB\/256 MiB {2}10\.0 MiB\/s {2}ETA 0:13$/);
    expect(line.length).toBeLessThan(100);
  });
});
