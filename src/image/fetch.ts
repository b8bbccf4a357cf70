/**
 * Images named by `http(s)://` URLs, fetched with the safeguards a program that fetches what it is told needs:
 * only http and https (on every redirect hop too: a redirect never leads to `file:` or another scheme), no URLs
 * with credentials, an optional host allow-list checked on every hop, at most a few redirects, a byte cap enforced
 * while the bytes arrive (a missing or lying Content-Length changes nothing), and one deadline for the whole fetch.
 * The library, the CLI and the server (`url=`) all fetch through here.
 */
import { ClipIqaError } from '../errors.js';

export interface UrlFetchOptions {
  /**
   * Hosts that may be fetched from: `example.com`, `*.example.com` (sub-domains only), optionally with `:port`
   * (`[::1]:8080`). Default: any host. A server that fetches for its clients should always give one.
   */
  readonly allowHosts?: readonly string[];
  /** Largest body accepted, in bytes; default 64 MiB. */
  readonly maxBytes?: number;
  /** Deadline of one fetch, redirects included, in milliseconds; default 30 s. */
  readonly timeoutMs?: number;
  /** Redirects followed before giving up; default 3. */
  readonly maxRedirects?: number;
}

export const DEFAULT_URL_FETCH = { maxBytes: 64 * 1024 * 1024, timeoutMs: 30_000, maxRedirects: 3 } as const;

/** Why a fetch failed, for callers that map failures to their own terms (the server's HTTP statuses). */
export type UrlFetchFailure = 'refused' | 'too-large' | 'upstream' | 'timeout';

/** A failed fetch: `E_URL` (refused), `E_TOO_LARGE`, or `E_FETCH` (upstream answer, network, redirects, timeout). */
export class UrlFetchError extends ClipIqaError {
  readonly reason: UrlFetchFailure;

  constructor(reason: UrlFetchFailure, message: string, options?: { cause?: unknown }) {
    super(reason === 'refused' ? 'E_URL' : reason === 'too-large' ? 'E_TOO_LARGE' : 'E_FETCH', message, options);
    this.name = 'UrlFetchError';
    this.reason = reason;
  }
}

export interface FetchedImage {
  /** The URL as given (names the image in results and errors). */
  readonly name: string;
  readonly bytes: Buffer;
  readonly contentType: string | undefined;
}

/** Whether an image source string is a URL to fetch rather than a path (`http://` or `https://`, any case). */
export const isHttpUrl = (s: string): boolean => /^https?:\/\//i.test(s);

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
    throw new UrlFetchError('refused', `"${raw}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UrlFetchError('refused', `${url.protocol} URLs cannot be fetched; use http or https`);
  if (url.username || url.password) throw new UrlFetchError('refused', 'URLs with credentials are not fetched');
  return url;
}

async function readCapped(response: Response, maxBytes: number, name: string): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel();
    throw new UrlFetchError('too-large', `${name}: ${declared} bytes is over the limit of ${maxBytes}`);
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
      throw new UrlFetchError('too-large', `${name}: more than the limit of ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total);
}

/**
 * Fetches one image URL within `options`' limits. `hostsWhat` completes the refusal of a host not on the list
 * ("… is not among the hosts <hostsWhat>"), so that a server can say whose list it is.
 */
export async function fetchImageUrl(
  raw: string,
  options: UrlFetchOptions = {},
  signal?: AbortSignal,
  hostsWhat = 'allowed to be fetched from',
): Promise<FetchedImage> {
  const maxBytes = options.maxBytes ?? DEFAULT_URL_FETCH.maxBytes;
  const timeoutMs = options.timeoutMs ?? DEFAULT_URL_FETCH.timeoutMs;
  const maxRedirects = options.maxRedirects ?? DEFAULT_URL_FETCH.maxRedirects;
  let url = parse(raw);
  const deadline = AbortSignal.timeout(timeoutMs);
  const abort = signal ? AbortSignal.any([signal, deadline]) : deadline;
  try {
    for (let hop = 0; ; hop++) {
      if (options.allowHosts && !hostAllowed(url, options.allowHosts)) {
        throw new UrlFetchError('refused', `${url.host} is not among the hosts ${hostsWhat}${hop > 0 ? ` (redirected from ${raw})` : ''}`);
      }
      // Redirects are followed by hand so that each hop is checked; no cookies or credentials are ever sent.
      const response = await fetch(url, { redirect: 'manual', signal: abort, headers: { accept: 'image/*' } });
      if (response.status >= 300 && response.status < 400 && response.headers.has('location')) {
        await response.body?.cancel();
        if (hop >= maxRedirects) throw new UrlFetchError('upstream', `${raw}: more than ${maxRedirects} redirects`);
        url = parse(response.headers.get('location')!, url);
        continue;
      }
      if (!response.ok) {
        await response.body?.cancel();
        throw new UrlFetchError('upstream', `${raw}: the server answered ${response.status} ${response.statusText}`.trim());
      }
      return { name: raw, bytes: await readCapped(response, maxBytes, raw), contentType: response.headers.get('content-type') ?? undefined };
    }
  } catch (e) {
    if (e instanceof UrlFetchError) throw e;
    if (deadline.aborted) throw new UrlFetchError('timeout', `${raw}: no complete answer within ${timeoutMs / 1000} s`, { cause: e });
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new UrlFetchError('upstream', `${raw}: ${cause?.code ?? cause?.message ?? (e as Error).message}`, { cause: e });
  }
}
