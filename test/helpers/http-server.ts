/**
 * A local HTTP server on 127.0.0.1 for download tests: serves byte buffers from a map with Range support, and can
 * misbehave on purpose (cut the connection, ignore Range, answer a chosen status, redirect, delay, stall, trickle).
 * Every request is recorded so tests can count them and inspect their headers.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Route {
  /** The file served. */
  body?: Buffer;
  /** Answer this status instead of serving the body (with `body` as the response body if given). */
  status?: number;
  /** Statuses for the first requests, one each, after which the route behaves normally (e.g. [503, 503]). */
  statusSequence?: number[];
  /** Extra response headers. */
  headers?: Record<string, string>;
  /** Answer 302 (or `redirectStatus`) to this location (absolute, or a path on this server), with `headers`. */
  redirect?: string;
  redirectStatus?: number;
  /** Answer 401 unless the request carries `authorization: Bearer <requireAuth>` (a private repository). */
  requireAuth?: string;
  /** Send no Content-Length (a chunked body whose size the client learns only at its end). */
  chunked?: boolean;
  /** Always send the whole file with 200, ignoring Range (as some servers and proxies do). */
  ignoreRange?: boolean;
  /** Send this many body bytes, then destroy the connection; applies `cutTimes` times (default 1). */
  cutAfterBytes?: number;
  cutTimes?: number;
  /** Send this many body bytes, then nothing more while keeping the connection open. */
  stallAfterBytes?: number;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Send the body in chunks of `chunkBytes` every `intervalMs` (slow links, concurrency tests). */
  trickle?: { chunkBytes: number; intervalMs: number };
  /** ETag to send (default: a strong tag from the body's hash); null for none. */
  etag?: string | null;
  /** Answer 206 with this Content-Range instead of the right one (to test validation). */
  wrongContentRange?: string;
}

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly status: number;
}

export interface TestServer {
  /** http://127.0.0.1:<port> */
  readonly origin: string;
  url(path: string): string;
  /** Adds or replaces a route. */
  route(path: string, route: Route): void;
  readonly requests: RequestRecord[];
  /** Requests so far, to `path` when given. */
  count(path?: string): number;
  close(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'invalid' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'invalid';
  if (m[1] === '') {
    const n = Number(m[2]);
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'invalid';
  return { start, end };
}

async function send(res: ServerResponse, data: Buffer, route: Route, cut: boolean): Promise<void> {
  const limit = cut ? route.cutAfterBytes! : route.stallAfterBytes ?? data.length;
  const payload = data.subarray(0, Math.min(limit, data.length));
  if (route.trickle) {
    for (let i = 0; i < payload.length && !res.destroyed; i += route.trickle.chunkBytes) {
      res.write(payload.subarray(i, i + route.trickle.chunkBytes));
      await sleep(route.trickle.intervalMs);
    }
  } else if (payload.length > 0) {
    await new Promise<void>((r) => res.write(payload, () => r()));
  }
  if (cut) {
    // Let the bytes leave, then drop the connection mid-body.
    await sleep(20);
    res.socket?.destroy();
    return;
  }
  if (route.stallAfterBytes !== undefined && route.stallAfterBytes < data.length) return; // hang: the client must time out
  res.end();
}

export async function startServer(routes: Record<string, Route> = {}): Promise<TestServer> {
  const table = new Map<string, Route>(Object.entries(routes));
  const requests: RequestRecord[] = [];
  const sockets = new Set<Socket>();

  const server = createServer((req, res) => {
    void (async () => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      const route = table.get(path);
      const record = (status: number): void => {
        requests.push({ method: req.method ?? 'GET', path, headers: req.headers, status });
      };
      if (!route) {
        record(404);
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      if (route.requireAuth !== undefined && req.headers.authorization !== `Bearer ${route.requireAuth}`) {
        record(401);
        res.writeHead(401, { 'content-type': 'text/plain', 'x-error-code': 'RepoNotFound' }).end('Invalid credentials');
        return;
      }
      if (route.delayMs) await sleep(route.delayMs);
      const forced = route.statusSequence?.length ? route.statusSequence.shift() : route.status;
      if (forced !== undefined) {
        record(forced);
        res.writeHead(forced, { 'content-type': 'text/plain', ...route.headers }).end(route.body && forced < 300 ? route.body : `status ${forced}`);
        return;
      }
      if (route.redirect) {
        const status = route.redirectStatus ?? 302;
        record(status);
        res.writeHead(status, { ...route.headers, location: route.redirect }).end();
        return;
      }
      const body = route.body ?? Buffer.alloc(0);
      const etag = route.etag === undefined ? `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"` : route.etag;
      const common: Record<string, string> = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', ...route.headers };
      if (etag) common.etag = etag;
      let range = route.ignoreRange ? null : parseRange(req.headers.range, body.length);
      const ifRange = req.headers['if-range'];
      if (range && ifRange && ifRange !== etag) range = null; // the file changed: send all of it
      if (range === 'invalid') {
        record(416);
        res.writeHead(416, { ...common, 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      const cut = route.cutAfterBytes !== undefined && (route.cutTimes ?? 1) > 0;
      if (cut) route.cutTimes = (route.cutTimes ?? 1) - 1;
      if (range) {
        record(206);
        const slice = body.subarray(range.start, range.end + 1);
        res.writeHead(206, {
          ...common,
          'content-length': String(slice.length),
          'content-range': route.wrongContentRange ?? `bytes ${range.start}-${range.end}/${body.length}`,
        });
        await send(res, slice, route, cut);
        return;
      }
      record(200);
      res.writeHead(200, route.chunked ? common : { ...common, 'content-length': String(body.length) });
      await send(res, body, route, cut);
    })().catch(() => res.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    origin,
    url: (p) => `${origin}${p.startsWith('/') ? p : `/${p}`}`,
    route: (p, r) => void table.set(p, r),
    requests,
    count: (p) => (p === undefined ? requests.length : requests.filter((r) => r.path === p).length),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
