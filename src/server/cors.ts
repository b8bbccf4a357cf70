/**
 * Which web pages may use the API. Browsers let any page send a "simple" cross-origin POST — multipart/form-data
 * included — without asking first; the page cannot read the answer, but the server does the work (and, without a
 * token, a page could keep it busy). So a request that carries an `Origin` other than the server's own is refused
 * (403) before its body is read, unless the operator named that origin (`cors`); named origins get CORS headers
 * (@fastify/cors: preflight, allowed methods and headers, Retry-After readable) so that their pages can read the
 * answers. Clients that are not browsers send no Origin and are not affected; nor is the server's own page.
 */
import cors from '@fastify/cors';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { HttpError } from './errors.js';
import type { Settings } from './options.js';

/** Seconds a browser may cache a preflight answer. */
const PREFLIGHT_MAX_AGE_S = 600;

/** The origin's scheme, host and port, normalised as browsers send it; undefined for `null` and garbage. */
function normalise(origin: string): string | undefined {
  try {
    const url = new URL(origin);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : undefined;
  } catch {
    return undefined;
  }
}

export const corsPlugin = fp<{ settings: Settings }>(
  async (app: FastifyInstance, { settings }) => {
    const any = settings.cors.includes('*');
    const named = new Set(settings.cors.filter((o) => o !== '*').map((o) => normalise(o) ?? o));
    const allowed = (origin: string) => any || named.has(normalise(origin) ?? '');

    app.addHook('onRequest', async (request: FastifyRequest) => {
      const origin = request.headers.origin;
      if (origin === undefined) return;
      const own = normalise(origin);
      // Same origin: the server's own page (the Host header has been checked by hosts.ts).
      if (own !== undefined && new URL(own).host === request.headers.host) return;
      if (allowed(origin)) return;
      throw new HttpError(
        403,
        'E_ORIGIN',
        `pages from ${origin} may not use this server's API; start it with --cors ${own ?? '<origin>'} to let them`,
      );
    });

    if (settings.cors.length === 0) return;
    await app.register(cors, {
      origin: any ? true : [...named],
      methods: ['GET', 'HEAD', 'POST'],
      allowedHeaders: ['authorization', 'content-type'],
      exposedHeaders: ['retry-after'],
      maxAge: PREFLIGHT_MAX_AGE_S,
      // Preflights are answered in the hook, before authentication (browsers never send tokens with them).
      hideOptionsRoute: true,
    });
  },
  { name: 'clip-iqa-cors' },
);
