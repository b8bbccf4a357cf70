/**
 * `url=` images. A server that fetches whatever URL it is given is a proxy into the network it sits in (cloud
 * metadata endpoints, intranet services), so fetching is off unless the operator names the hosts it may reach
 * (`--allow-url-fetch`). Every redirect hop is checked against the same list, the size is capped while the bytes
 * arrive (a missing or lying Content-Length changes nothing), and the whole fetch has a deadline.
 */
import { HttpError } from './errors.js';
import type { Upload } from './limits.js';

export interface FetchLimits {
  /** Host patterns: `example.com`, `*.example.com` (sub-domains only), optionally with `:port`. */
  readonly allow: readonly string[];
  readonly maxBytes: number;
  readonly timeoutMs: number;
}

const MAX_REDIRECTS = 3;

/** Whether `url`'s host (and port, when the pattern names one) is on the list. */
export function hostAllowed(url: URL, allow: readonly string[]): boolean {
  const host = url.hostname.toLowerCase();
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return allow.some((raw) => {
    const pattern = raw.trim().toLowerCase();
    // "[::1]:8080", "host:8080", "host"
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(pattern);
    if (!m) return false;
    const [, name, wantPort] = m;
    if (wantPort && wantPort !== port) return false;
    if (name!.startsWith('*.')) return host.endsWith(name!.slice(1)) && host.length > name!.length - 1;
    return host === name;
  });
}

function parse(raw: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(raw, base);
  } catch {
    throw new HttpError(400, 'E_URL', `"${raw}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new HttpError(400, 'E_URL', `${url.protocol} URLs cannot be fetched; use http or https`);
  if (url.username || url.password) throw new HttpError(400, 'E_URL', 'URLs with credentials are not fetched');
  return url;
}

async function readCapped(response: Response, maxBytes: number, name: string): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel();
    throw new HttpError(413, 'E_TOO_LARGE', `${name}: ${declared} bytes is over the upload limit of ${maxBytes}`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = response.body?.getReader();
  if (!reader) return Buffer.alloc(0);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw new HttpError(413, 'E_TOO_LARGE', `${name}: more than the upload limit of ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total);
}

/** Fetches an image the allow-list permits; errors are HttpErrors (400 URL refused, 413, 502 upstream, 504 timeout). */
export async function fetchImage(raw: string, limits: FetchLimits, signal?: AbortSignal): Promise<Upload> {
  let url = parse(raw);
  const deadline = AbortSignal.timeout(limits.timeoutMs);
  const abort = signal ? AbortSignal.any([signal, deadline]) : deadline;
  try {
    for (let hop = 0; ; hop++) {
      if (!hostAllowed(url, limits.allow)) {
        throw new HttpError(400, 'E_URL', `${url.host} is not among the hosts this server may fetch from${hop > 0 ? ` (redirected from ${raw})` : ''}`);
      }
      // Redirects are followed by hand so that each hop is checked; no cookies or credentials are ever sent.
      const response = await fetch(url, { redirect: 'manual', signal: abort, headers: { accept: 'image/*' } });
      if (response.status >= 300 && response.status < 400 && response.headers.has('location')) {
        await response.body?.cancel();
        if (hop >= MAX_REDIRECTS) throw new HttpError(502, 'E_FETCH', `${raw}: more than ${MAX_REDIRECTS} redirects`);
        url = parse(response.headers.get('location')!, url);
        continue;
      }
      if (!response.ok) {
        await response.body?.cancel();
        throw new HttpError(502, 'E_FETCH', `${raw}: the server answered ${response.status} ${response.statusText}`.trim());
      }
      return { name: raw, bytes: await readCapped(response, limits.maxBytes, raw), contentType: response.headers.get('content-type') ?? undefined };
    }
  } catch (e) {
    if (e instanceof HttpError) throw e;
    if (deadline.aborted) throw new HttpError(504, 'E_FETCH', `${raw}: no complete answer within ${limits.timeoutMs / 1000} s`);
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new HttpError(502, 'E_FETCH', `${raw}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
  }
}
