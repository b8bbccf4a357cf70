/**
 * The cache as users meet it: resolving names, paths and URLs; offline mode; mirrors; files placed by hand;
 * list / pull / verify / rm; concurrent pulls (in one process and across processes); cache directories that
 * cannot be written.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_REGISTRY,
  cachePath,
  createRegistry,
  findEntry,
  listModels,
  pullModel,
  removeModel,
  resolveFile,
  resolveSource,
  verifyCache,
  type ResolvedFile,
} from '../src/hub/index.js';
import { runNode } from './helpers/cli.js';
import { caught, sha256, tree, useHubFixture } from './helpers/hub-fixture.js';
import { fixture, repoRoot } from './helpers/shared.js';

const hub = useHubFixture('hub-cache-');
const { entry, opts } = hub;
const RN50 = findEntry(DEFAULT_REGISTRY, 'RN50', 'model')!;


describe('resolveFile', () => {
  it('needs no network once a file is cached', async () => {
    hub.server.route('/m', { body: hub.payload });
    const reg = createRegistry([entry('m', '/m')]);
    const first = await resolveFile('m', 'model', opts(reg));
    expect(hub.server.count()).toBe(1);
    hub.server.requests.length = 0;
    const again = await resolveSource('M', 'model', opts(reg));
    expect(again).toMatchObject({ path: first, downloaded: false, sha256: hub.sha, verification: 'sha256' });
    expect(hub.server.count()).toBe(0);
  });

  it('returns local paths as they are', async () => {
    const p = fixture('tiny-rn', 'model.safetensors');
    expect(await resolveSource(p, 'model', opts())).toMatchObject({ path: p, source: 'path', downloaded: false });
    expect(hub.server.count()).toBe(0);
  });

  it('offline: fails fast with E_OFFLINE naming the file, where to put it and where to get it, with zero requests', async () => {
    hub.server.route('/off', { body: hub.payload });
    const reg = createRegistry([entry('off', '/off')]);
    const err = await caught(resolveFile('off', 'model', opts(reg, { env: { CLIP_IQA_OFFLINE: '1' } })));
    expect(err.code).toBe('E_OFFLINE');
    expect(err.message).toContain('CLIP_IQA_OFFLINE=1');
    expect(err.message).toContain('needed file:   off.safetensors');
    expect(err.message).toContain(`place it at:   ${join(hub.root, 'models', 'off', 'off.safetensors')}`);
    expect(err.message).toContain(`download from: ${hub.server.url('/off')}`);
    expect(hub.server.count()).toBe(0);
    expect(await tree(hub.root)).toEqual([]);

    // The real default model, through the option rather than the environment.
    const rn50 = await caught(resolveFile(undefined, 'model', opts(DEFAULT_REGISTRY, { offline: true })));
    expect(rn50.code).toBe('E_OFFLINE');
    expect(rn50.message).toContain('the offline option is set');
    expect(rn50.message).toContain(`needed file:   RN50.pt (sha256 ${RN50.sha256})`);
    expect(rn50.message).toContain(join(hub.root, 'models', 'RN50', 'RN50.pt'));
    expect(rn50.message).toContain(RN50.urls[0]);
  });

  it('offline: uses a file placed by hand after checking it, and rejects a wrong one', async () => {
    const reg = createRegistry([entry('hand', '/never')]);
    const dest = join(hub.root, 'models', 'hand', 'hand.safetensors');
    await mkdir(dirname(dest), { recursive: true });
    await writeFile(dest, hub.payload);
    const r = await resolveSource('hand', 'model', opts(reg, { offline: true }));
    expect(r).toMatchObject({ path: dest, sha256: hub.sha, verification: 'sha256' });
    expect(JSON.parse(await readFile(`${dest}.meta.json`, 'utf8'))).toMatchObject({ origin: 'placed', sha256: hub.sha });

    const dest2 = join(hub.root, 'models', 'bad', 'bad.safetensors');
    await mkdir(dirname(dest2), { recursive: true });
    await writeFile(dest2, 'not the model');
    const err = await caught(resolveFile('bad', 'model', opts(createRegistry([entry('bad', '/never')]), { offline: true })));
    expect(err.code).toBe('E_CHECKSUM');
    expect(err.message).toContain(dest2);
    expect(err.message).toContain(`expected sha256 ${hub.sha}`);
    expect(hub.server.count()).toBe(0);
  });

  it('online: replaces a damaged cached file by downloading it again', async () => {
    hub.server.route('/dmg', { body: hub.payload });
    const reg = createRegistry([entry('dmg', '/dmg')]);
    const dest = join(hub.root, 'models', 'dmg', 'dmg.safetensors');
    await mkdir(dirname(dest), { recursive: true });
    await writeFile(dest, 'truncated');
    const r = await resolveSource('dmg', 'model', opts(reg));
    expect(r.downloaded).toBe(true);
    expect(await sha256(dest)).toBe(hub.sha);
    expect(hub.logs.join('\n')).toMatch(/damaged or is another file.*Downloading it again/);
  });

  it('routes registry files to a mirror (CLIP_IQA_MIRROR), checksums still verified', async () => {
    hub.server.route('/mirror/tiny+rn.safetensors', { body: hub.payload });
    const e = entry('mirrored', '/unused', { fileName: 'tiny+rn.safetensors', urls: ['http://127.0.0.1:1/upstream/tiny+rn.safetensors'] });
    const r = await resolveSource('mirrored', 'model', opts(createRegistry([e]), { env: { CLIP_IQA_MIRROR: hub.server.url('/mirror/') } }));
    expect(r.url).toBe(hub.server.url('/mirror/tiny%2Brn.safetensors'));
    expect(hub.server.requests.map((q) => q.path)).toEqual(['/mirror/tiny+rn.safetensors']);
    expect(await sha256(r.path)).toBe(hub.sha);

    // A mirror serving other bytes is caught by the checksum.
    hub.server.route('/mirror2/evil.safetensors', { body: Buffer.from('evil') });
    const evil = entry('evil', '/unused', { fileName: 'evil.safetensors' });
    const err = await caught(resolveFile('evil', 'model', opts(createRegistry([evil]), { mirror: hub.server.url('/mirror2') })));
    expect(err.code).toBe('E_CHECKSUM');
    expect(err.message).toContain(hub.server.url('/mirror2/evil.safetensors'));
  });

  it('takes a directory as a mirror', async () => {
    const dir = join(hub.root, 'share');
    await mkdir(dir);
    await writeFile(join(dir, 'fromdir.safetensors'), hub.payload);
    const r = await resolveSource('fromdir', 'model', opts(createRegistry([entry('fromdir', '/unused')]), { mirror: dir }));
    expect(await sha256(r.path)).toBe(hub.sha);
    expect(r.path).toBe(join(hub.root, 'models', 'fromdir', 'fromdir.safetensors'));
    expect(hub.server.count()).toBe(0);
  });

  it('caches a URL with its checksum by hash, and a URL without one by URL, with a warning', async () => {
    hub.server.route('/files/model.safetensors', { body: hub.payload });
    const url = hub.server.url('/files/model.safetensors');
    const pinned = await resolveSource(`${url}#sha256=${hub.sha}`, 'model', opts());
    expect(pinned).toMatchObject({ source: 'url', verification: 'sha256', path: join(hub.root, 'by-hash', hub.sha, 'model.safetensors') });
    expect(hub.logs.filter((l) => l.startsWith('warn'))).toEqual([]);

    const loose = await resolveSource(url, 'model', opts());
    expect(loose.verification).toBe('recorded');
    expect(loose.path).toMatch(new RegExp(`${hub.root}/by-url/[0-9a-f]{32}/model\\.safetensors$`));
    expect(hub.logs.join('\n')).toContain(`was given without a checksum, so its content was not verified. SHA-256 of what was downloaded: ${hub.sha}. Pin it with ${url}#sha256=${hub.sha}`);

    hub.server.requests.length = 0;
    expect((await resolveSource(url, 'model', opts())).path).toBe(loose.path);
    expect(hub.server.count()).toBe(0);

    const strict = await caught(resolveFile(hub.server.url('/files/other.pt'), 'model', opts(DEFAULT_REGISTRY, { env: { CLIP_IQA_REQUIRE_CHECKSUM: '1' } })));
    expect(strict.code).toBe('E_OPTION');
    // "models pull" goes by the same rule, with or without --force, and fetches nothing.
    const requests = hub.server.count();
    for (const force of [false, true]) {
      const pulled = await caught(pullModel(hub.server.url('/files/other.pt'), { ...opts(DEFAULT_REGISTRY, { env: { CLIP_IQA_REQUIRE_CHECKSUM: '1' } }), force }));
      expect(pulled.code).toBe('E_OPTION');
    }
    expect(hub.server.count()).toBe(requests);
    const wrong = await caught(resolveFile(`${url}#sha256=${'0'.repeat(64)}`, 'model', opts()));
    expect(wrong.code).toBe('E_CHECKSUM');
    expect(existsSync(join(hub.root, 'by-hash', '0'.repeat(64), 'model.safetensors'))).toBe(false);
  });
});

describe('models commands', () => {
  it('list, pull, verify, rm', async () => {
    hub.server.route('/a', { body: hub.payload });
    hub.server.route('/b', { body: hub.payload });
    hub.server.route('/files/u.bin', { body: hub.payload });
    const reg = createRegistry([entry('a', '/a'), entry('b', '/b', { sha256: null, sha256Prefix: hub.sha.slice(0, 8) })]);
    const o = opts(reg);
    expect(cachePath(o)).toBe(hub.root);
    expect(cachePath({ env: { CLIP_IQA_HOME: '/x/y' } })).toBe('/x/y');

    let list = await listModels(o);
    expect(list.filter((i) => i.cached)).toEqual([]);
    expect(list.map((i) => i.name)).toEqual(expect.arrayContaining(['RN50', 'ViT-L/14', 'bpe_simple_vocab_16e6', 'clipiqa+', 'a', 'b']));

    const pulled = await pullModel('a', o);
    expect(pulled.downloaded).toBe(true);
    await pullModel('b', o);
    await resolveFile(`${hub.server.url('/files/u.bin')}#sha256=${hub.sha}`, 'model', o);
    expect((await pullModel('a', o)).downloaded).toBe(false);
    expect(hub.server.count('/a')).toBe(1);

    list = await listModels(o);
    const a = list.find((i) => i.name === 'a')!;
    expect(a).toMatchObject({ cached: true, sizeBytes: hub.payload.length, sha256: hub.sha, verification: 'sha256', kind: 'model', partialBytes: 0 });
    expect(list.find((i) => i.source === 'url')).toMatchObject({ name: hub.server.url('/files/u.bin'), cached: true, fileName: 'u.bin' });
    expect(list.find((i) => i.name === 'RN50')).toMatchObject({ cached: false, sizeBytes: null, expectedSizeBytes: RN50.sizeBytes, sizeApproximate: true });
    expect((await listModels({ ...o, kind: 'context' })).every((i) => i.kind === 'context')).toBe(true);

    let report = await verifyCache(o);
    expect(report.find((r) => r.name === 'a')).toMatchObject({ status: 'ok', verification: 'sha256' });
    expect(report.find((r) => r.name === 'b')).toMatchObject({ status: 'ok', verification: 'sha256-prefix' });
    expect(report.find((r) => r.name === 'RN50')).toMatchObject({ status: 'missing' });
    expect(report.find((r) => r.kind === null)).toMatchObject({ status: 'ok' });

    // Flip one byte of a cached file: same size, so only re-hashing can tell.
    const corrupt = Buffer.from(hub.payload);
    corrupt[1000] = corrupt[1000]! ^ 0xff;
    await writeFile(a.path, corrupt);
    report = await verifyCache({ ...o, names: ['a', 'b'] });
    expect(report.map((r) => [r.name, r.status])).toEqual([
      ['a', 'corrupt'],
      ['b', 'ok'],
    ]);
    expect(report[0]!.message).toMatch(/corrupt: expected sha256 [0-9a-f]{64}, found sha256 [0-9a-f]{64}; re-download it with "models pull --force a"/);

    // pull --force repairs it.
    await pullModel('a', { ...o, force: true });
    expect(await sha256(a.path)).toBe(hub.sha);
    expect(hub.server.count('/a')).toBe(2);

    const removed = await removeModel('a', o);
    expect(removed.sort()).toEqual([a.path, `${a.path}.meta.json`].sort());
    expect(existsSync(dirname(a.path))).toBe(false);
    expect(await removeModel('a', o)).toEqual([]);
    expect((await listModels(o)).find((i) => i.name === 'a')!.cached).toBe(false);
    expect(await removeModel(`${hub.server.url('/files/u.bin')}#sha256=${hub.sha}`, o)).toHaveLength(2);
    await expect(removeModel('nope', o)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });
});

describe('concurrency', () => {
  it('two pulls of one file in one process: one download, same path', async () => {
    hub.server.route('/c', { body: hub.payload, trickle: { chunkBytes: 1 << 20, intervalMs: 20 } });
    const reg = createRegistry([entry('c', '/c')]);
    const [x, y] = await Promise.all([resolveSource('c', 'model', opts(reg)), resolveSource('c', 'model', opts(reg))]);
    expect(hub.server.count('/c')).toBe(1);
    expect(x.path).toBe(y.path);
    expect([x.downloaded, y.downloaded].sort()).toEqual([false, true]);
    expect(await sha256(x.path)).toBe(hub.sha);
    expect(hub.logs.join('\n')).toMatch(/waiting for process \d+, which is downloading c\.safetensors/);
    expect(await tree(dirname(x.path))).toEqual(['c.safetensors', 'c.safetensors.meta.json']);
  });

  it('two processes pulling one file: one download, both get the same valid path', async () => {
    const build = join(hub.root, 'build');
    // The hub as built into dist/ by the test run's global set-up, so child processes can import it.
    const hubModule = join(repoRoot, 'dist', 'hub', 'index.js');
    const child = join(build, 'child.mjs');
    await mkdir(build, { recursive: true });
    await writeFile(
      child,
      `const [hub, cacheDir, url, sha] = process.argv.slice(2);
const m = await import(hub);
const rn50 = m.findEntry(m.DEFAULT_REGISTRY, 'RN50', 'model');
const registry = m.createRegistry([{ ...rn50, name: 'shared', aliases: [], fileName: 'shared.safetensors', hub: [], urls: [url], sha256: sha, sha256Prefix: null }]);
const r = await m.resolveSource('shared', 'model', { cacheDir, registry, env: {}, quiet: true, log: (l, msg) => process.stderr.write(msg + '\\n') });
process.stdout.write(JSON.stringify(r));
`,
    );
    hub.server.route('/shared', { body: hub.payload, trickle: { chunkBytes: 512 << 10, intervalMs: 60 } });
    const cache = join(hub.root, 'cache');
    const run = () => runNode([child, hubModule, cache, hub.server.url('/shared'), hub.sha]);
    const [p, q] = await Promise.all([run(), run()]);
    expect(p.code, p.stderr).toBe(0);
    expect(q.code, q.stderr).toBe(0);
    const a = JSON.parse(p.stdout) as ResolvedFile;
    const b = JSON.parse(q.stdout) as ResolvedFile;
    expect(hub.server.count('/shared')).toBe(1);
    expect(a.path).toBe(b.path);
    expect([a.downloaded, b.downloaded].sort()).toEqual([false, true]);
    expect(await sha256(a.path)).toBe(hub.sha);
    expect(p.stderr + q.stderr).toMatch(/waiting for process \d+, which is downloading shared\.safetensors/);
    expect(await tree(dirname(a.path))).toEqual(['shared.safetensors', 'shared.safetensors.meta.json']);
  });

  it('breaks a lock left by a dead process, or one not refreshed for too long', async () => {
    hub.server.route('/s', { body: hub.payload });
    const reg = createRegistry([entry('s', '/s')]);
    const dest = join(hub.root, 'models', 's', 's.safetensors');
    await mkdir(dirname(dest), { recursive: true });
    const dead = await runNode(['-e', 'process.stdout.write(String(process.pid))']);
    await writeFile(`${dest}.lock`, JSON.stringify({ pid: Number(dead.stdout), hostname: hostname(), createdAt: '2020-01-01T00:00:00Z', purpose: 'downloading s', token: 'x' }));
    await resolveFile('s', 'model', opts(reg));
    expect(hub.logs.join('\n')).toMatch(new RegExp(`removing an abandoned lock on s\\.safetensors \\(process ${dead.stdout}\\)`));

    const dest2 = join(hub.root, 'models', 't', 't.safetensors');
    await mkdir(dirname(dest2), { recursive: true });
    await writeFile(`${dest2}.lock`, JSON.stringify({ pid: 1, hostname: 'elsewhere', createdAt: '2020-01-01T00:00:00Z', purpose: 'downloading t', token: 'y' }));
    const old = new Date(Date.now() - 120_000);
    await utimes(`${dest2}.lock`, old, old);
    hub.server.route('/t', { body: hub.payload });
    expect(await sha256(await resolveFile('t', 'model', opts(createRegistry([entry('t', '/t')]))))).toBe(hub.sha);
  });

  it('gives up waiting for a live lock that makes no progress, with a clear message', async () => {
    const dest = join(hub.root, 'models', 'w', 'w.safetensors');
    await mkdir(dirname(dest), { recursive: true });
    await writeFile(`${dest}.lock`, JSON.stringify({ pid: process.pid, hostname: hostname(), createdAt: '2024-01-01T00:00:00Z', purpose: 'downloading w.safetensors', token: 'z' }));
    hub.server.route('/w', { body: hub.payload });
    const err = await caught(resolveFile('w', 'model', opts(createRegistry([entry('w', '/w')]), { lockTimeoutMs: 300 })));
    expect(err.code).toBe('E_CACHE');
    expect(err.message).toMatch(new RegExp(`waiting 0\\.3 s without progress for process ${process.pid} \\(downloading w\\.safetensors since 2024-01-01T00:00:00Z\\), which holds ${dest}\\.lock`));
    expect(err.message).toMatch(/delete that lock file/);
    expect(hub.server.count()).toBe(0);
  });
});

describe('cache that cannot be written', () => {
  it('a cache hub.root below a regular file: E_CACHE naming the directory and what to do', async () => {
    hub.server.route('/n', { body: hub.payload });
    const file = join(hub.root, 'plain-file');
    await writeFile(file, 'x');
    const err = await caught(resolveFile('n', 'model', opts(createRegistry([entry('n', '/n')]), { cacheDir: join(file, 'cache') })));
    expect(err.code).toBe('E_CACHE');
    expect(err.message).toContain(join(file, 'cache', 'models', 'n'));
    expect(err.message).toMatch(/is a file where a directory is needed \(ENOTDIR\).*CLIP_IQA_HOME/);
    expect(hub.server.count()).toBe(0);
  });

  // Issue 10, finding 9: a link at the partial file's name was followed and its target overwritten.
  it('a link planted at the partial file is removed, never followed: its target is untouched', async () => {
    hub.server.route('/planted', { body: hub.payload });
    const dest = join(hub.root, 'models', 'planted', 'planted.safetensors');
    await mkdir(dirname(dest), { recursive: true });
    const victim = join(hub.root, 'victim.txt');
    await writeFile(victim, 'precious');
    await symlink(victim, `${dest}.part`);
    // Even with a part-info that claims it as a resumable prefix of this very file.
    await writeFile(`${dest}.part.json`, JSON.stringify({ identity: `sha256:${hub.sha}`, url: hub.server.url('/planted'), etag: null, lastModified: null, total: null }));
    const r = await resolveSource('planted', 'model', opts(createRegistry([entry('planted', '/planted')])));
    expect(await sha256(r.path)).toBe(hub.sha);
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect(hub.logs.join('\n')).toMatch(/planted\.safetensors\.part is not a file clip-iqa wrote .*removed, never followed/);
  });

  it.skipIf(process.getuid?.() === 0)('a read-only cache directory (skipped as hub.root, where chmod does not stop writes)', async () => {
    const { chmod } = await import('node:fs/promises');
    await chmod(hub.root, 0o500);
    try {
      const err = await caught(resolveFile('ro', 'model', opts(createRegistry([entry('ro', '/ro')]))));
      expect(err.code).toBe('E_CACHE');
      expect(err.message).toMatch(/is not writable \(EACCES\)/);
    } finally {
      await chmod(hub.root, 0o700);
    }
  });
});
