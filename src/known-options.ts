/**
 * The option keys the library knows, and the one check that refuses any other: `ClipIqa.load({ modle: 'RN50' })`
 * is an E_OPTION error naming `modle` and suggesting `model`, instead of a silent default.
 *
 * Each list is written as a record over its interface's keys (`keysOf<T>()({…})`), so the compiler fails when an
 * interface gains or loses a key that its list does not: the lists cannot drift from the types. Values are not
 * checked here; the code that uses an option checks its value (and TypeScript callers have them typed).
 */
import type { ClipIqa, ClipIqaOptions, ScoreManyOptions, ScoreOptions } from './api.js';
import { ClipIqaError } from './errors.js';
import type { HubOptions } from './hub/settings.js';
import type { DecodeOptions } from './image/decode.js';
import type { UrlFetchOptions } from './image/fetch.js';
import type { RuntimeOptions } from './runtime/options.js';

/** Known keys of an options object, and the objects nested under some of them. */
export interface OptionSchema {
  readonly keys: readonly string[];
  readonly nested?: Readonly<Record<string, OptionSchema>>;
  /** The option may also be a plain value instead of an object (`fetch: true`). */
  readonly orValue?: boolean;
}

/** Every key of `T`, no more and no fewer (a missing or extra key is a compile error). */
const keysOf =
  <T>() =>
  (record: { readonly [K in keyof Required<T>]: true }): readonly string[] =>
    Object.keys(record);

export const DECODE_OPTIONS: OptionSchema = {
  keys: keysOf<DecodeOptions>()({ orientation: true, alpha: true, background: true, icc: true, resize: true, limitInputPixels: true, limitReason: true, failOn: true, maxFileBytes: true, name: true }),
};

export const RUNTIME_OPTIONS: OptionSchema = {
  keys: keysOf<RuntimeOptions>()({
    device: true,
    precision: true,
    threads: true,
    interOpThreads: true,
    graphOptimizationLevel: true,
    executionMode: true,
    enableCpuMemArena: true,
    enableMemPattern: true,
    configEntries: true,
    externalMinBytes: true,
  }),
};

export const HUB_OPTIONS: OptionSchema = {
  keys: keysOf<HubOptions>()({
    cacheDir: true,
    offline: true,
    mirror: true,
    requireChecksum: true,
    registry: true,
    onProgress: true,
    quiet: true,
    log: true,
    env: true,
    signal: true,
    connectTimeoutMs: true,
    stallTimeoutMs: true,
    retries: true,
    retryDelayMs: true,
    maxRedirects: true,
    lockTimeoutMs: true,
    lockStaleMs: true,
    progressIntervalMs: true,
    hfEndpoint: true,
    hfToken: true,
    hfCacheDir: true,
    maxDownloadBytes: true,
  }),
};

export const FETCH_OPTIONS: OptionSchema = {
  keys: keysOf<UrlFetchOptions>()({ allowHosts: true, maxBytes: true, timeoutMs: true, maxRedirects: true }),
  orValue: true,
};

export const LOAD_OPTIONS: OptionSchema = {
  keys: keysOf<ClipIqaOptions>()({
    model: true,
    vocab: true,
    plus: true,
    plusPositional: true,
    positional: true,
    noisiness: true,
    decode: true,
    runtime: true,
    precision: true,
    featureCache: true,
    hub: true,
    name: true,
    fetch: true,
  }),
  nested: { decode: DECODE_OPTIONS, runtime: RUNTIME_OPTIONS, hub: HUB_OPTIONS, fetch: FETCH_OPTIONS },
};

const SCORE_KEYS = keysOf<ScoreOptions>()({ attributes: true, prompts: true, ensemble: true, plus: true, positional: true, maps: true, decode: true });

export const SCORE_OPTIONS: OptionSchema = { keys: SCORE_KEYS, nested: { decode: DECODE_OPTIONS } };

export const SCORE_MANY_OPTIONS: OptionSchema = {
  keys: keysOf<ScoreManyOptions>()({ attributes: true, prompts: true, ensemble: true, plus: true, positional: true, maps: true, decode: true, concurrency: true, batch: true }),
  nested: { decode: DECODE_OPTIONS },
};

export const SCORE_MAPS_OPTIONS: OptionSchema = {
  keys: keysOf<NonNullable<Parameters<ClipIqa['scoreMaps']>[2]>>()({ prompts: true, ensemble: true, plus: true, positional: true, decode: true }),
  nested: { decode: DECODE_OPTIONS },
};

export const EMBED_IMAGE_OPTIONS: OptionSchema = {
  keys: keysOf<NonNullable<Parameters<ClipIqa['embedImage']>[1]>>()({ positional: true, decode: true }),
  nested: { decode: DECODE_OPTIONS },
};

/** Lower case without separators, so that `cache_dir`, `cachedir` and `CacheDir` all find `cacheDir`. */
const fold = (key: string): string => key.toLowerCase().replace(/[-_\s]/g, '');

/** Edit distance with adjacent transpositions counting one (`modle` → `model` is 1). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known key nearest to `key`, when near enough to be a slip (about one edit in three letters); else undefined. */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  const k = fold(key);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const c = fold(candidate);
    // A prefix or an extension (`thread` for `threads`, `positionalMode` for `positional`) counts as near too.
    const distance = c === k ? 0 : k.length >= 3 && (c.startsWith(k) || k.startsWith(c)) ? 1 : editDistance(k, c);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(1, Math.floor(k.length / 3)) ? best : undefined;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);

/**
 * Throws E_OPTION for the first key of `options` (or of an object nested under a key the schema describes) that
 * the schema does not know, naming it with its path and the nearest known key. `undefined` options pass; options
 * that are not an object are refused. `what` names the call in the message, e.g. `ClipIqa.load`.
 */
export function checkOptions(options: unknown, schema: OptionSchema, what: string, path = ''): void {
  if (options === undefined) return;
  if (!isPlainObject(options) && schema.orValue && (typeof options !== 'object' || options === null)) return;
  if (!isPlainObject(options)) {
    const shown = Array.isArray(options) ? 'an array' : options === null ? 'null' : typeof options;
    throw new ClipIqaError('E_OPTION', `${what}: ${path ? `the option "${path.slice(0, -1)}"` : 'the options'} must be an object, got ${shown}`);
  }
  for (const key of Object.keys(options)) {
    const full = `${path}${key}`;
    if (!schema.keys.includes(key)) {
      const near = nearestKey(key, schema.keys);
      const hint = near !== undefined ? `; did you mean "${path}${near}"?` : `; known ${path ? `"${path.slice(0, -1)}" ` : ''}options: ${schema.keys.join(', ')}`;
      throw new ClipIqaError('E_OPTION', `${what}: unknown option "${full}"${hint}`);
    }
    const nested = schema.nested?.[key];
    if (nested) checkOptions(options[key], nested, what, `${full}.`);
  }
}
