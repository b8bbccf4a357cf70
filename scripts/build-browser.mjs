/* global process, console */
/**
 * The browser build: src/browser/api.ts bundled by esbuild into dist/browser/clip-iqa.js (ESM, no Node built-ins),
 * with onnxruntime-web's WASM runtime files and the packaged BPE vocabulary beside it, so that the folder can be
 * copied to any static host. Modules that do I/O the Node way have a `*.browser.ts` sibling (same exports), which
 * the plugin below picks instead; everything else (weights readers, graph builders, tokenizer, scoring) is the
 * Node build's own code.
 *
 *   node scripts/build-browser.mjs [OUT_DIR]     (default dist/browser; `npm run build` runs it)
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(root, 'dist', 'browser'));
const require = createRequire(import.meta.url);
// Chunk names change with their content: old ones must not pile up (tsc's api.js/.d.ts beside them stay).
if (existsSync(out)) for (const f of readdirSync(out)) if (/^clip-iqa-[A-Z0-9]{8}\.js(\.map|\.LEGAL\.txt)?$/.test(f)) rmSync(join(out, f));

/** `./x.js` → `./x.browser.ts` when that sibling exists under src/. */
const browserSiblings = {
  name: 'browser-siblings',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\/.*\.js$/ }, (args) => {
      if (!args.importer.startsWith(join(root, 'src'))) return undefined;
      const sibling = resolve(args.resolveDir, args.path.replace(/\.js$/, '.browser.ts'));
      return existsSync(sibling) ? { path: sibling } : undefined;
    });
    // A Node built-in reaching the bundle is a module that still needs a browser sibling: fail the build, naming it.
    b.onResolve({ filter: /^(node:|fs$|path$|os$|crypto$|zlib$|buffer$|url$|module$)|^(sharp|onnxruntime-node|yauzl)$/ }, (args) => ({
      errors: [{ text: `${args.path} imported by ${args.importer}: give that module a .browser.ts sibling` }],
    }));
  },
};

await build({
  // The page's module and the worker's share the engine through a chunk, loaded by whichever runs it.
  entryPoints: { 'clip-iqa': join(root, 'src', 'browser', 'api.ts'), 'clip-iqa-worker': join(root, 'src', 'browser', 'worker.ts') },
  outdir: out,
  // Beside the entries: the engine finds the .wasm files and the vocabulary relative to its own URL.
  chunkNames: 'clip-iqa-[hash]',
  splitting: true,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  // onnxruntime-web's build that loads its WASM runtime from files beside the bundle (env.wasm.wasmPaths).
  conditions: ['onnxruntime-web-use-extern-wasm'],
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  // The weights readers' limits read environment variables; a page has none.
  define: { 'process.env': '{}' },
  plugins: [browserSiblings],
  logLevel: 'warning',
  metafile: true,
});

mkdirSync(out, { recursive: true });
// The package exports its .wasm files by name; their folder holds the .mjs loaders too.
const ortDist = dirname(require.resolve('onnxruntime-web/ort-wasm-simd-threaded.jsep.wasm'));
const files = ['ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'];
for (const f of files) copyFileSync(join(ortDist, f), join(out, f));
copyFileSync(join(root, 'assets', 'bpe_simple_vocab_16e6.txt.gz'), join(out, 'bpe_simple_vocab_16e6.txt.gz'));
const kb = (p) => `${Math.round(statSync(p).size / 1024)} KiB`;
const js = readdirSync(out).filter((f) => f.endsWith('.js'));
console.log(`browser build in ${out}: ${js.map((f) => `${f} (${kb(join(out, f))})`).join(', ')} + ${files.join(', ')} + vocabulary`);
