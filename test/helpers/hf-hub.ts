/**
 * A loopback Hugging Face hub that answers as the real one does (MODEL-SOURCES.md §5.1), on two servers:
 *
 * - the hub: `{endpoint}/{repo}/resolve/{revision}/{file}` for every branch and the commit. An LFS file (weights,
 *   anything over 10 KB) answers 302 to the CDN with `X-Repo-Commit`, `X-Linked-Etag` (its SHA-256) and
 *   `X-Linked-Size`; a small file answers, for a branch, a relative 307 to `/api/resolve-cache/models/…/{commit}/…`,
 *   and there (or for a commit) 200 with its git blob id as ETag. A private repository answers 401 without the
 *   token; anything else unknown answers 404.
 * - the CDN, on another port: `/repos/{repo}/blobs/{sha256}?sig=…`, with Range. `corrupt` files are served with other bytes than
 *   their published SHA-256.
 *
 * Both record every request, so tests can check which carried a token.
 */
import { createHash } from 'node:crypto';
import { startServer, type TestServer } from './http-server.js';

export interface HfRepo {
  /** Path in the repository → content. */
  readonly files: Readonly<Record<string, Buffer>>;
  /** Needs `authorization: Bearer <token>`. */
  readonly private?: boolean;
  /** Files the CDN serves with other bytes than the hub publishes (a wrong hash). */
  readonly corrupt?: readonly string[];
  /** Branches besides the commit (default `main`). */
  readonly branches?: readonly string[];
}

export interface HfHub {
  /** HF_ENDPOINT. */
  readonly endpoint: string;
  readonly hub: TestServer;
  readonly cdn: TestServer;
  /** The commit each repository's branches name. */
  commitOf(repo: string): string;
  /** Every request either server saw, with its headers. */
  requests(): { host: 'hub' | 'cdn'; method: string; path: string; authorization: string | undefined; status: number }[];
  close(): Promise<void>;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const gitBlob = (b: Buffer): string => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const isLfs = (path: string, body: Buffer): boolean => /\.(safetensors|bin|pth|pt)$/.test(path) || body.length > 10_240;

export async function startHfHub(repos: Readonly<Record<string, HfRepo>>, options: { token?: string } = {}): Promise<HfHub> {
  const [hub, cdn] = await Promise.all([startServer(), startServer()]);
  const commits = new Map<string, string>();
  for (const [repo, r] of Object.entries(repos)) {
    const commit = createHash('sha1').update(`${repo}:${Object.keys(r.files).join(',')}`).digest('hex');
    commits.set(repo, commit);
    const auth = r.private ? { requireAuth: options.token ?? 'hf_secret' } : {};
    for (const [path, body] of Object.entries(r.files)) {
      const lfs = isLfs(path, body);
      const sha = sha256(body);
      if (lfs) {
        const served = r.corrupt?.includes(path) ? Buffer.concat([body.subarray(0, body.length - 1), Buffer.from([body[body.length - 1]! ^ 1])]) : body;
        cdn.route(`/repos/${repo}/blobs/${sha}`, { body: served });
      }
      for (const rev of [commit, ...(r.branches ?? ['main'])]) {
        const url = `/${repo}/resolve/${rev}/${path}`; // the server matches decoded paths
        const meta = { 'x-repo-commit': commit };
        if (lfs) {
          hub.route(url, {
            ...auth,
            redirect: cdn.url(`/repos/${repo}/blobs/${sha}?sig=${commit.slice(0, 8)}`),
            headers: { ...meta, 'x-linked-etag': `"${sha}"`, 'x-linked-size': String(body.length), etag: `"${gitBlob(body)}"` },
          });
        } else if (rev !== commit) {
          hub.route(url, { ...auth, redirect: `/api/resolve-cache/models/${repo}/${commit}/${path}`, redirectStatus: 307, headers: meta });
        } else {
          hub.route(url, { ...auth, body, headers: meta, etag: `"${gitBlob(body)}"` });
          hub.route(`/api/resolve-cache/models/${repo}/${commit}/${path}`, { ...auth, body, headers: meta, etag: `"${gitBlob(body)}"` });
        }
      }
    }
  }
  return {
    endpoint: hub.origin,
    hub,
    cdn,
    commitOf: (repo) => commits.get(repo)!,
    requests: () => [
      ...hub.requests.map((q) => ({ host: 'hub' as const, method: q.method, path: q.path, authorization: q.headers.authorization, status: q.status })),
      ...cdn.requests.map((q) => ({ host: 'cdn' as const, method: q.method, path: q.path, authorization: q.headers.authorization, status: q.status })),
    ],
    close: async () => {
      await Promise.all([hub.close(), cdn.close()]);
    },
  };
}

/** A huggingface_hub cache tree as Python writes it: blobs by etag, snapshot links relative to them, refs. */
export async function writeHfCache(root: string, repo: string, commit: string, files: Readonly<Record<string, Buffer>>, refs: readonly string[] = ['main']): Promise<void> {
  const { mkdir, symlink, writeFile } = await import('node:fs/promises');
  const { dirname, join, relative } = await import('node:path');
  const dir = join(root, `models--${repo.replace('/', '--')}`);
  await mkdir(join(dir, 'blobs'), { recursive: true });
  for (const [path, body] of Object.entries(files)) {
    const blob = join(dir, 'blobs', isLfs(path, body) ? sha256(body) : gitBlob(body));
    await writeFile(blob, body);
    const link = join(dir, 'snapshots', commit, ...path.split('/'));
    await mkdir(dirname(link), { recursive: true });
    await symlink(relative(dirname(link), blob), link);
  }
  for (const ref of refs) {
    await mkdir(dirname(join(dir, 'refs', ref)), { recursive: true });
    await writeFile(join(dir, 'refs', ref), commit);
  }
}
