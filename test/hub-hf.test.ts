/**
 * Models from the Hugging Face hub against a loopback hub that answers as the real one (helpers/hf-hub.ts): hf:
 * ids, HF_ENDPOINT, tokens (sent to the hub only, never to the CDN, never written or shown), the hub's SHA-256
 * checked before a file enters the cache, commits recorded and used offline, relative redirects, Range resume,
 * the huggingface_hub cache used where it lies, several sources per registry entry with a message listing each,
 * `models list`, the server and the CLI end to end.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { createRegistry, listModels, pullModel, removeModel, resolveSource, verifyCache, type HubOptions, type ModelEntry } from '../src/hub/index.js';
import { startServer as startApiServer } from '../src/server/index.js';
import { runCli } from './helpers/cli.js';
import { startHfHub, writeHfCache, type HfHub } from './helpers/hf-hub.js';
import { caught, tree, useHubFixture } from './helpers/hub-fixture.js';
import { VOCAB, fixture } from './helpers/shared.js';

const GELU = fixture('formats', 'openclip-vit-gelu');
const HFVIT = fixture('formats', 'hf-vit');
const files = (dir: string, names: string[]) => Object.fromEntries(names.map((n) => [n, readFileSync(join(dir, n))]));
const GELU_FILES = files(GELU, ['open_clip_model.safetensors', 'open_clip_config.json', 'clipiqa+-ctx.pth']);
const HFVIT_FILES = files(HFVIT, ['model.safetensors', 'config.json']);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const TOKEN = 'hf_loopbackSecret123';

// The URL-served file of registry tests (tiny-rn) and fast retries come from the shared hub fixture.
const base = useHubFixture('hub-hf-', { connectTimeoutMs: 3000, stallTimeoutMs: 3000 });
let hf: HfHub;
beforeAll(async () => {
  hf = await startHfHub(
    {
      'laion/gelu': { files: GELU_FILES },
      'openai/hf-vit': { files: HFVIT_FILES },
      'acme/private': { files: GELU_FILES, private: true },
      'acme/corrupt': { files: GELU_FILES, corrupt: ['open_clip_model.safetensors'] },
      'fixture/tiny-rn': { files: { 'open_clip_model.safetensors': readFileSync(fixture('tiny-rn', 'model.safetensors')) } },
    },
    { token: TOKEN },
  );
});
afterAll(() => hf.close());
beforeEach(() => {
  hf.hub.requests.length = 0;
  hf.cdn.requests.length = 0;
});

/** Hub options pointing at the loopback hub, through the environment as users set it; never a real token file. */
const opts = (env: NodeJS.ProcessEnv = {}, extra: HubOptions = {}): HubOptions =>
  base.opts(undefined, { env: { HF_ENDPOINT: hf.endpoint, HF_TOKEN_PATH: join(tmpdir(), 'no-such-hf-token'), ...env }, ...extra });

describe('hf: ids', () => {
  it('fetches a model and its config, verified against the hub’s SHA-256, kept per commit; then needs no network', async () => {
    const r = await resolveSource('hf:laion/gelu', 'model', opts());
    const commit = hf.commitOf('laion/gelu');
    expect(r).toMatchObject({ source: 'hf', downloaded: true, verification: 'hub', sha256: sha(GELU_FILES['open_clip_model.safetensors']!) });
    expect(r.repo).toEqual({ id: 'laion/gelu', revision: 'main', commit });
    expect(r.path).toBe(join(base.root, 'hf', 'laion--gelu', commit, 'open_clip_model.safetensors'));
    expect(r.config).toBe(join(base.root, 'hf', 'laion--gelu', commit, 'open_clip_config.json'));
    const manifest = JSON.parse(await readFile(`${r.path}.meta.json`, 'utf8'));
    expect(manifest).toMatchObject({ repo: 'laion/gelu', revision: 'main', commit, verification: 'hub', config: 'open_clip_config.json' });
    expect(JSON.parse(await readFile(`${r.config}.meta.json`, 'utf8'))).toMatchObject({ verification: 'git-sha1', commit });
    expect((await readFile(join(base.root, 'hf', 'laion--gelu', 'refs', 'main'), 'utf8')).trim()).toBe(commit);
    // The weights' bytes came from the CDN, after the hub's redirect.
    expect(hf.requests().filter((q) => q.host === 'cdn').map((q) => q.method)).toEqual(['GET']);

    hf.hub.requests.length = 0;
    hf.cdn.requests.length = 0;
    const again = await resolveSource('hf:laion/gelu', 'model', opts({ HF_HUB_OFFLINE: '1' }));
    expect(again).toMatchObject({ path: r.path, config: r.config, downloaded: false, verification: 'hub' });
    expect(hf.requests()).toEqual([]);
  });

  it('picks open_clip_model.safetensors, else model.safetensors (transformers) with config.json; names a revision and a file', async () => {
    const r = await resolveSource('hf:openai/hf-vit', 'model', opts());
    expect(r.path.endsWith('/model.safetensors')).toBe(true);
    expect(r.config?.endsWith('/config.json')).toBe(true);
    // The absent open_clip file was asked for first, and answered 404.
    expect(hf.hub.requests.map((q) => [q.method, q.path.split('/resolve/')[1], q.status])[0]).toEqual(['HEAD', 'main/open_clip_model.safetensors', 404]);

    const commit = hf.commitOf('laion/gelu');
    const ctx = await resolveSource(`hf:laion/gelu@${commit}/clipiqa+-ctx.pth`, 'context', opts());
    expect(ctx).toMatchObject({ source: 'hf', verification: 'hub', config: null, repo: { id: 'laion/gelu', revision: commit, commit } });
    await expect(resolveSource('hf:laion/gelu', 'context', opts())).rejects.toMatchObject({ code: 'E_OPTION', message: /a CLIP-IQA\+ context is one file in it: write hf:laion\/gelu\/<file name>/ });
    await expect(resolveSource('hf:laion/gelu@nope', 'model', opts())).rejects.toMatchObject({ code: 'E_DOWNLOAD' });
  });

  it('follows the hub’s relative redirect of a small file (307 to /api/resolve-cache) and checks its git blob id', async () => {
    const r = await resolveSource('hf:openai/hf-vit/config.json', 'vocab', opts());
    expect(r.verification).toBe('git-sha1');
    expect(await readFile(r.path)).toEqual(HFVIT_FILES['config.json']);
    const heads = hf.hub.requests.filter((q) => q.method === 'HEAD').map((q) => [q.path, q.status]);
    expect(heads).toEqual([
      ['/openai/hf-vit/resolve/main/config.json', 307],
      [`/api/resolve-cache/models/openai/hf-vit/${hf.commitOf('openai/hf-vit')}/config.json`, 200],
    ]);
  });

  it('HF_ENDPOINT decides where the hub is; a wrong one fails naming it', async () => {
    const err = await caught(resolveSource('hf:laion/gelu', 'model', base.opts(undefined, { env: { HF_ENDPOINT: 'http://127.0.0.1:1' }, retries: 0 })));
    expect(err.code).toBe('E_DOWNLOAD');
    expect(err.message).toContain('http://127.0.0.1:1');
    expect(hf.requests()).toEqual([]);
  });

  it('private repositories: 401 without a token says what to do; the token goes to the hub only, never to the CDN, a file or a message', async () => {
    const denied = await caught(resolveSource('hf:acme/private', 'model', opts()));
    expect(denied.code).toBe('E_DOWNLOAD');
    expect(denied.message).toMatch(/HTTP 401 for acme\/private: .*private or gated.*set HF_TOKEN/);

    for (const env of [{ HF_TOKEN: TOKEN }, { HUGGING_FACE_HUB_TOKEN: TOKEN }]) {
      await rm(join(base.root, 'hf'), { recursive: true, force: true });
      hf.hub.requests.length = 0;
      hf.cdn.requests.length = 0;
      const r = await resolveSource('hf:acme/private', 'model', opts(env));
      expect(r.downloaded).toBe(true);
      const reqs = hf.requests();
      expect(reqs.filter((q) => q.host === 'hub').every((q) => q.authorization === `Bearer ${TOKEN}`)).toBe(true);
      expect(reqs.filter((q) => q.host === 'cdn').length).toBeGreaterThan(0);
      expect(reqs.filter((q) => q.host === 'cdn').every((q) => q.authorization === undefined)).toBe(true);
    }
    // huggingface-cli login's token file, under HF_HOME.
    const home = join(base.root, 'hf-home');
    await mkdir(home);
    await writeFile(join(home, 'token'), `${TOKEN}\n`);
    await rm(join(base.root, 'hf'), { recursive: true, force: true });
    expect((await resolveSource('hf:acme/private', 'model', opts({ HF_HOME: home, HF_TOKEN_PATH: undefined }))).downloaded).toBe(true);

    // A wrong token: refused, and the message names where it came from, not what it is.
    await rm(join(base.root, 'hf'), { recursive: true, force: true });
    const wrong = await caught(resolveSource('hf:acme/private', 'model', opts({ HF_TOKEN: 'hf_wrongToken' })));
    expect(wrong.message).toMatch(/the token from HF_TOKEN does not give access/);
    expect(wrong.message).not.toContain('hf_wrongToken');
    for (const f of await tree(base.root)) if (!f.startsWith('hf-home')) expect(await readFile(join(base.root, f), 'utf8'), f).not.toContain(TOKEN);
    expect(base.logs.join('\n')).not.toContain(TOKEN);
  });

  it('a wrong hash: E_CHECKSUM, nothing of the model cached', async () => {
    const err = await caught(resolveSource('hf:acme/corrupt', 'model', opts()));
    expect(err.code).toBe('E_CHECKSUM');
    expect(err.message).toContain(`expected sha256 ${sha(GELU_FILES['open_clip_model.safetensors']!)} (as the hub published it)`);
    expect(await tree(join(base.root, 'hf'))).toEqual([]);
  });

  it('resumes from the CDN with Range after a cut', async () => {
    const body = GELU_FILES['open_clip_model.safetensors']!;
    hf.cdn.route(`/repos/laion/gelu/blobs/${sha(body)}`, { body, cutAfterBytes: Math.floor(body.length / 2) });
    try {
      const r = await resolveSource('hf:laion/gelu', 'model', opts());
      expect(sha(await readFile(r.path))).toBe(sha(body));
      const gets = hf.cdn.requests.map((q) => [q.status, q.headers.range ?? null]);
      expect(gets[0]).toEqual([200, null]);
      expect(gets[1]![0]).toBe(206);
      expect(gets[1]![1]).toMatch(/^bytes=\d+-$/);
    } finally {
      hf.cdn.route(`/repos/laion/gelu/blobs/${sha(body)}`, { body });
    }
  });
});

describe('the huggingface_hub cache', () => {
  let hfCache: string;
  beforeEach(async () => {
    hfCache = await mkdtemp(join(tmpdir(), 'hf-cache-'));
  });
  afterEach(() => rm(hfCache, { recursive: true, force: true }));

  it('is used where it lies, read-only, offline, with no request; refs name the commit', async () => {
    const commit = 'c'.repeat(40);
    await writeHfCache(hfCache, 'laion/gelu', commit, GELU_FILES);
    const before = await tree(hfCache);
    const r = await resolveSource('hf:laion/gelu', 'model', opts({ HF_HUB_OFFLINE: '1', HF_HUB_CACHE: hfCache }, { hfCacheDir: undefined }));
    expect(r).toMatchObject({ source: 'hf', verification: 'hf-cache', downloaded: false, sha256: sha(GELU_FILES['open_clip_model.safetensors']!) });
    expect(r.path).toBe(join(hfCache, 'models--laion--gelu', 'snapshots', commit, 'open_clip_model.safetensors'));
    expect(r.config).toBe(join(hfCache, 'models--laion--gelu', 'snapshots', commit, 'open_clip_config.json'));
    expect(hf.requests()).toEqual([]);
    expect(await tree(hfCache)).toEqual(before);
    expect(await tree(base.root)).toEqual([]);
    // HF_HOME/hub is the default place.
    const home = join(hfCache, 'home');
    await writeHfCache(join(home, 'hub'), 'laion/gelu', commit, GELU_FILES);
    expect((await resolveSource(`hf:laion/gelu@${commit}`, 'model', opts({ HF_HUB_OFFLINE: '1', HF_HOME: home }, { hfCacheDir: undefined }))).path).toContain(join(home, 'hub'));

    // The model loads from there, and scores as the reference.
    const iqa = await ClipIqa.load({ model: 'hf:laion/gelu', vocab: VOCAB, featureCache: false, hub: opts({ HF_HUB_OFFLINE: '1', HF_HUB_CACHE: hfCache }, { hfCacheDir: undefined }) });
    try {
      expect(iqa.describe()).toMatch(/GELU$/);
      const expected = JSON.parse(readFileSync(join(GELU, 'expected.json'), 'utf8'));
      const image = expected.images[0];
      const { scores } = await iqa.score(fixture('images', image), { attributes: 'quality' });
      expect(Math.abs(scores.quality! - expected.variants.fp32.scores[image].none.attributes.quality)).toBeLessThanOrEqual(1e-4);
    } finally {
      await iqa.dispose();
    }
  });

  it('ignores a snapshot link that leads outside the repository’s blobs, and an incomplete model', async () => {
    const commit = 'd'.repeat(40);
    await writeHfCache(hfCache, 'laion/gelu', commit, GELU_FILES);
    const snap = join(hfCache, 'models--laion--gelu', 'snapshots', commit);
    const outside = join(hfCache, 'elsewhere.safetensors');
    await writeFile(outside, GELU_FILES['open_clip_model.safetensors']!);
    await rm(join(snap, 'open_clip_model.safetensors'));
    await symlink(relative(snap, outside), join(snap, 'open_clip_model.safetensors'));
    const err = await caught(resolveSource('hf:laion/gelu', 'model', opts({ HF_HUB_OFFLINE: '1', HF_HUB_CACHE: hfCache }, { hfCacheDir: undefined })));
    expect(err.code).toBe('E_OFFLINE');
    expect(err.message).toMatch(/HF_HUB_OFFLINE=1/);
    expect(err.message).toContain('huggingface-cli download laion/gelu open_clip_model.safetensors open_clip_config.json --revision main');
  });

  it('serves a registry entry’s pinned hub copy, checked by its blob name', async () => {
    const commit = 'e'.repeat(40);
    const weights = readFileSync(fixture('tiny-rn', 'model.safetensors'));
    await writeHfCache(hfCache, 'fixture/tiny-rn', commit, { 'open_clip_model.safetensors': weights });
    const entry = base.entry('pinned', '/unused', { hub: [{ repo: 'fixture/tiny-rn', revision: commit, file: 'open_clip_model.safetensors', sha256: sha(weights) }] });
    const reg = createRegistry([entry]);
    const r = await resolveSource('pinned', 'model', { ...opts({ HF_HUB_CACHE: hfCache }, { hfCacheDir: undefined }), registry: reg, offline: true });
    expect(r).toMatchObject({ source: 'registry', verification: 'hf-cache', entry: { name: 'pinned' } });
    // Another pin: not that file.
    const other = createRegistry([{ ...entry, hub: [{ ...entry.hub![0]!, sha256: 'a'.repeat(64) }] }]);
    expect((await caught(resolveSource('pinned', 'model', { ...opts({ HF_HUB_CACHE: hfCache }, { hfCacheDir: undefined }), registry: other, offline: true }))).code).toBe('E_OFFLINE');
  });
});

describe('registry entries with several sources', () => {
  const tinyRn = () => readFileSync(fixture('tiny-rn', 'model.safetensors'));
  const entry = (hub: ModelEntry['hub'], path = '/tiny'): ModelEntry => base.entry('multi', path, { hub });

  it('the hub copy first; a pinned hash the hub does not publish skips it without a download; then the publisher', async () => {
    base.server.route('/tiny', { body: base.payload });
    // Pinned to the right hash: from the hub, verified as pinned.
    const pinned = await resolveSource('multi', 'model', { ...opts(), registry: createRegistry([entry([{ repo: 'fixture/tiny-rn', file: 'open_clip_model.safetensors', sha256: sha(tinyRn()) }])]) });
    expect(pinned).toMatchObject({ source: 'registry', verification: 'sha256', repo: { id: 'fixture/tiny-rn' } });
    expect(base.server.count()).toBe(0);
    await rm(join(base.root, 'hf'), { recursive: true, force: true });

    // Pinned to another hash: the hub's own answer rules it out before any byte; the publisher's URL serves.
    hf.cdn.requests.length = 0;
    const reg = createRegistry([entry([{ repo: 'fixture/tiny-rn', file: 'open_clip_model.safetensors', sha256: 'b'.repeat(64) }])]);
    const r = await resolveSource('multi', 'model', { ...opts(), registry: reg });
    expect(r).toMatchObject({ source: 'registry', verification: 'sha256', url: base.server.url('/tiny'), repo: null });
    expect(hf.cdn.requests).toEqual([]);
    expect(base.logs.join('\n')).toMatch(/Hugging Face hf:fixture\/tiny-rn \(open_clip_model\.safetensors\) failed \(the hub publishes sha256 [0-9a-f]{64} .* not the pinned b{64}; nothing was downloaded\); trying the next source/);
  });

  it('when every source fails, the message lists each and why', async () => {
    const reg = createRegistry([{ ...entry([{ repo: 'fixture/missing', file: 'open_clip_model.safetensors' }], '/gone'), urls: [base.server.url('/gone'), base.server.url('/gone-too')] }]);
    const err = await caught(resolveSource('multi', 'model', { ...opts(), registry: reg }));
    expect(err.code).toBe('E_DOWNLOAD');
    expect(err.message).toMatch(/^Could not get the model multi from any of its 2 sources:/);
    expect(err.message).toMatch(/Hugging Face hf:fixture\/missing \(open_clip_model\.safetensors\): fixture\/missing has none of open_clip_model\.safetensors at revision main/);
    expect(err.message).toContain(`${base.server.url('/gone')}: HTTP 404 Not Found`);
    expect(err.message).toContain(`${base.server.url('/gone-too')}: HTTP 404 Not Found`);
    expect(await tree(base.root)).toEqual([]);
  });

  it('offline, the message names every source with where to place its file', async () => {
    const reg = createRegistry([entry([{ repo: 'fixture/tiny-rn', revision: 'f'.repeat(40), file: 'open_clip_model.safetensors' }])]);
    const err = await caught(resolveSource('multi', 'model', { ...opts({ CLIP_IQA_OFFLINE: '1' }), registry: reg }));
    expect(err.code).toBe('E_OFFLINE');
    expect(err.message).toContain(`place it at:   ${join(base.root, 'hf', 'fixture--tiny-rn', 'f'.repeat(40), 'open_clip_model.safetensors')}`);
    expect(err.message).toContain(`place it at:   ${join(base.root, 'models', 'multi', 'multi.safetensors')}`);
    expect(hf.requests()).toEqual([]);
  });
});

describe('models commands with hub files', () => {
  it('list shows sources and verification; verify re-hashes against the record; rm removes weights and config', async () => {
    await resolveSource('hf:laion/gelu', 'model', opts());
    const list = await listModels(opts());
    const rn50 = list.find((i) => i.name === 'RN50')!;
    expect(rn50.sources).toEqual([
      'Hugging Face hf:timm/resnet50_clip.openai@ec3d92cf63a5f9d591f0d611b736895966c73076 (open_clip_model.safetensors)',
      'the huggingface_hub cache, hf:timm/resnet50_clip.openai@ec3d92cf63a5f9d591f0d611b736895966c73076 (open_clip_model.safetensors)',
      expect.stringMatching(/^https:\/\/openaipublic\.azureedge\.net\/.*RN50\.pt, then https:\/\/openaipublic\.blob\.core\.windows\.net\/.*RN50\.pt$/),
    ]);
    const commit = hf.commitOf('laion/gelu');
    const item = list.find((i) => i.source === 'hf')!;
    expect(item).toMatchObject({ name: `hf:laion/gelu@${commit}/open_clip_model.safetensors`, cached: true, verification: 'hub', repo: { id: 'laion/gelu', commit } });
    expect(item.verified).toBe(`hub sha256, trust on first use (commit ${commit.slice(0, 12)})`);
    // The config goes with its model, not on a line of its own.
    expect(list.filter((i) => i.source === 'hf')).toHaveLength(1);

    const report = await verifyCache(opts());
    expect(report.find((x) => x.name === item.name)).toMatchObject({ status: 'ok', verification: 'hub' });

    const removed = await removeModel('hf:laion/gelu', opts());
    expect(removed.map((p) => p.split('/').pop()).sort()).toEqual(['open_clip_config.json', 'open_clip_config.json.meta.json', 'open_clip_model.safetensors', 'open_clip_model.safetensors.meta.json']);
    // pull --force asks the hub again.
    hf.hub.requests.length = 0;
    await pullModel('hf:laion/gelu', { ...opts(), force: true });
    expect(hf.hub.requests.some((q) => q.path.includes('/resolve/main/'))).toBe(true);
  });
});

describe('a context with a published SHA-256 prefix (pyiqa’s), from its hub repository', () => {
  it('is checked against the hub’s hash and the prefix before download, and by models verify after', async () => {
    const ctx = GELU_FILES['clipiqa+-ctx.pth']!;
    const { findEntry, DEFAULT_REGISTRY } = await import('../src/hub/index.js');
    const pyiqa = findEntry(DEFAULT_REGISTRY, 'clipiqa+', 'context')!;
    const entry = { ...pyiqa, name: 'ctx', aliases: [], fileName: 'ctx.pth', hub: [{ repo: 'laion/gelu', file: 'clipiqa+-ctx.pth' }], urls: [], sha256Prefix: sha(ctx).slice(0, 8) };
    const r = await resolveSource('ctx', 'context', { ...opts(), registry: createRegistry([entry]) });
    expect(r).toMatchObject({ source: 'registry', verification: 'hub', repo: { id: 'laion/gelu' } });
    const report = await verifyCache({ ...opts(), registry: createRegistry([entry]), names: ['ctx'] });
    expect(report[0]).toMatchObject({ status: 'ok', verification: 'sha256-prefix' });

    hf.cdn.requests.length = 0;
    const wrong = createRegistry([{ ...entry, name: 'ctx2', fileName: 'ctx2.pth', sha256Prefix: '00000000' }]);
    const err = await caught(resolveSource('ctx2', 'context', { ...opts(), registry: wrong }));
    expect(err.message).toMatch(/does not start with the published 00000000; nothing was downloaded/);
    expect(hf.cdn.requests).toEqual([]);
  });
});

describe('hf: ids in the server and the CLI', () => {
  let home: string;
  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'hub-hf-cli-'));
  });
  afterAll(() => rm(home, { recursive: true, force: true }));

  it('the server loads an hf: model (workers find it in the cache) and scores with it', async () => {
    const hub = { cacheDir: join(home, 'server'), env: { HF_ENDPOINT: hf.endpoint }, hfCacheDir: null, quiet: true };
    const { app, url } = await startApiServer({ model: { model: 'hf:laion/gelu', vocab: VOCAB, hub }, port: 0, ui: false });
    try {
      const info = (await (await fetch(`${url}/v1/models`)).json()) as { model: { name: string; description: string } };
      expect(info.model.name).toBe('hf:laion/gelu');
      expect(info.model.description).toMatch(/GELU$/);
      const image = readFileSync(fixture('images', 'img0-64x64-rgb.png'));
      const r = await fetch(`${url}/v1/score?attributes=quality&plus=false&name=x.png`, { method: 'POST', body: image, headers: { 'content-type': 'image/png' } });
      expect(r.status).toBe(200);
      const doc = (await r.json()) as { images: { scores: Record<string, number> }[] };
      const expected = JSON.parse(readFileSync(join(GELU, 'expected.json'), 'utf8'));
      expect(Math.abs(doc.images[0]!.scores.quality! - expected.variants.fp32.scores['img0-64x64-rgb.png'].none.attributes.quality)).toBeLessThanOrEqual(1e-4);
    } finally {
      await app.close();
    }
  });

  it('clip-iqa score -m hf:ORG/NAME --json IMAGE, with HF_ENDPOINT; models list shows it', async () => {
    const env = { CLIP_IQA_HOME: join(home, 'cli'), HF_ENDPOINT: hf.endpoint, HF_HUB_CACHE: join(home, 'no-hf-cache') };
    const image = fixture('images', 'img1-96x80-rgb.png');
    const r = await runCli(['score', '-m', 'hf:laion/gelu', '--vocab', VOCAB, '--plus', 'hf:laion/gelu/clipiqa+-ctx.pth', '-a', 'quality,sharpness', '--json', image], { env });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { model: string; images: { scores: Record<string, number> }[] };
    expect(doc.model).toBe('hf:laion/gelu');
    const expected = JSON.parse(readFileSync(join(GELU, 'expected.json'), 'utf8'));
    const want = expected.variants.fp32.scores['img1-96x80-rgb.png'].none.attributes;
    expect(Math.abs(doc.images[0]!.scores.quality! - want.quality)).toBeLessThanOrEqual(1e-4);
    expect(Math.abs(doc.images[0]!.scores.sharpness! - want.sharpness)).toBeLessThanOrEqual(1e-4);
    expect(Math.abs(doc.images[0]!.scores['clipiqa+']! - expected.variants.fp32['clipiqa+']['img1-96x80-rgb.png'])).toBeLessThanOrEqual(1e-4);

    const list = await runCli(['models', 'list'], { env });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/hf:laion\/gelu@[0-9a-f]{40}\/open_clip_model\.safetensors .*hub sha256, trust on first use/);
    expect(list.stdout).toMatch(/RN50 .*\n {2}sources: Hugging Face hf:timm\/resnet50_clip\.openai@ec3d92cf63a5… \(open_clip_model\.safetensors\) → https:\/\/openaipublic\.azureedge\.net\//);
    // Offline, from the cache, with the hub's variable.
    const offline = await runCli(['score', '-m', 'hf:laion/gelu', '--vocab', VOCAB, '-a', 'quality', '--json', image], { env: { ...env, HF_ENDPOINT: 'http://127.0.0.1:1', HF_HUB_OFFLINE: '1' } });
    expect(offline.code, offline.stderr).toBe(0);
    expect(existsSync(join(home, 'cli', 'hf', 'laion--gelu', 'refs', 'main'))).toBe(true);
    expect((await readdir(join(home, 'cli', 'hf', 'laion--gelu'))).sort()).toEqual([hf.commitOf('laion/gelu'), 'refs'].sort());
  });
});
