/**
 * Files a Python user already downloaded with huggingface_hub (open_clip, transformers, `huggingface-cli
 * download`), used where they lie, read-only, with no request:
 *
 *   <HF_HUB_CACHE>/models--<org>--<name>/refs/<revision>            the commit a branch or tag named
 *   <HF_HUB_CACHE>/models--<org>--<name>/snapshots/<commit>/<path>  → ../../blobs/<etag> (a relative link)
 *   <HF_HUB_CACHE>/models--<org>--<name>/.no_exist/<commit>/<path>  a file known to be absent
 *
 * Links are what this cache is made of, so here they are followed, but only into the repository's own `blobs/`
 * (a link anywhere else is ignored); a snapshot file that is a plain copy (Windows without symlinks) is used too.
 * An LFS blob is named by its SHA-256, which is compared with a pinned hash instead of re-hashing gigabytes.
 */
import { lstat, realpath, stat } from 'node:fs/promises';
import { basename, join, sep } from 'node:path';
import { COMMIT, commitIn } from './cache.js';

export interface HfCacheFile {
  /** The path in the snapshot (a link into blobs/, or a copy). */
  readonly path: string;
  readonly commit: string;
  /** The blob's name when it is a SHA-256 (LFS files); null otherwise. */
  readonly sha256: string | null;
}

export const repoDir = (root: string, repo: string): string => join(root, `models--${repo.replace('/', '--')}`);

/** The commit a revision names in the cache: itself when it is one, else `refs/<revision>`; null when unknown. */
export async function cachedCommit(root: string, repo: string, revision: string): Promise<string | null> {
  return COMMIT.test(revision) ? revision : commitIn(join(repoDir(root, repo), 'refs', ...revision.split('/')));
}

/** A file of the repository at `commit`, if the cache holds it whole; null otherwise. */
export async function cachedFile(root: string, repo: string, commit: string, file: string): Promise<HfCacheFile | null> {
  const dir = repoDir(root, repo);
  const path = join(dir, 'snapshots', commit, ...file.split('/'));
  try {
    const link = await lstat(path);
    if (link.isFile()) return { path, commit, sha256: null };
    if (!link.isSymbolicLink()) return null;
    const [target, blobs] = await Promise.all([realpath(path), realpath(join(dir, 'blobs'))]);
    if (!target.startsWith(blobs + sep) || !(await stat(target)).isFile()) return null;
    const blob = basename(target);
    return { path, commit, sha256: /^[0-9a-f]{64}$/.test(blob) ? blob : null };
  } catch {
    return null;
  }
}
