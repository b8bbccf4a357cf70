/**
 * A static file server on 127.0.0.1 for the browser build's tests: URL prefixes mapped to folders, the MIME types a
 * static host must send (application/wasm, text/javascript for .mjs), optionally the COOP/COEP headers that make
 * a page cross-origin isolated (WASM threads), and a log of every request.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';

export const MIME: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.gz': 'application/gzip',
  '.map': 'application/json',
};

export interface StaticServer {
  readonly origin: string;
  url(path: string): string;
  /** Paths requested so far, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

export interface StaticServerOptions {
  /** URL prefix (`/app/`) → folder. */
  readonly mounts: Readonly<Record<string, string>>;
  /** Extra pages: path → HTML. */
  readonly pages?: Readonly<Record<string, string>>;
  /** Send Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp. */
  readonly isolated?: boolean;
}

export async function startStaticServer(options: StaticServerOptions): Promise<StaticServer> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    const headers: Record<string, string> = options.isolated ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' } : {};
    const page = options.pages?.[path];
    if (page !== undefined) {
      res.writeHead(200, { ...headers, 'content-type': MIME['.html']! });
      res.end(page);
      return;
    }
    const prefix = Object.keys(options.mounts).find((p) => path.startsWith(p));
    const file = prefix === undefined ? undefined : normalize(join(options.mounts[prefix]!, path.slice(prefix.length)));
    if (!file || !file.startsWith(normalize(options.mounts[prefix!]!) + sep)) {
      res.writeHead(404, headers).end();
      return;
    }
    stat(file).then(
      (st) => {
        if (!st.isFile()) return void res.writeHead(404, headers).end();
        res.writeHead(200, { ...headers, 'content-type': MIME[extname(file)] ?? 'application/octet-stream', 'content-length': String(st.size) });
        createReadStream(file).pipe(res);
      },
      () => res.writeHead(404, headers).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    url: (path) => `${origin}${path}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
