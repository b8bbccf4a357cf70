/**
 * Optional bearer token. Routes that spend the model's time or describe the server (`config: { auth: true }`:
 * /v1/*, /metrics) need `Authorization: Bearer <token>` when a token is set; health checks, the page and the docs
 * stay open so that probes and people can reach them (the page asks for the token when the API wants one).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { HttpError } from './errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route needs the bearer token when the server has one. */
    auth?: boolean;
  }
}

/** Compared as SHA-256 digests: equal lengths for timingSafeEqual, and no early exit that leaks the token's length. */
const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export const authPlugin = fp<{ token: string | undefined }>(
  async (app: FastifyInstance, { token }) => {
    if (token === undefined) return;
    const expected = digest(token);
    app.addHook('onRequest', async (request: FastifyRequest, _reply: FastifyReply) => {
      if (request.routeOptions.config.auth !== true) return;
      const header = request.headers.authorization ?? '';
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (m && timingSafeEqual(digest(m[1]!), expected)) return;
      throw new HttpError(
        401,
        'E_UNAUTHORIZED',
        header ? 'the bearer token is wrong' : 'this server needs a bearer token: send the header "Authorization: Bearer <token>"',
        { 'www-authenticate': `Bearer realm="clip-iqa"${header ? ', error="invalid_token"' : ''}` },
      );
    });
  },
  { name: 'clip-iqa-auth' },
);
