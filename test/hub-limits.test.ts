/**
 * What a hostile or broken server, a shared cache or an interruption cannot make a download do (issue 10,
 * findings 7, 8, 9 and the read-only-cache part of 17): write more than the file's size or the configured limit,
 * leave a partial file or a lock behind after Ctrl-C, SIGTERM or an abort, follow a redirect to a local file (and
 * so report its hash), write through a planted link, or report a read-only cache as a missing file.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRegistry, resolveSource, type DownloadProgress } from '../src/hub/index.js';
import { cacheError } from '../src/hub/cache.js';
import { runNode } from './helpers/cli.js';
import { startHfHub } from './helpers/hf-hub.js';
import { caught, tree, useHubFixture } from './helpers/hub-fixture.js';
import { repoRoot } from './helpers/shared.js';

const hub = useHubFixture('hub-limits-', { connectTimeoutMs: 3000, stallTimeoutMs: 3000, progressIntervalMs: 0 });
const { entry, opts } = hub;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('finding 7: downloads are capped', () => {
  it('by the registry’s exact size: a server that sends more is stopped there, and nothing is kept', async () => {
    const endless = Buffer.alloc(40 << 20, 1); // stands for an endless body: far more than the file's size
    hub.server.route('/big', { body: endless, chunked: true, trickle: { chunkBytes: 1 << 20, intervalMs: 1 } });
    const events: DownloadProgress[] = [];
    const reg = createRegistry([entry('big', '/big')]);
    const err = await caught(resolveSource('big', 'model', opts(reg, { onProgress: (p) => events.push(p) })));
    expect(err.code).toBe('E_DOWNLOAD');
    expect(err.message).toContain(`sent more than its known size of ${hub.payload.length} bytes`);
    expect(Math.max(...events.map((e) => e.bytesDone))).toBeLessThanOrEqual(hub.payload.length);
    expect(await tree(hub.root)).toEqual([]);
  });

  it('by Content-Length, refused before the body when it announces more than the file’s size', async () => {
    hub.server.route('/announced', { body: Buffer.alloc(hub.payload.length + 1) });
    const err = await caught(resolveSource('a', 'model', opts(createRegistry([entry('a', '/announced')]))));
    expect(err.message).toContain(`announces ${hub.payload.length + 1} bytes for a.safetensors, more than its known size`);
    expect(await tree(hub.root)).toEqual([]);
  });

  it('by the configured maximum (CLIP_IQA_MAX_DOWNLOAD, maxDownloadBytes) for a file of unknown size', async () => {
    hub.server.route('/u.bin', { body: Buffer.alloc(3 << 20, 2), chunked: true });
    const url = hub.server.url('/u.bin');
    const viaEnv = await caught(resolveSource(url, 'model', opts(undefined, { env: { CLIP_IQA_MAX_DOWNLOAD: '1M' } })));
    expect(viaEnv.message).toContain('more than the download limit of 1048576 bytes (raise it with CLIP_IQA_MAX_DOWNLOAD)');
    const viaOption = await caught(resolveSource(url, 'model', opts(undefined, { maxDownloadBytes: 2 << 20 })));
    expect(viaOption.message).toContain('the download limit of 2097152 bytes');
    expect(await tree(hub.root)).toEqual([]);
    expect((await resolveSource(url, 'model', opts(undefined, { maxDownloadBytes: 3 << 20 }))).downloaded).toBe(true);
    await expect(resolveSource(url, 'model', opts(undefined, { env: { CLIP_IQA_MAX_DOWNLOAD: 'lots' } }))).rejects.toMatchObject({ code: 'E_OPTION' });
  });

  it('by the hub’s X-Linked-Size: a CDN that sends more is stopped; a file above the maximum is not even started', async () => {
    const weights = Buffer.alloc(2 << 20, 3);
    const hf = await startHfHub({ 'acme/m': { files: { 'open_clip_model.safetensors': weights } } });
    try {
      hf.cdn.route(`/repos/acme/m/blobs/${sha(weights)}`, { body: Buffer.concat([weights, Buffer.alloc(8 << 20)]), chunked: true });
      const env = { HF_ENDPOINT: hf.endpoint };
      const err = await caught(resolveSource('hf:acme/m/open_clip_model.safetensors', 'model', opts(undefined, { env })));
      expect(err.message).toContain(`sent more than its known size of ${weights.length} bytes`);
      hf.cdn.requests.length = 0;
      const tooBig = await caught(resolveSource('hf:acme/m/open_clip_model.safetensors', 'model', opts(undefined, { env, maxDownloadBytes: 1 << 20 })));
      expect(tooBig.message).toContain(`is ${weights.length} bytes, more than the download limit of 1048576`);
      expect(hf.cdn.requests).toEqual([]);
      expect(await tree(hub.root)).toEqual([]);
    } finally {
      await hf.close();
    }
  });
});

describe('finding 7: an interruption leaves no partial file and no lock', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} during a download`, async () => {
      hub.server.route('/slow', { body: hub.payload, trickle: { chunkBytes: 64 << 10, intervalMs: 20 } });
      const cache = join(hub.root, 'cache');
      const child = join(hub.root, 'child.mjs');
      await writeFile(
        child,
        `const [hub, cacheDir, url] = process.argv.slice(2);
const m = await import(hub);
let told = false;
await m.resolveSource(url, 'model', { cacheDir, env: {}, quiet: true, progressIntervalMs: 0, onProgress: (p) => {
  if (!told && p.bytesDone > 0) { told = true; process.stdout.write('downloading\\n'); }
} });
process.stdout.write('finished\\n');
`,
      );
      const { spawn } = await import('node:child_process');
      const proc = spawn(process.execPath, [child, join(repoRoot, 'dist', 'hub', 'index.js'), cache, `${hub.server.url('/slow')}#sha256=${hub.sha}`], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      await new Promise<void>((resolve, reject) => {
        proc.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('downloading')) resolve();
        });
        proc.once('exit', () => reject(new Error(`the child ended before downloading: ${out}`)));
      });
      const dest = join(cache, 'by-hash', hub.sha, 'slow');
      expect(existsSync(`${dest}.lock`)).toBe(true);
      proc.kill(signal);
      const [code, sig] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => proc.once('exit', (c, s) => resolve([c, s])));
      // Ended as the signal ends a process, not by finishing.
      expect(sig ?? code).toBe(signal);
      expect(out).not.toContain('finished');
      expect(await tree(dirname(dest))).toEqual([]);
    });
  }
});

describe('finding 8: redirects lead to http(s) only', () => {
  it('a redirect to file:// is refused: the local file is not read, cached, shown or hashed', async () => {
    const secret = join(hub.root, 'secret.txt');
    await writeFile(secret, 'root:x:0:0:the secret first bytes\n');
    hub.server.route('/to-file', { redirect: `file://${secret}` });
    const url = hub.server.url('/to-file');
    // With a wrong checksum, an error quoting the local file's hash would be an oracle for its content.
    const err = await caught(resolveSource(`${url}#sha256=${'0'.repeat(64)}`, 'model', opts()));
    expect(err.code).toBe('E_DOWNLOAD');
    expect(err.message).toMatch(/redirects to a file: URL, refused: redirects may only lead to http\(s\)/);
    expect(err.message).not.toContain(sha(await readFile(secret)));
    expect(err.message).not.toContain('secret first bytes');
    const loose = await caught(resolveSource(url, 'model', opts()));
    expect(loose.code).toBe('E_DOWNLOAD');
    expect((await tree(hub.root)).filter((f) => f !== 'secret.txt')).toEqual([]);
  });

  it('other schemes are refused too; http may become https, never the reverse', async () => {
    hub.server.route('/to-ftp', { redirect: 'ftp://example.org/x.pt' });
    const err = await caught(resolveSource(hub.server.url('/to-ftp'), 'model', opts()));
    expect(err.message).toMatch(/redirects to a ftp: URL, refused/);
    const { redirectTarget } = await import('../src/hub/download.js');
    expect(redirectTarget(new URL('http://a/x'), 'https://b/y').href).toBe('https://b/y');
    expect(() => redirectTarget(new URL('https://a/x'), 'http://b/y')).toThrow(/https never falls back to http/);
    expect(() => redirectTarget(new URL('https://a/x'), 'data:text/plain,hi')).toThrow(/redirects to a data: URL, refused/);
  });
});

describe('finding 9: the cache does not follow links', () => {
  it('creates its folders 0700', async () => {
    hub.server.route('/m', { body: hub.payload });
    const r = await resolveSource('m', 'model', opts(createRegistry([entry('m', '/m')])));
    expect((await stat(dirname(r.path))).mode & 0o777).toBe(0o700);
    expect((await stat(join(hub.root, 'models'))).mode & 0o777).toBe(0o700);
  });

  it('refuses a cached file that is a link, instead of using (or overwriting) what it points to', async () => {
    hub.server.route('/l', { body: hub.payload });
    const dest = join(hub.root, 'models', 'l', 'l.safetensors');
    await mkdir(dirname(dest), { recursive: true });
    const target = join(hub.root, 'elsewhere.safetensors');
    await writeFile(target, hub.payload);
    await symlink(target, dest);
    const err = await caught(resolveSource('l', 'model', opts(createRegistry([entry('l', '/l')]))));
    expect(err.code).toBe('E_CACHE');
    expect(err.message).toContain(`${dest} is a symbolic link`);
    expect(hub.server.count()).toBe(0);
    expect(sha(await readFile(target))).toBe(hub.sha);
  });
});

/** Whether this machine lets a process mount a read-only bind in a user namespace of its own. */
const canMountReadOnly = spawnSync('unshare', ['-rm', 'sh', '-c', 'mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp /tmp'], { stdio: 'ignore' }).status === 0;

describe('finding 17: a read-only cache', () => {
  it.skipIf(!canMountReadOnly)('is reported as read-only (EROFS), not as a missing file (ENOENT)', async () => {
    const ro = await mkdtemp(join(tmpdir(), 'hub-ro-'));
    try {
      await mkdir(join(ro, 'models'));
      const child = join(hub.root, 'child.mjs');
      await writeFile(
        child,
        `const [hub, cacheDir, url] = process.argv.slice(2);
const m = await import(hub);
try { await m.resolveSource(url, 'model', { cacheDir, env: {}, quiet: true }); } catch (e) { process.stdout.write(JSON.stringify({ code: e.code, message: e.message })); }
`,
      );
      hub.server.route('/ro', { body: hub.payload });
      const url = `${hub.server.url('/ro')}#sha256=${hub.sha}`;
      for (const cacheDir of [ro, join(ro, 'not-yet')]) {
        const script = `mount --bind ${ro} ${ro} && mount -o remount,bind,ro ${ro} ${ro} && exec "${process.execPath}" ${child} ${join(repoRoot, 'dist', 'hub', 'index.js')} ${cacheDir} '${url}'`;
        const r = await runNode(['-e', `process.exit(require('child_process').spawnSync('unshare', ['-rm', 'sh', '-c', ${JSON.stringify(script)}], { stdio: 'inherit' }).status)`]);
        const err = JSON.parse(r.stdout) as { code: string; message: string };
        expect(err.code, r.stderr).toBe('E_CACHE');
        expect(err.message).toMatch(/is not writable \(EROFS: read-only file system\)/);
        expect(err.message).not.toContain('ENOENT');
      }
    } finally {
      await rm(ro, { recursive: true, force: true });
    }
  });

  it('a full disk is said to be one (the message of ENOSPC)', () => {
    const e = cacheError(Object.assign(new Error('no space'), { code: 'ENOSPC' }), '/cache/models/RN50/RN50.pt.part', 'writing RN50.pt', 255e6);
    expect(e.code).toBe('E_CACHE');
    expect(e.message).toBe(
      'Cannot use the model cache while writing RN50.pt: the disk holding /cache/models/RN50 is full (about 255 MB are needed). Free some space there, or set CLIP_IQA_HOME to another directory on a disk with room.',
    );
  });
});
