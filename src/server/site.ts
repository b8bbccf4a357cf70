/**
 * `clip-iqa site OUT_DIR`: the `serve` page as a static site that scores in the visitor's browser, with no server
 * code: the page and its scripts, the browser build, the model's files (as server/model-files.ts lays them out)
 * and the JSON answers the page reads (v1/models, v1/prompts, v1/model/browser), so that the page runs unchanged
 * from any static host, under any path.
 */
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { ClipIqa, type ClipIqaOptions } from '../api.js';
import { ClipIqaError, errorMessage } from '../errors.js';
import { PACKAGE } from '../util/package.js';
import { browserModelFiles } from './model-files.js';
import { promptsInfo } from './routes/info.js';

export interface SiteResult {
  readonly dir: string;
  /** Files written, relative to `dir`. */
  readonly files: string[];
  readonly bytes: number;
}

/** Headers for hosts that read a `_headers` file (Netlify, Cloudflare Pages): cross-origin isolation gives WASM threads. */
const HEADERS_FILE = `/*
  Cross-Origin-Opener-Policy: same-origin
  Cross-Origin-Embedder-Policy: require-corp
  X-Content-Type-Options: nosniff
/v1/model/files/*
  Cache-Control: public, max-age=31536000, immutable
`;

/** The page with root-relative links made relative, and the server-only links (API docs, metrics) left out. */
function sitePage(html: string): string {
  return html
    .replace(/(href|src)="\/(?!\/)/g, '$1="./')
    .replace(/\s*<nav>[\s\S]*?<\/nav>/, '')
    .replace(/ · <a href="\.\/docs">HTTP API<\/a> · <a href="\.\/metrics">metrics<\/a>/, '');
}

export async function writeSite(outDir: string, options: ClipIqaOptions): Promise<SiteResult> {
  const dist = join(PACKAGE.root, 'dist');
  const browserDir = join(dist, 'browser');
  const missing = [join(browserDir, 'clip-iqa.js'), join(dist, 'server', 'page', 'app.js'), join(dist, 'report', 'radar.js')];
  for (const f of missing) {
    await readFile(f).catch(() => {
      throw new ClipIqaError('E_OUTPUT', `${f} is missing: build the package first (npm run build), which makes the browser build the site needs.`);
    });
  }
  // The model is loaded once here, for what the page shows of it (name, architecture, maps); no graph is built.
  const iqa = await ClipIqa.load({ ...options, featureCache: false });
  const written: string[] = [];
  let bytes = 0;
  const put = async (rel: string, content: string | Uint8Array) => {
    const path = join(outDir, rel);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
    written.push(rel);
    bytes += typeof content === 'string' ? Buffer.byteLength(content) : content.length;
  };
  const copy = async (from: string, rel: string) => {
    const path = join(outDir, rel);
    await mkdir(dirname(path), { recursive: true });
    await copyFile(from, path);
    written.push(rel);
    bytes += (await readFile(path)).length;
  };
  try {
    // Named by its file: the site must not tell visitors where the model lay on this machine.
    const name = options.name ?? (isAbsolute(iqa.name) ? basename(iqa.name) : iqa.name);
    const { manifest, files } = await browserModelFiles(options, name);
    if (!manifest.available) throw new ClipIqaError('E_OPTION', `the site cannot hold this model: ${manifest.reason}`);
    // The model's folder is replaced whole: files of an earlier model must not linger under their old versions.
    await rm(join(outDir, 'v1'), { recursive: true, force: true });
    for (const f of files) await copy(f.path, decodeURIComponent(f.urlPath));
    const { vision } = iqa.architecture;
    await put(
      'v1/models',
      JSON.stringify({
        model: {
          name,
          description: iqa.describe(),
          family: vision.family,
          resolution: vision.resolution,
          embedDim: iqa.architecture.embedDim,
          logitScale: iqa.logitScale,
          positional: manifest.positional,
          maps: vision.family === 'resnet',
          plus: iqa.context ? decodeURIComponent((manifest.plus ?? '').split('/').pop() ?? '') || 'clipiqa+' : null,
        },
        // Nothing is uploaded: the browser's own limits apply (the browser build refuses images past 2^24 pixels).
        limits: { maxUploadBytes: 0, maxFiles: 0, maxPixels: 2 ** 24 },
      }),
    );
    await put('v1/prompts', JSON.stringify(promptsInfo(options.noisiness ?? 'noisy')));
    await put('v1/model/browser', JSON.stringify({ ...manifest, site: true }));

    const web = join(PACKAGE.root, 'web');
    await put('index.html', sitePage(await readFile(join(web, 'index.html'), 'utf8')));
    for (const f of ['style.css', 'favicon.svg']) await copy(join(web, f), f);
    for (const f of (await readdir(join(dist, 'server', 'page'))).filter((n) => n.endsWith('.js'))) await copy(join(dist, 'server', 'page', f), `assets/server/page/${f}`);
    await copy(join(dist, 'report', 'radar.js'), 'assets/report/radar.js');
    await rm(join(outDir, 'assets', 'browser'), { recursive: true, force: true });
    for (const f of (await readdir(browserDir)).filter((n) => !n.endsWith('.map') && !n.endsWith('.d.ts'))) await copy(join(browserDir, f), `assets/browser/${f}`);
    await put('_headers', HEADERS_FILE);
  } catch (e) {
    if (e instanceof ClipIqaError) throw e;
    throw new ClipIqaError('E_OUTPUT', `${outDir}: the site could not be written (${errorMessage(e)}).`, { cause: e });
  } finally {
    await iqa.dispose();
  }
  return { dir: outDir, files: written, bytes };
}
