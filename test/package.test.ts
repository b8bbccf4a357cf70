/**
 * The package as users get it: `npm pack`, then `npm ci --offline` of the tarball into a temporary project (its
 * dependencies come from the npm cache that installing this repository filled), then the bin, the ESM import,
 * `require()`, and the types under each moduleResolution.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNode } from './helpers/cli.js';
import { fixture, photo, repoRoot } from './helpers/shared.js';

const exec = promisify(execFile);
const npm = (args: string[], cwd: string) =>
  exec('npm', args, { cwd, env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } });

interface LockEntry {
  dev?: boolean;
  [key: string]: unknown;
}
interface PackedFile {
  path: string;
}

const MODEL = fixture('tiny-rn', 'model-jit-fp16.pt');

describe('the packed package, installed offline', () => {
  let dir: string;
  let project: string;
  let files: string[];
  let manifest: { scripts?: Record<string, string>; dependencies: Record<string, string>; allowScripts?: unknown; overrides?: unknown; version: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'clip-iqa-pack-'));
    // dist/ is fresh (global set-up built it), so `prepare` need not run again.
    const { stdout } = await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dir], repoRoot);
    const [packed] = JSON.parse(stdout) as [{ filename: string; files: PackedFile[] }];
    files = packed.files.map((f) => f.path);
    const tarball = join(dir, packed.filename);
    manifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as typeof manifest;

    // A lockfile for the consumer: the tarball, plus this repository's locked production dependencies (same hoisted
    // paths), so that `npm ci --offline` needs no registry metadata, only the cached tarballs.
    project = join(dir, 'consumer');
    const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
    const production = Object.entries(lock.packages).filter(([path, entry]) => path !== '' && !entry.dev);
    const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
    const dependencies = { 'clip-iqa': `file:../${packed.filename}` };
    const pkg = { name: 'consumer', version: '1.0.0', private: true, type: 'module', dependencies, overrides: manifest.overrides };
    const consumerLock = {
      name: 'consumer',
      version: '1.0.0',
      lockfileVersion: 3,
      requires: true,
      packages: {
        '': { name: 'consumer', version: '1.0.0', dependencies },
        'node_modules/clip-iqa': {
          version: manifest.version,
          resolved: `file:../${packed.filename}`,
          integrity,
          license: 'MIT',
          dependencies: manifest.dependencies,
          bin: { 'clip-iqa': 'dist/cli/bin.js' },
          engines: { node: '>=20.19' },
        },
        ...Object.fromEntries(production),
      },
    };
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify(pkg, null, 2));
    writeFileSync(join(project, 'package-lock.json'), JSON.stringify(consumerLock, null, 2));
    // No install script runs: onnxruntime-node's would fetch CUDA libraries, and clip-iqa has none (checked below).
    const install = await npm(['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], project);
    expect(install.stderr).not.toMatch(/EBADENGINE|Unknown (project|user|env) config/);
  }, 300_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('holds the built code, web page, vocabulary and notices, and no sources, tests or source maps', () => {
    for (const f of ['package.json', 'LICENSE', 'README.md', 'THIRD_PARTY_NOTICES.md', 'assets/bpe_simple_vocab_16e6.txt.gz', 'web/index.html']) {
      expect(files).toContain(f);
    }
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/server/index.js', 'dist/server/index.d.ts', 'dist/queue/index.js', 'dist/queue/index.d.ts', 'dist/cli/bin.js']) expect(files).toContain(f);
    // The browser build, ready to copy to a static host (clip-iqa/browser).
    for (const f of ['clip-iqa.js', 'clip-iqa-worker.js', 'api.d.ts', 'ort-wasm-simd-threaded.jsep.wasm', 'ort-wasm-simd-threaded.jsep.mjs', 'bpe_simple_vocab_16e6.txt.gz']) {
      expect(files).toContain(`dist/browser/${f}`);
    }
    expect(files.filter((f) => /^(src|test|bench|scripts)\//.test(f) || f.endsWith('.map'))).toEqual([]);
  });

  it('has no install script', () => {
    const installed = JSON.parse(readFileSync(join(project, 'node_modules', 'clip-iqa', 'package.json'), 'utf8')) as typeof manifest;
    expect(Object.keys(installed.scripts ?? {}).filter((s) => /^(pre|post)?install$/.test(s))).toEqual([]);
  });

  it('runs the bin with the packaged vocabulary (no --vocab, offline)', async () => {
    const r = await exec('npx', ['--offline', 'clip-iqa', '--offline', '-m', MODEL, '-a', 'quality', photo('chelsea.png')], {
      cwd: project,
      env: { ...process.env, NO_COLOR: '1' },
    });
    const doc = JSON.parse(r.stdout) as { images: { scores: { quality: number } }[]; summary: { failed: number } };
    expect(doc.summary.failed).toBe(0);
    expect(doc.images[0]!.scores.quality).toBeGreaterThan(0);
  });

  it('imports as ESM and as CommonJS (require), both entries', async () => {
    const use = `const iqa = await ClipIqa.load({ model: ${JSON.stringify(MODEL)}, hub: { offline: true } });
const { scores } = await iqa.score(${JSON.stringify(photo('rocket.jpg'))}, { attributes: 'quality' });
await iqa.dispose();
console.log(typeof server.startServer, scores.quality.toFixed(6));`;
    const esm = await runNode(['--input-type=module', '-e', `import { ClipIqa } from 'clip-iqa';\nimport * as server from 'clip-iqa/server';\n${use}`], { cwd: project });
    expect(esm.code, esm.stderr).toBe(0);
    const cjs = await runNode(['--input-type=commonjs', '-e', `const { ClipIqa } = require('clip-iqa');\nconst server = require('clip-iqa/server');\n(async () => {\n${use}\n})();`], { cwd: project });
    expect(cjs.code, cjs.stderr).toBe(0);
    expect(cjs.stdout).toMatch(/^function 0\.\d{6}\n$/);
    expect(cjs.stdout).toBe(esm.stdout);
    expect(cjs.stderr).not.toMatch(/Warning/);
  });

  it('imports clip-iqa/queue (BullMQ and ioredis come with it)', async () => {
    const r = await runNode(['--input-type=module', '-e', `import * as q from 'clip-iqa/queue';\nconsole.log([q.enqueue, q.startWorker, q.batchStatus, q.batchResults, q.removeBatch].map((f) => typeof f).join(' '));`], { cwd: project });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('function function function function function');
  });

  it.each([
    ['node16', 'node16'],
    ['nodenext', 'nodenext'],
    ['bundler', 'esnext'],
  ])('types resolve for every entry under moduleResolution %s', async (moduleResolution, module) => {
    // The browser entry (DOM types) is for bundlers.
    const browserEntry = moduleResolution === 'bundler';
    const src = join(project, `types-${moduleResolution}`);
    mkdirSync(src);
    writeFileSync(
      join(src, 'index.ts'),
      `import { ClipIqa, ClipIqaError, hub, type ImageScores } from 'clip-iqa';
import { startServer, type ServerOptions } from 'clip-iqa/server';
import { type BatchSettings, enqueue } from 'clip-iqa/queue';
const settings: BatchSettings = { attributes: 'quality' };
void enqueue;
void settings;
const iqa: ClipIqa = await ClipIqa.load({ model: 'RN50' });
const scale: number = iqa.logitScale;
// @ts-expect-error: a typed API, not any
const wrong: string = iqa.logitScale;
const scores: ImageScores['scores'] = {};
const options: ServerOptions = {};
export { scale, wrong, scores, options, startServer, ClipIqaError, hub };
` +
        (browserEntry
          ? `import { ClipIqa as BrowserClipIqa } from 'clip-iqa/browser';
export const load: (o: { model: string }) => Promise<BrowserClipIqa> = (o) => BrowserClipIqa.load(o);
`
          : ''),
    );
    const tsconfig = {
      compilerOptions: {
        module,
        moduleResolution,
        target: 'ES2022',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
        lib: ['ES2023', 'DOM'],
        typeRoots: [join(repoRoot, 'node_modules', '@types')],
      },
      files: ['index.ts'],
    };
    writeFileSync(join(src, 'tsconfig.json'), JSON.stringify(tsconfig));
    const r = await runNode([join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', src], { cwd: src });
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });
});
