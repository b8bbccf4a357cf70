/**
 * Shared set-up of the hub tests: a model-sized file served by a local HTTP server, a fresh cache root per
 * test, registry entries pointing at the server, and hub options that log into an array instead of stderr.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import type { ClipIqaError } from '../../src/errors.js';
import { DEFAULT_REGISTRY, findEntry, type HubOptions, type ModelEntry, type Registry } from '../../src/hub/index.js';
import { keyOf, streamAt } from './fixture-weights.js';
import { startServer, type TestServer } from './http-server.js';
import { fixture } from './shared.js';

const RN50 = findEntry(DEFAULT_REGISTRY, 'RN50', 'model')!;

export interface HubFixture {
  /** The served file: tiny-rn's model.safetensors, padded with pseudo-random bytes to 14 MiB. */
  readonly payload: Buffer;
  readonly sha: string;
  readonly server: TestServer;
  /** This test's cache root (fresh for every test). */
  readonly root: string;
  /** What the hub logged during this test, as `level: message`. */
  readonly logs: string[];
  /** A registry entry named `name` served at `path` on the test server, with the payload's hash. */
  entry(name: string, path: string, over?: Partial<ModelEntry>): ModelEntry;
  /** Hub options for this test's cache root, quiet, with fast retries, and no huggingface_hub cache. */
  opts(registry?: Registry, extra?: HubOptions): HubOptions;
}

/**
 * The hub only moves bytes, and its tests cut and resume transfers at offsets up to 5 MB, so the served file is the
 * repository's small fixture model followed by pseudo-random bytes (which compress as little as weights do).
 */
async function servedPayload(): Promise<Buffer<ArrayBuffer>> {
  const model = await readFile(fixture('tiny-rn', 'model.safetensors'));
  const out = Buffer.alloc(14 << 20);
  model.copy(out);
  const key = keyOf('hub payload', 0);
  for (let i = model.length >> 2; i < out.length >> 2; i++) out.writeUInt32LE(streamAt(key, i, 32), i << 2);
  return out;
}

/** Registers the hooks and returns the fixture, whose fields are valid inside tests. */
export function useHubFixture(prefix: string, defaults: HubOptions = {}): HubFixture {
  const state = { payload: Buffer.alloc(0), sha: '', server: undefined as unknown as TestServer, root: '', logs: [] as string[] };
  beforeAll(async () => {
    state.payload = await servedPayload();
    state.sha = createHash('sha256').update(state.payload).digest('hex');
    state.server = await startServer();
  });
  afterAll(() => state.server.close());
  beforeEach(async () => {
    state.root = await mkdtemp(join(tmpdir(), prefix));
    state.logs = [];
    state.server.requests.length = 0;
  });
  afterEach(() => rm(state.root, { recursive: true, force: true }));
  return {
    get payload() {
      return state.payload;
    },
    get sha() {
      return state.sha;
    },
    get server() {
      return state.server;
    },
    get root() {
      return state.root;
    },
    get logs() {
      return state.logs;
    },
    entry: (name, path, over = {}) => ({
      ...RN50,
      name,
      aliases: [],
      fileName: `${name}.safetensors`,
      // The test server only: no copy on the Hugging Face hub.
      hub: [],
      urls: [state.server.url(path)],
      sha256: state.sha,
      sha256Prefix: null,
      sizeBytes: state.payload.length,
      sizeApproximate: false,
      ...over,
    }),
    opts: (registry = DEFAULT_REGISTRY, extra = {}) => ({
      cacheDir: state.root,
      registry,
      env: {},
      quiet: true,
      log: (level, m) => state.logs.push(`${level}: ${m}`),
      retryDelayMs: 5,
      hfCacheDir: null,
      ...defaults,
      ...extra,
    }),
  };
}

/** The rejection of `p`, which must reject. */
export async function caught(p: Promise<unknown>): Promise<ClipIqaError> {
  try {
    await p;
  } catch (e) {
    return e as ClipIqaError;
  }
  throw new Error('expected a rejection');
}

/** Every file under `dir`, relative, sorted. */
export async function tree(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)));
  return out.sort();
}

export const sha256 = async (p: string): Promise<string> => createHash('sha256').update(await readFile(p)).digest('hex');
