/**
 * What the hub acts on, read once per resolution from the options and the environment: the cache root, offline
 * mode, a mirror, checksum policy, download limits, and the Hugging Face conventions (HF_ENDPOINT, HF_TOKEN and
 * its legacy name and token file, HF_HUB_OFFLINE, the huggingface_hub cache).
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ClipIqaError } from '../errors.js';
import { cacheRoot } from './cache.js';
import type { DownloadOptions, HubLogger } from './download.js';
import type { ProgressCallback } from './progress.js';
import { DEFAULT_REGISTRY, type Registry } from './registry.js';

export const OFFLINE_ENV = 'CLIP_IQA_OFFLINE';
export const MIRROR_ENV = 'CLIP_IQA_MIRROR';
export const REQUIRE_CHECKSUM_ENV = 'CLIP_IQA_REQUIRE_CHECKSUM';
export const MAX_DOWNLOAD_ENV = 'CLIP_IQA_MAX_DOWNLOAD';

/** The largest download without a known size: above OpenCLIP ViT-H-14 (3.9 GB), the largest model clip-iqa lists. */
export const DEFAULT_MAX_DOWNLOAD_BYTES = 5 * 2 ** 30;

export const DEFAULT_HF_ENDPOINT = 'https://huggingface.co';

export interface HubOptions extends Omit<DownloadOptions, 'onProgress' | 'log'> {
  /** Cache root; default `$CLIP_IQA_HOME` or the platform cache directory (see `cacheRoot`). */
  readonly cacheDir?: string;
  /** Never use the network; default from CLIP_IQA_OFFLINE, then HF_HUB_OFFLINE. */
  readonly offline?: boolean;
  /** Base URL (or directory) serving every registry file as `<mirror>/<fileName>`; default from CLIP_IQA_MIRROR. */
  readonly mirror?: string;
  /** Refuse URLs without `#sha256=`; default from CLIP_IQA_REQUIRE_CHECKSUM. */
  readonly requireChecksum?: boolean;
  /** Registry to resolve names in (tests, private checkpoints); default the built-in one. */
  readonly registry?: Registry;
  /** Progress events. When absent, a progress bar is drawn on stderr if it is a terminal and not `quiet`. */
  readonly onProgress?: ProgressCallback;
  /** No progress bar and no messages on stderr (errors are still thrown). */
  readonly quiet?: boolean;
  /** Where notes and warnings go; default stderr (`info` only on a terminal), nothing when `quiet`. */
  readonly log?: HubLogger;
  /** Environment to read (default `process.env`); injectable for tests. */
  readonly env?: NodeJS.ProcessEnv;
  /** The Hugging Face hub (or a mirror of it); default `$HF_ENDPOINT` or https://huggingface.co. */
  readonly hfEndpoint?: string;
  /** A Hugging Face access token for private or gated repositories; default from HF_TOKEN (see `hubSettings`). */
  readonly hfToken?: string | null;
  /**
   * The huggingface_hub cache to take files from where they lie (read-only); default `$HF_HUB_CACHE`,
   * `$HF_HOME/hub` or `~/.cache/huggingface/hub`; null: do not look there.
   */
  readonly hfCacheDir?: string | null;
  /**
   * No download may exceed this many bytes (files with a known size are held to that size); default
   * `$CLIP_IQA_MAX_DOWNLOAD` or 5 GiB.
   */
  readonly maxDownloadBytes?: number;
}

export interface HubSettings {
  readonly root: string;
  readonly offline: boolean;
  /** Why offline is on, for messages. */
  readonly offlineBecause: string;
  readonly mirror: string | null;
  readonly requireChecksum: boolean;
  readonly registry: Registry;
  readonly log: HubLogger;
  /** Base URL of the Hugging Face hub, without trailing slash. */
  readonly hfEndpoint: string;
  /** The huggingface_hub cache root, or null when it is not to be read. */
  readonly hfCache: string | null;
  readonly maxDownloadBytes: number;
  /** The access token and where it came from (for messages: the token itself is never shown); read on first use. */
  hfToken(): { readonly token: string; readonly from: string } | null;
}

function flag(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return undefined;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ClipIqaError('E_OPTION', `${name}="${env[name]}" is not understood: use 1 (on) or 0 (off)`);
}

/** huggingface_hub's reading of its boolean variables: 1, ON, YES, TRUE (any case) are true, anything else false. */
const hfFlag = (env: NodeJS.ProcessEnv, name: string): boolean => ['1', 'on', 'yes', 'true'].includes(env[name]?.trim().toLowerCase() ?? '');

function defaultLogger(quiet: boolean): HubLogger {
  return (level, message) => {
    if (quiet) return;
    if (level === 'info' && !process.stderr.isTTY) return;
    process.stderr.write(`clip-iqa: ${level === 'warn' ? 'warning: ' : ''}${message}\n`);
  };
}

/** A mirror as a base URL without trailing slash; a directory path becomes a `file:` URL. */
export function normalizeMirror(mirror: string): string {
  const m = mirror.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(m)) {
    let u: URL;
    try {
      u = new URL(m);
    } catch {
      throw new ClipIqaError('E_OPTION', `The mirror "${mirror}" is not a valid URL`);
    }
    if (!['http:', 'https:', 'file:'].includes(u.protocol)) {
      throw new ClipIqaError('E_OPTION', `The mirror "${mirror}" uses ${u.protocol}; use an http(s):// URL or a directory`);
    }
    return u.href.replace(/\/+$/, '');
  }
  return pathToFileURL(resolve(m)).href.replace(/\/+$/, '');
}

/** Where the mirror serves a registry file. */
export function mirrorUrl(mirror: string, fileName: string): string {
  return `${normalizeMirror(mirror)}/${encodeURIComponent(fileName)}`;
}

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** `123`, `500M`, `4G`, `4GiB`, `4 GB` (binary multiples) → bytes. */
export function parseByteSize(value: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(value);
  const n = m ? Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!) : NaN;
  if (!m || !Number.isSafeInteger(n) || n < 1) throw new ClipIqaError('E_OPTION', `${what}="${value}" is not a size: write bytes, or a number with K, M, G or T (binary multiples)`);
  return n;
}

function hfHome(env: NodeJS.ProcessEnv): string {
  const home = env.HF_HOME?.trim();
  if (home) return resolve(home);
  const xdg = env.XDG_CACHE_HOME?.trim();
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'huggingface');
}

/** huggingface_hub's cache root: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE (legacy), HF_HOME/hub, ~/.cache/huggingface/hub. */
export function hfCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.HF_HUB_CACHE?.trim() || env.HUGGINGFACE_HUB_CACHE?.trim();
  return dir ? resolve(dir) : join(hfHome(env), 'hub');
}

/**
 * huggingface_hub's token order: HF_TOKEN, then the legacy HUGGING_FACE_HUB_TOKEN, then the token file
 * (HF_TOKEN_PATH, default HF_HOME/token) that `huggingface-cli login` writes.
 */
function readToken(env: NodeJS.ProcessEnv): { token: string; from: string } | null {
  for (const name of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN']) {
    const t = env[name]?.trim();
    if (t) return { token: t, from: name };
  }
  const file = env.HF_TOKEN_PATH?.trim() ? resolve(env.HF_TOKEN_PATH.trim()) : join(hfHome(env), 'token');
  try {
    const t = readFileSync(file, 'utf8').trim();
    return t ? { token: t, from: `the token file ${file}` } : null;
  } catch {
    return null;
  }
}

/** Options and environment merged into what the hub acts on. */
export function hubSettings(options: HubOptions = {}): HubSettings {
  const env = options.env ?? process.env;
  const envOffline = flag(env, OFFLINE_ENV);
  const hfOffline = ['HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE'].find((n) => hfFlag(env, n));
  const offline = options.offline ?? envOffline ?? hfOffline !== undefined;
  const offlineBecause =
    options.offline !== undefined ? 'the offline option is set' : envOffline !== undefined ? `${OFFLINE_ENV}=${env[OFFLINE_ENV]}` : `${hfOffline}=${env[hfOffline ?? '']}`;
  const mirrorRaw = options.mirror ?? env[MIRROR_ENV]?.trim();
  const endpoint = (options.hfEndpoint ?? env.HF_ENDPOINT?.trim()) || DEFAULT_HF_ENDPOINT;
  let parsedEndpoint: URL;
  try {
    parsedEndpoint = new URL(endpoint);
  } catch {
    throw new ClipIqaError('E_OPTION', `HF_ENDPOINT="${endpoint}" is not a URL`);
  }
  if (parsedEndpoint.protocol !== 'https:' && parsedEndpoint.protocol !== 'http:') {
    throw new ClipIqaError('E_OPTION', `HF_ENDPOINT="${endpoint}" must be an http(s):// URL`);
  }
  const maxRaw = env[MAX_DOWNLOAD_ENV]?.trim();
  const maxDownloadBytes = options.maxDownloadBytes ?? (maxRaw ? parseByteSize(maxRaw, MAX_DOWNLOAD_ENV) : DEFAULT_MAX_DOWNLOAD_BYTES);
  if (!Number.isSafeInteger(maxDownloadBytes) || maxDownloadBytes < 1) throw new ClipIqaError('E_OPTION', `maxDownloadBytes must be a positive integer, got ${maxDownloadBytes}`);
  let token: { token: string; from: string } | null | undefined =
    options.hfToken === undefined ? undefined : options.hfToken === null ? null : { token: options.hfToken, from: 'the hfToken option' };
  return {
    root: cacheRoot({ cacheDir: options.cacheDir, env }),
    offline,
    offlineBecause,
    mirror: mirrorRaw ? normalizeMirror(mirrorRaw) : null,
    requireChecksum: options.requireChecksum ?? flag(env, REQUIRE_CHECKSUM_ENV) ?? false,
    registry: options.registry ?? DEFAULT_REGISTRY,
    log: options.log ?? defaultLogger(options.quiet ?? false),
    hfEndpoint: endpoint.replace(/\/+$/, ''),
    hfCache: options.hfCacheDir === null ? null : options.hfCacheDir !== undefined ? resolve(options.hfCacheDir) : hfCacheRoot(env),
    maxDownloadBytes,
    hfToken: () => (token === undefined ? (token = readToken(env)) : token),
  };
}
