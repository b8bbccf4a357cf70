/**
 * `url=` images. A server that fetches whatever URL it is given is a proxy into the network it sits in (cloud
 * metadata endpoints, intranet services), so fetching is off unless the operator names the hosts it may reach
 * (`--allow-url-fetch`). The fetch itself, with its safeguards (every redirect hop checked against the list, http(s)
 * only, the size capped while the bytes arrive, one deadline), is the library's; here its failures become statuses.
 */
import { fetchImageUrl, hostAllowed, type UrlFetchFailure, UrlFetchError } from '../image/fetch.js';
import { HttpError } from './errors.js';
import type { Upload } from './limits.js';

export { hostAllowed };

export interface FetchLimits {
  /** Host patterns: `example.com`, `*.example.com` (sub-domains only), optionally with `:port`. */
  readonly allow: readonly string[];
  readonly maxBytes: number;
  readonly timeoutMs: number;
}

const STATUS: Record<UrlFetchFailure, number> = { refused: 400, 'too-large': 413, upstream: 502, timeout: 504 };

/** Fetches an image the allow-list permits; errors are HttpErrors (400 URL refused, 413, 502 upstream, 504 timeout). */
export async function fetchImage(raw: string, limits: FetchLimits, signal?: AbortSignal): Promise<Upload> {
  try {
    const options = { allowHosts: limits.allow, maxBytes: limits.maxBytes, timeoutMs: limits.timeoutMs };
    return await fetchImageUrl(raw, options, signal, 'this server may fetch from');
  } catch (e) {
    if (e instanceof UrlFetchError) throw new HttpError(STATUS[e.reason], e.code, e.message);
    throw e;
  }
}
