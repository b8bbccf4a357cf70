/* global process */
/**
 * How often loading a model enters the hub: function calls into dist/hub/** during one `ClipIqa.load` whose
 * model, vocabulary and CLIP-IQA+ context are already cached (the common start), counted by V8's precise
 * coverage. Run after `npm run build`:
 *
 *   node scripts/hub-calls.mjs [--json]
 *
 * The files are fixtures served on loopback and fetched once as URLs with their checksums, into a fresh cache.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = resolve(import.meta.dirname, '..');
const shared = resolve(process.env.CLIP_IQA_SHARED ?? join(root, '..', 'shared'));
const files = {
  '/model.safetensors': join(shared, 'fixtures', 'tiny-rn', 'model.safetensors'),
  '/vocab.txt.gz': join(shared, 'clip', 'bpe_simple_vocab_16e6.txt.gz'),
  '/ctx.pth': join(shared, 'fixtures', 'tiny-rn', 'clipiqa+-ctx.pth'),
};
const bodies = Object.fromEntries(Object.entries(files).map(([k, p]) => [k, readFileSync(p)]));
const server = createServer((req, res) => {
  const body = bodies[req.url ?? ''];
  if (!body) return void res.writeHead(404).end();
  res.writeHead(200, { 'content-length': String(body.length) }).end(body);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;
const url = (p) => `${origin}${p}#sha256=${createHash('sha256').update(bodies[p]).digest('hex')}`;

const { ClipIqa } = await import(pathToFileURL(join(root, 'dist', 'index.js')).href);
const cacheDir = await mkdtemp(join(tmpdir(), 'hub-calls-'));
const options = { model: url('/model.safetensors'), vocab: url('/vocab.txt.gz'), plus: url('/ctx.pth'), hub: { cacheDir, quiet: true, env: {} } };
try {
  await (await ClipIqa.load(options)).dispose(); // fills the cache

  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.startPreciseCoverage', { callCount: true, detailed: false });
  await session.post('Profiler.takePreciseCoverage'); // resets the counters
  await (await ClipIqa.load(options)).dispose();
  const { result } = await session.post('Profiler.takePreciseCoverage');
  await session.post('Profiler.stopPreciseCoverage');
  session.disconnect();

  const hubDir = pathToFileURL(join(root, 'dist', 'hub')).href;
  const calls = [];
  for (const script of result) {
    if (!script.url.startsWith(hubDir)) continue;
    for (const f of script.functions) {
      const count = f.ranges[0]?.count ?? 0;
      // The module body itself ran when it was first imported, not during this load.
      if (count > 0 && f.functionName !== '') calls.push({ module: script.url.slice(hubDir.length + 1), fn: f.functionName, count });
    }
  }
  calls.sort((a, b) => b.count - a.count || a.module.localeCompare(b.module));
  const total = calls.reduce((n, c) => n + c.count, 0);
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify({ total, calls }, null, 2)}\n`);
  else {
    for (const c of calls) process.stdout.write(`${String(c.count).padStart(4)}  ${c.module} ${c.fn}\n`);
    process.stdout.write(`${total} calls into dist/hub during one ClipIqa.load of cached files\n`);
  }
} finally {
  server.close();
  await rm(cacheDir, { recursive: true, force: true });
}
