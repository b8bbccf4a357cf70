/**
 * A cross-process lock file, so that two processes pulling the same checkpoint do one download.
 *
 * The lock is a file created with O_EXCL (`wx`) that holds the owner's pid, host and start time. While held, the
 * owner touches its mtime every `staleMs / 4`, so a lock whose mtime is older than `staleMs` belongs to a process
 * that died or hung (even on another host sharing the cache over a network file system). On the same host a dead
 * pid makes the lock stale at once. Waiting is a sleep between checks, never a spin.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { link, open, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClipIqaError, errCode } from '../errors.js';
import { cacheError } from './cache.js';

export interface LockInfo {
  readonly pid: number;
  readonly hostname: string;
  /** ISO time the lock was taken. */
  readonly createdAt: string;
  /** What the owner is doing, for the waiting message ("downloading RN50.pt"). */
  readonly purpose: string;
  /** Random, to tell this lock from a later one at the same path. */
  readonly token: string;
}

export interface LockOptions {
  /** What the lock protects, shown to whoever waits: "downloading RN50.pt". */
  readonly purpose: string;
  /**
   * How long to wait for a live owner, in ms, counted from the last sign of progress (see `activity`).
   * Default 5 minutes.
   */
  readonly timeoutMs?: number;
  /** A lock not refreshed for this long is abandoned. Default 60 s; the owner refreshes at a quarter of it. */
  readonly staleMs?: number;
  /** First delay between checks, doubling up to 1 s. Default 50 ms. */
  readonly pollMs?: number;
  readonly signal?: AbortSignal;
  /** Called once when the lock is busy and we start waiting (and again if the owner changes). */
  readonly onWait?: (owner: LockInfo | null, lockPath: string) => void;
  /**
   * A probe of the owner's progress (e.g. the size of its partial file). While its value keeps changing the
   * wait goes on past `timeoutMs`: a slow download of a big file is not a hung one.
   */
  readonly activity?: () => Promise<unknown>;
  /** Told when the owner's lock was found abandoned and removed. */
  readonly onStale?: (owner: LockInfo | null, lockPath: string) => void;
}

export interface Lock {
  readonly path: string;
  readonly info: LockInfo;
  /** Removes the lock if it is still ours. Safe to call twice. */
  release(): Promise<void>;
  /** The same, synchronously: for a process that is about to end (a signal handler). */
  releaseSync(): void;
}

const DEFAULT_TIMEOUT_MS = 5 * 60_000;
const DEFAULT_STALE_MS = 60_000;

async function readInfo(path: string): Promise<LockInfo | null> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<LockInfo>;
    if (typeof parsed.pid !== 'number' || typeof parsed.token !== 'string') return null;
    return {
      pid: parsed.pid,
      hostname: String(parsed.hostname ?? ''),
      createdAt: String(parsed.createdAt ?? ''),
      purpose: String(parsed.purpose ?? ''),
      token: parsed.token,
    };
  } catch {
    // Missing, or caught between its creation and its write: the caller judges by mtime alone.
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return errCode(e) === 'EPERM';
  }
}

function describeOwner(owner: LockInfo | null): string {
  if (!owner) return 'another process';
  const host = owner.hostname && owner.hostname !== hostname() ? ` on ${owner.hostname}` : '';
  return `process ${owner.pid}${host} (${owner.purpose || 'working'} since ${owner.createdAt || 'an unknown time'})`;
}

/** Why a lock is abandoned, or null when its owner may still be alive. */
function staleReason(owner: LockInfo | null, mtimeMs: number, staleMs: number): string | null {
  const age = Date.now() - mtimeMs;
  if (owner && owner.hostname === hostname() && owner.pid !== process.pid && !pidAlive(owner.pid)) {
    return `process ${owner.pid} no longer exists`;
  }
  if (age > staleMs) return `it has not been refreshed for ${Math.round(age / 1000)} s`;
  return null;
}

/**
 * Removes an abandoned lock without removing a fresh one that replaced it in the meantime: move it aside
 * (atomic), then check that what was moved is the file judged stale (same inode); if not, put it back with
 * `link`, which fails rather than overwrite a lock taken in between.
 */
async function breakLock(path: string, judgedIno: number): Promise<void> {
  const grave = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(path, grave);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return;
    throw e;
  }
  try {
    const moved = await stat(grave);
    if (moved.ino !== judgedIno) await link(grave, path).catch(() => undefined);
  } finally {
    await unlink(grave).catch(() => undefined);
  }
}

function lockError(path: string, e: unknown): ClipIqaError {
  return cacheError(e, path, `creating the lock file ${path}`);
}

/** Takes the lock at `path`, waiting for a live owner and breaking an abandoned lock. */
export async function acquireLock(path: string, options: LockOptions): Promise<Lock> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
  const info: LockInfo = {
    pid: process.pid,
    hostname: hostname(),
    createdAt: new Date().toISOString(),
    purpose: options.purpose,
    token: randomBytes(8).toString('hex'),
  };
  let delay = options.pollMs ?? 50;
  let deadline = Date.now() + timeoutMs;
  let lastActivity: unknown = undefined;
  let toldOwner: string | null = null;

  for (;;) {
    options.signal?.throwIfAborted();
    let fh;
    try {
      fh = await open(path, 'wx');
    } catch (e) {
      if (errCode(e) !== 'EEXIST') throw lockError(path, e);
    }
    if (fh) {
      try {
        await fh.writeFile(JSON.stringify(info));
        await fh.close();
      } catch (e) {
        // A lock created but left unwritten (disk full) would hold everyone off until it went stale.
        await fh.close().catch(() => undefined);
        await unlink(path).catch(() => undefined);
        throw lockError(path, e);
      }
      return startHeld(path, info, staleMs);
    }

    let st;
    try {
      st = await stat(path);
    } catch (e) {
      if (errCode(e) === 'ENOENT') continue; // released between our open and stat: try again at once
      throw lockError(path, e);
    }
    const owner = await readInfo(path);
    const stale = staleReason(owner, st.mtimeMs, staleMs);
    if (stale !== null) {
      options.onStale?.(owner, path);
      await breakLock(path, st.ino);
      continue;
    }

    const ownerKey = owner?.token ?? 'unknown';
    if (toldOwner !== ownerKey) {
      toldOwner = ownerKey;
      options.onWait?.(owner, path);
    }
    if (options.activity) {
      const now = await options.activity().catch(() => undefined);
      if (now !== lastActivity) {
        lastActivity = now;
        deadline = Date.now() + timeoutMs;
      }
    }
    if (Date.now() >= deadline) {
      throw new ClipIqaError(
        'E_CACHE',
        `Gave up after waiting ${(timeoutMs / 1000).toFixed(timeoutMs < 10_000 ? 1 : 0)} s without progress for ${describeOwner(owner)}, which holds ${path}. ` +
          `If no other clip-iqa process is running, delete that lock file and try again.`,
      );
    }
    await sleep(delay, undefined, { signal: options.signal });
    delay = Math.min(delay * 2, 1000);
  }
}

function startHeld(path: string, info: LockInfo, staleMs: number): Lock {
  let released = false;
  // Refreshing the mtime is what tells waiters we are alive; unref so a held lock never keeps Node running.
  const heartbeat = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => undefined);
  }, Math.max(250, Math.floor(staleMs / 4)));
  heartbeat.unref();
  return {
    path,
    info,
    async release() {
      if (released) return;
      released = true;
      clearInterval(heartbeat);
      // Only remove the lock if it is still ours: had it been broken as stale, it may now be someone else's.
      const current = await readInfo(path);
      if (current?.token === info.token) await unlink(path).catch(() => undefined);
    },
    releaseSync() {
      if (released) return;
      released = true;
      clearInterval(heartbeat);
      try {
        if ((JSON.parse(readFileSync(path, 'utf8')) as Partial<LockInfo>).token === info.token) unlinkSync(path);
      } catch {
        // Gone already, or unreadable: nothing of ours to remove.
      }
    },
  };
}

/** Runs `fn` holding the lock at `path`; the lock is released however `fn` ends. */
export async function withLock<T>(path: string, options: LockOptions, fn: (lock: Lock) => Promise<T>): Promise<T> {
  const lock = await acquireLock(path, options);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}
