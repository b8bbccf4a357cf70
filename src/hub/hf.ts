/**
 * The Hugging Face hub's download protocol, as huggingface_hub speaks it (MODEL-SOURCES.md §5):
 *
 * - a file is at `{endpoint}/{repo}/resolve/{revision}/{path}` (revision URL-encoded whole, path per segment);
 * - a HEAD request, following only redirects that stay on the hub's host (a 307 to `/api/resolve-cache/…`),
 *   stops at the first cross-host redirect (a 302 to the CDN holding LFS files) or a 2xx, and reads
 *   `X-Repo-Commit` (the commit the revision names), `X-Linked-Etag` or `ETag` (an LFS file's SHA-256, or a
 *   small file's git blob id) and `X-Linked-Size` or `Content-Length`;
 * - the token (HF_TOKEN, …) goes in `authorization: Bearer …` to the hub's host only.
 *
 * `hf:` ids name a repository, a revision and optionally a file, as huggingface_hub's file system paths do:
 * `hf:ORG/NAME[@REVISION][/PATH/IN/REPO]`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ClipIqaError } from '../errors.js';
import { COMMIT } from './cache.js';
import { REDIRECTS, type Response, redirectTarget, requestHttp } from './download.js';
import type { HubSettings } from './settings.js';

export interface HfId {
  /** `ORG/NAME`. */
  readonly repo: string;
  /** A branch, tag or commit; default `main`. */
  readonly revision: string;
  /** A file in the repository; null: the model's weights, picked by name (see weights/files.ts). */
  readonly file: string | null;
}

export const HF_PREFIX = 'hf:';
const PART = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

/**
 * Parses `hf:ORG/NAME[@REVISION][/PATH]`. A revision holding a slash is written URL-encoded (`feature%2Fx`),
 * except pull-request refs, which are written as they are named: `hf:openai/clip-vit-base-patch32@refs/pr/66`.
 */
export function parseHfId(spec: string): HfId {
  const bad = (why: string) =>
    new ClipIqaError('E_OPTION', `"${spec}" is not a Hugging Face id: ${why}. Write hf:ORG/NAME, hf:ORG/NAME@REVISION or hf:ORG/NAME[@REVISION]/FILE.`);
  const rest = spec.slice(HF_PREFIX.length).replace(/^\/\//, '');
  const parts = rest.split('/');
  const org = parts[0] ?? '';
  let name = parts[1] ?? '';
  let tail = parts.slice(2);
  let revision = 'main';
  const at = name.indexOf('@');
  if (at >= 0) {
    revision = name.slice(at + 1);
    name = name.slice(0, at);
    if (revision === 'refs' && tail[0] === 'pr' && /^\d+$/.test(tail[1] ?? '')) {
      revision = `refs/pr/${tail[1]}`;
      tail = tail.slice(2);
    } else {
      try {
        revision = decodeURIComponent(revision);
      } catch {
        throw bad(`the revision "${revision}" is not validly URL-encoded`);
      }
    }
    if (!revision || /[\s\\]|\.\./.test(revision)) throw bad(`the revision "${revision}" is not a branch, tag or commit`);
  }
  if (!PART.test(org) || !PART.test(name)) throw bad('ORG and NAME are letters, digits, ".", "_" and "-"');
  const file = tail.length === 0 || (tail.length === 1 && tail[0] === '') ? null : tail.join('/');
  if (file !== null && (file.startsWith('/') || file.split('/').some((p) => p === '' || p === '.' || p === '..'))) throw bad(`"${file}" is not a file path inside a repository`);
  return { repo: `${org}/${name}`, revision, file };
}

/** The id written back: `hf:ORG/NAME@REVISION/PATH`. */
export function formatHfId(id: { repo: string; revision?: string | null; file?: string | null }): string {
  const rev = id.revision && id.revision !== 'main' ? `@${id.revision.startsWith('refs/pr/') ? id.revision : encodeURIComponent(id.revision)}` : '';
  return `${HF_PREFIX}${id.repo}${rev}${id.file ? `/${id.file}` : ''}`;
}

/** Where the hub serves a file: the revision URL-encoded whole (`refs%2Fpr%2F66`), the path per segment. */
export function resolveUrl(endpoint: string, repo: string, revision: string, path: string): string {
  return `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

/** What the hub says of a file before it is downloaded. */
export interface HfFileInfo {
  /** The commit the revision names (X-Repo-Commit); null when a server (a mirror, a proxy) does not send it. */
  readonly commit: string | null;
  /** The SHA-256 of an LFS file (its X-Linked-Etag). */
  readonly sha256: string | null;
  /** The git blob id of a small, non-LFS file (its ETag). */
  readonly gitSha1: string | null;
  /** X-Linked-Size, or Content-Length of a final (non-redirect) answer. */
  readonly size: number | null;
}

/** Why a file could not be had from the hub: `missing` lets the caller try the next file name. */
export class HfError extends Error {
  constructor(
    message: string,
    readonly missing: boolean,
    /** Worth asking again later: no answer, 5xx, 429. */
    readonly transient = false,
  ) {
    super(message);
  }
}

function normaliseEtag(v: string | undefined): string | null {
  if (!v) return null;
  return v.replace(/^W\//, '').replace(/^"|"$/g, '').toLowerCase();
}

/** The `authorization` header for the hub's host, if there is a token. */
export function hubAuth(st: HubSettings): { host: string; header: string } | null {
  const t = st.hfToken();
  return t ? { host: new URL(st.hfEndpoint).host, header: `Bearer ${t.token}` } : null;
}

function statusError(res: Response, repo: string, file: string, revision: string, st: HubSettings): HfError {
  const code = res.header('x-error-code') ?? '';
  const token = st.hfToken();
  if (res.status === 401 || res.status === 403) {
    const gated = res.status === 403 || /gated/i.test(res.header('x-error-message') ?? '');
    const how = token
      ? `the token from ${token.from} does not give access to it${gated ? ' (accept its conditions on its page first)' : ''}`
      : 'set HF_TOKEN to an access token that can read it (huggingface.co/settings/tokens), or log in with `huggingface-cli login`';
    return new HfError(`HTTP ${res.status} for ${repo}: the repository does not exist, or it is private or gated, and ${how}`, false);
  }
  if (res.status === 404) {
    if (code === 'RepoNotFound') return new HfError(`HTTP 404: there is no repository ${repo}`, false);
    if (code === 'RevisionNotFound') return new HfError(`HTTP 404: ${repo} has no revision "${revision}"`, false);
    return new HfError(`HTTP 404: ${repo} has no file ${file} at revision ${revision}`, true);
  }
  return new HfError(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''} from ${res.url}`, false, res.status >= 500 || res.status === 429 || res.status === 408);
}

export interface InfoOptions {
  readonly connectTimeoutMs?: number;
  /** Retries after a failure that may pass (no answer, 5xx, 429); default 4. */
  readonly retries?: number;
  /** First backoff delay, doubling; default 1000 ms. */
  readonly retryDelayMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * HEADs a file of a repository (see `headOnce`), retrying with backoff while the failure may pass, as
 * huggingface_hub does. Throws HfError for a missing file or a refusal.
 */
export async function fileInfo(st: HubSettings, repo: string, revision: string, file: string, o: InfoOptions = {}): Promise<HfFileInfo> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await headOnce(st, repo, revision, file, o.connectTimeoutMs ?? 30_000, o.signal);
    } catch (e) {
      if (!(e instanceof HfError) || !e.transient || attempt >= (o.retries ?? 4)) throw e;
      await sleep((o.retryDelayMs ?? 1000) * 2 ** attempt, undefined, { signal: o.signal });
    }
  }
}

/**
 * One HEAD of a file: relative (same-host) redirects are followed, the first cross-host one is where the metadata is
 * read, as huggingface_hub does.
 */
async function headOnce(st: HubSettings, repo: string, revision: string, file: string, timeoutMs: number, signal?: AbortSignal): Promise<HfFileInfo> {
  const auth = hubAuth(st);
  let url = new URL(resolveUrl(st.hfEndpoint, repo, revision, file));
  const headers: Record<string, string> = { 'user-agent': 'clip-iqa', 'accept-encoding': 'identity' };
  for (let hop = 0; ; hop++) {
    let res: Response;
    try {
      res = await requestHttp(url, auth && url.host === auth.host ? { ...headers, authorization: auth.header } : headers, timeoutMs, signal, 'HEAD');
    } catch (e) {
      if ((e as Error | null)?.name === 'AbortError') throw e;
      throw new HfError(`cannot reach ${url.origin}: ${(e as Error).message}${st.hfEndpoint === 'https://huggingface.co' ? ' (a mirror: set HF_ENDPOINT)' : ''}`, false, true);
    }
    res.body.resume();
    const redirect = REDIRECTS.includes(res.status);
    const location = res.header('location');
    if (redirect && location && hop < 10) {
      const next = redirectTarget(url, location);
      if (next.host === url.host) {
        url = next;
        continue;
      }
    }
    if (!redirect && (res.status < 200 || res.status >= 300)) throw statusError(res, repo, file, revision, st);
    const etag = normaliseEtag(res.header('x-linked-etag') ?? res.header('etag'));
    const commit = res.header('x-repo-commit')?.trim().toLowerCase() ?? null;
    const sizeHeader = res.header('x-linked-size') ?? (redirect ? undefined : res.header('content-length'));
    const size = sizeHeader !== undefined && /^\d+$/.test(sizeHeader.trim()) ? Number(sizeHeader) : null;
    return {
      commit: commit && COMMIT.test(commit) ? commit : null,
      sha256: etag && /^[0-9a-f]{64}$/.test(etag) ? etag : null,
      gitSha1: etag && COMMIT.test(etag) ? etag : null,
      size,
    };
  }
}
