/**
 * The web page (`/`), the docs page (`/docs`) and their scripts, all from the package itself: web/ holds the HTML,
 * CSS and icon; the scripts are the compiled page modules (dist/server/page/*.js) and the report's radar chart
 * (dist/report/radar.js), served under /assets/ with dist's own layout so that their relative imports resolve.
 * Nothing comes from a CDN, and the Content-Security-Policy makes the browser refuse anything that would.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import fastifyStatic from '@fastify/static';
import { PACKAGE } from '../util/package.js';

const WEB = join(PACKAGE.root, 'web');
const DIST = join(PACKAGE.root, 'dist');
/** The browser build (clip-iqa.js, its worker and chunks, onnxruntime-web's WASM files), for in-browser scoring. */
const BROWSER = join(DIST, 'browser');

/** Browser modules, relative to dist/: the page's own, and the radar chart shared with the HTML report. */
function pageScripts(): string[] {
  const dir = `${DIST}/server/page`;
  if (!existsSync(dir) || !existsSync(`${DIST}/report/radar.js`)) {
    throw new Error(`the web page's scripts are missing under ${DIST}: build the package first (npm run build), or serve without the page (ui: false)`);
  }
  const own = readdirSync(dir)
    .filter((f) => f.endsWith('.js'))
    .map((f) => `server/page/${f}`);
  return [...own, 'report/radar.js'];
}

/**
 * Everything the page may load or connect to: this origin only; blob: and data: for the user's own photos. WASM
 * compilation ('wasm-unsafe-eval', which allows no JavaScript eval) and same-origin workers are for scoring in the
 * browser (onnxruntime-web).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers on every response; HTML gets the CSP besides. */
export const securityHeaders = fp(
  async (app: FastifyInstance) => {
    app.addHook('onSend', async (_request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      reply.header('x-content-type-options', 'nosniff');
      reply.header('referrer-policy', 'no-referrer');
      const type = String(reply.getHeader('content-type') ?? '');
      if (type.startsWith('text/html')) {
        reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
        reply.header('x-frame-options', 'DENY');
      }
      return payload;
    });
  },
  { name: 'clip-iqa-security-headers' },
);

export const staticPlugin = fp(
  async (app: FastifyInstance) => {
    const scripts = pageScripts();
    await app.register(fastifyStatic, {
      root: WEB,
      prefix: '/',
      // Routes for the files that exist, not a catch-all: unknown paths stay JSON 404s like the API's.
      wildcard: false,
      index: 'index.html',
      schemaHide: true,
      cacheControl: false,
      setHeaders: (reply) => void reply.header('cache-control', 'no-cache'),
    });
    app.get('/docs', { schema: { hide: true } }, (_request, reply) => reply.header('cache-control', 'no-cache').sendFile('docs.html', WEB));
    for (const script of scripts) {
      app.get(`/assets/${script}`, { schema: { hide: true } }, (_request, reply) =>
        reply.header('cache-control', 'no-cache').sendFile(script, DIST, { cacheControl: false }),
      );
    }
    // Without the browser build (a package built by tsc alone) the page offers server scoring only.
    if (existsSync(join(BROWSER, 'clip-iqa.js'))) {
      await app.register(fastifyStatic, {
        root: BROWSER,
        prefix: '/assets/browser/',
        decorateReply: false,
        wildcard: false,
        schemaHide: true,
        cacheControl: false,
        allowedPath: (path) => !path.endsWith('.map') && !path.endsWith('.d.ts'),
        setHeaders: (reply) => void reply.header('cache-control', 'no-cache'),
      });
    }
  },
  { name: 'clip-iqa-static' },
);
