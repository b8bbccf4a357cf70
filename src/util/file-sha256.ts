/**
 * SHA-256 of local checkpoint files, for results that say exactly which weights scored them. Hashing a 400 MB
 * checkpoint takes a second or more, so each file is hashed once and remembered in `<cache root>/file-hashes.json`,
 * keyed by its real path and checked against its size, modification time and inode: a file changed in place or
 * replaced is hashed again. The memo holds at most a few hundred entries, is replaced atomically (temporary file +
 * rename), and every failure to read or write it is ignored (the hash is then computed, not remembered).
 */
import { mkdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File } from '../hub/cache.js';

const FILE = 'file-hashes.json';
const MAX_ENTRIES = 256;

interface Entry {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  readonly sha256: string;
  readonly used: number;
}

type Memo = Record<string, Entry>;

async function readMemo(path: string): Promise<Memo> {
  try {
    const doc = JSON.parse(await readFile(path, 'utf8')) as unknown;
    return doc && typeof doc === 'object' && !Array.isArray(doc) ? (doc as Memo) : {};
  } catch {
    return {};
  }
}

/**
 * The file's SHA-256 (hex), from the memo under `cacheRoot` when the file is unchanged since it was hashed, else
 * computed (by `compute` when given: a caller that reads the file anyway hashes the bytes it read) and remembered.
 */
export async function rememberedSha256(path: string, cacheRoot: string, compute?: (realPath: string) => Promise<string>): Promise<string> {
  const real = await realpath(path);
  const info = await stat(real);
  const memoPath = join(cacheRoot, FILE);
  const memo = await readMemo(memoPath);
  const known = memo[real];
  if (known && known.size === info.size && known.mtimeMs === info.mtimeMs && known.ino === info.ino && /^[0-9a-f]{64}$/.test(known.sha256)) {
    return known.sha256;
  }
  const sha256 = compute ? await compute(real) : (await sha256File(real)).sha256;
  // Read again just before writing, so that a concurrent run's new entry is kept rather than overwritten.
  const latest = await readMemo(memoPath);
  latest[real] = { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino, sha256, used: Date.now() };
  const entries = Object.entries(latest).sort((a, b) => (b[1].used ?? 0) - (a[1].used ?? 0)).slice(0, MAX_ENTRIES);
  const tmp = `${memoPath}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`;
  try {
    await mkdir(cacheRoot, { recursive: true });
    await writeFile(tmp, JSON.stringify(Object.fromEntries(entries)));
    await rename(tmp, memoPath);
  } catch {
    await rm(tmp, { force: true }).catch(() => undefined);
  }
  return sha256;
}
