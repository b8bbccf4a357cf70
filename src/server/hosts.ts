/**
 * Which Host headers the server answers. A server on 127.0.0.1 is reachable from any web page its user opens: a
 * page on attacker.example whose name is re-pointed at 127.0.0.1 after it loaded (DNS rebinding) talks to this
 * server as its own origin and can read the answers. Its requests still say `Host: attacker.example`, so a server
 * that answers only the names it is known by (by default, on a loopback address: localhost, 127.0.0.1, [::1]) is
 * out of reach. A server on another address answers any host unless `allowedHosts` names them.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { HttpError } from './errors.js';
import { hostAllowed } from '../image/fetch.js';
import type { Settings } from './options.js';

export const LOOPBACK_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

const isLoopback = (address: string): boolean => /^127\./.test(address) || address === '::1' || /^::ffff:127\./i.test(address);

/** A Host header's name and port, as a URL to match patterns against; undefined for anything that is not one. */
function parseHost(header: string | undefined): URL | undefined {
  if (!header || !/^(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(:\d{1,5})?$/i.test(header)) return undefined;
  try {
    return new URL(`http://${header}`);
  } catch {
    return undefined;
  }
}

export const hostsPlugin = fp<{ settings: Settings }>(
  async (app: FastifyInstance, { settings }) => {
    let allowed = settings.allowedHosts;
    app.addHook('onRequest', async (request: FastifyRequest) => {
      if (allowed === undefined) {
        const address = app.server.address() as AddressInfo | string | null;
        // Not listening (fastify.inject) counts as loopback: the strict default.
        const loopback = address === null || typeof address === 'string' || isLoopback(address.address);
        const decided = loopback ? LOOPBACK_HOSTS : ['*'];
        if (address !== null) allowed = decided;
        if (decided.includes('*')) return;
        return check(request, decided);
      }
      if (allowed.includes('*')) return;
      return check(request, allowed);
    });
  },
  { name: 'clip-iqa-hosts' },
);

function check(request: FastifyRequest, allowed: readonly string[]): void {
  const host = parseHost(request.headers.host);
  if (host && hostAllowed(host, allowed)) return;
  throw new HttpError(
    403,
    'E_HOST',
    `this server does not answer for the host "${String(request.headers.host ?? '')}"; use ${allowed.join(', ')}, or start it with --allowed-hosts naming the host`,
  );
}
