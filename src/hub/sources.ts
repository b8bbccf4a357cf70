/**
 * Where a file can come from, each a small strategy behind one interface:
 *
 * - `localSource`: a file or a model folder on disk, used where it is;
 * - `urlSource`: one file at one or more URLs (a URL given by the user, a registry entry's publisher URLs, a mirror);
 * - `hubSource`: a file of a Hugging Face repository at a revision, fetched with the hub's protocol and checksums;
 * - `hfCacheSource`: the same file where huggingface_hub already put it, read-only.
 *
 * `find` answers without the network (a local path, clip-iqa's cache, the huggingface_hub cache); `fetch`, when a
 * source has one, downloads into clip-iqa's cache through store.ts, the one place files are verified and kept.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ClipIqaError } from '../errors.js';
import { configBeside, configFileFor, WEIGHT_FILES } from '../weights/files.js';
import { cacheError, COMMIT, describeExpected, ensureDir, fileSize, hfPath, hfRefPath, refCommit, refuseLink, sha256File, writeTextAtomic, type ExpectedHash, type Verification } from './cache.js';
import { fileInfo, formatHfId, HfError, hubAuth, resolveUrl, type HfFileInfo } from './hf.js';
import { cachedCommit, cachedFile } from './hf-cache.js';
import { packagedFile } from './packaged.js';
import type { FileKind, RegistryEntry } from './registry.js';
import type { HubOptions, HubSettings } from './settings.js';
import { fetch as fetchStored, lookup, type CacheTarget, type StoredFile } from './store.js';

export interface ResolvedFile {
  readonly path: string;
  /** The config file that goes with a model's weights (`open_clip_config.json`, `config.json`), if any. */
  readonly config: string | null;
  /** What the user named: a registry name, a local path, a URL, a Hugging Face id. */
  readonly source: 'registry' | 'path' | 'url' | 'hf';
  /** The registry entry, for registry names. */
  readonly entry: RegistryEntry | null;
  /** SHA-256 of the file, when known (null for local paths, which are used as they are). */
  readonly sha256: string | null;
  readonly verification: Verification | null;
  /** True when this call downloaded the file. */
  readonly downloaded: boolean;
  /** The URL the file came from, when known. */
  readonly url: string | null;
  /** For a file of a Hugging Face repository: which one, the revision asked for and the commit it named. */
  readonly repo: { readonly id: string; readonly revision: string; readonly commit: string } | null;
}

export interface SourceContext {
  readonly st: HubSettings;
  readonly options: HubOptions;
  readonly kind: FileKind;
}

export interface Source {
  /** Where, in words, for the list of what was tried. */
  readonly label: string;
  /** The file where it already lies (a local path, clip-iqa's cache, the huggingface_hub cache), verified; no network. */
  find(ctx: SourceContext): Promise<ResolvedFile | null>;
  /** Downloads it into clip-iqa's cache; absent for sources that never download. */
  fetch?(ctx: SourceContext): Promise<ResolvedFile>;
  /** What to place where, for the offline message. */
  offline?(ctx: SourceContext): string;
}

function kindWord(kind: FileKind): string {
  return kind === 'vocab' ? 'vocabulary' : kind === 'context' ? 'CLIP-IQA+ context' : 'model';
}

const resolved = (r: Omit<ResolvedFile, 'config' | 'repo'> & Partial<Pick<ResolvedFile, 'config' | 'repo'>>): ResolvedFile => ({ config: null, repo: null, ...r });

// -- local files and folders ------------------------------------------------------------------------------------

async function isFile(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** The weights (and config) a model folder holds, in open_clip's or transformers' naming. */
export async function modelInFolder(dir: string): Promise<{ weights: string; config: string | null }> {
  for (const name of WEIGHT_FILES) {
    const weights = join(dir, name);
    if (!(await isFile(weights))) continue;
    const configName = configFileFor(name);
    const config = configName && (await isFile(join(dir, configName))) ? join(dir, configName) : null;
    return { weights, config };
  }
  const present = (await readdir(dir).catch(() => [] as string[])).filter((n) => /\.(safetensors|bin|pt|pth|json)$/.test(n)).slice(0, 8);
  throw new ClipIqaError(
    'E_NOT_FOUND',
    `${dir} is a folder without a model file clip-iqa knows by name (${WEIGHT_FILES.join(', ')})` +
      `${present.length ? `; it holds ${present.join(', ')}: give one of those files as the model` : ''}.`,
  );
}

export function localSource(path: string, isDir: boolean): Source {
  return {
    label: path,
    async find({ kind }) {
      if (!isDir) {
        const config = kind === 'model' ? await configBeside(path) : null;
        return resolved({ path, config, source: 'path', entry: null, sha256: null, verification: null, downloaded: false, url: null });
      }
      const { weights, config } = await modelInFolder(path);
      return resolved({ path: weights, config, source: 'path', entry: null, sha256: null, verification: null, downloaded: false, url: null });
    },
  };
}

/** A registry file shipped inside the package (checked against the entry's SHA-256 once per process). */
export function packagedSource(entry: RegistryEntry): Source | null {
  const path = packagedFile(entry);
  if (path === null) return null;
  return {
    label: `${path} (shipped with clip-iqa)`,
    find: async () => resolved({ path, source: 'registry', entry, sha256: entry.sha256, verification: 'sha256', downloaded: false, url: null }),
  };
}

// -- URLs -----------------------------------------------------------------------------------------------------------

function fromStored(s: StoredFile, source: ResolvedFile['source'], entry: RegistryEntry | null, repo: ResolvedFile['repo'] = null, config: string | null = null): ResolvedFile {
  return { path: s.path, config, source, entry, sha256: s.sha256, verification: s.verification, downloaded: s.downloaded, url: s.url, repo };
}

/** One file at one or more URLs (all serving the same bytes), kept in clip-iqa's cache at `target.dest`. */
export function urlSource(target: CacheTarget, source: 'registry' | 'url'): Source {
  return {
    label: target.urls.length === 1 ? target.urls[0]! : target.urls.join(', then '),
    async find({ st, options }) {
      const s = await lookup(target, st, options.signal);
      return s && fromStored(s, source, target.entry);
    },
    async fetch({ st, options }) {
      return fromStored(await fetchStored(target, st, options), source, target.entry);
    },
    offline: () =>
      `  needed file:   ${target.fileName}${target.expected.sha256 === null && target.expected.sha256Prefix === null ? '' : ` (${describeExpected(target.expected)})`}\n` +
      `  place it at:   ${target.dest}\n` +
      `  download from: ${target.publicUrl}`,
  };
}

// -- Hugging Face repositories --------------------------------------------------------------------------------------

/** A file of a repository, or a model in it (the first of `files` that the repository has). */
export interface RepoFile {
  readonly repo: string;
  readonly revision: string;
  /** Candidate file names, in order; the first one the repository holds is taken. */
  readonly files: readonly string[];
  /** A SHA-256 the registry pins (for the first of `files`), checked before anything is downloaded. */
  readonly sha256?: string | null;
  readonly sha256Prefix?: string | null;
  /** Whether the model's config comes with its weights (hf: ids); registry entries know their architecture. */
  readonly withConfig: boolean;
  readonly entry: RegistryEntry | null;
}

const repoLabel = (r: RepoFile): string => `${formatHfId({ repo: r.repo, revision: r.revision })} (${r.files.join(' or ')})`;

function expectedOf(r: RepoFile, info: HfFileInfo | null): ExpectedHash {
  const prefix = r.sha256Prefix ?? null;
  if (r.sha256) return { sha256: r.sha256, sha256Prefix: prefix, from: 'pin' };
  if (info?.sha256) return { sha256: info.sha256, sha256Prefix: prefix, from: 'hub' };
  return { sha256: null, sha256Prefix: prefix, gitSha1: info?.gitSha1 ?? null };
}

function target(r: RepoFile, ctx: SourceContext, commit: string, file: string, info: HfFileInfo | null, config: string | null): CacheTarget {
  const { st } = ctx;
  const url = resolveUrl(st.hfEndpoint, r.repo, commit, file);
  return {
    dest: hfPath(st.root, r.repo, commit, file),
    fileName: file,
    expected: expectedOf(file === r.files[0] || !r.sha256 ? r : { ...r, sha256: null }, info),
    urls: [url],
    publicUrl: url,
    label: r.entry ? `${kindWord(ctx.kind)} ${r.entry.name}` : `${file} of ${r.repo}`,
    entry: r.entry,
    kind: ctx.kind,
    sizeHint: info?.size ?? null,
    exactSize: info?.size ?? null,
    auth: hubAuth(st),
    manifest: { repo: r.repo, revision: r.revision, commit, config },
  };
}

/** A file (or a model) of a Hugging Face repository, kept in clip-iqa's cache under hf/<org>--<name>/<commit>/. */
export function hubSource(r: RepoFile): Source {
  const configOf = (file: string) => (r.withConfig ? configFileFor(file) : null);
  return {
    label: `Hugging Face ${repoLabel(r)}`,
    async find(ctx) {
      const { st, options } = ctx;
      const commit = await refCommit(st.root, r.repo, r.revision);
      if (!commit) return null;
      for (const file of r.files) {
        const t = target(r, ctx, commit, file, null, null);
        if ((await fileSize(t.dest)) === null) {
          await refuseLink(t.dest);
          continue;
        }
        const s = await lookup(t, st, options.signal);
        if (!s) continue;
        const configName = s.manifest?.config ?? null;
        const config = configName ? hfPath(st.root, r.repo, commit, configName) : null;
        if (config && (await fileSize(config)) === null) continue; // fetched without its config: fetch again
        return fromStored(s, r.entry ? 'registry' : 'hf', r.entry, { id: r.repo, revision: r.revision, commit }, config);
      }
      return null;
    },
    async fetch(ctx) {
      const { st, options } = ctx;
      const io = { connectTimeoutMs: options.connectTimeoutMs, retries: options.retries, retryDelayMs: options.retryDelayMs, signal: options.signal };
      const missing: string[] = [];
      for (const file of r.files) {
        let info: HfFileInfo;
        try {
          info = await fileInfo(st, r.repo, r.revision, file, io);
        } catch (e) {
          if (e instanceof HfError && e.missing) {
            missing.push(file);
            continue;
          }
          throw e;
        }
        const commit = info.commit ?? (COMMIT.test(r.revision) ? r.revision : null);
        if (!commit) {
          throw new Error(
            `${st.hfEndpoint} did not say which commit "${r.revision}" is (no X-Repo-Commit: a proxy or mirror that drops it?); ` +
              `name a commit instead: ${formatHfId({ repo: r.repo, revision: '<40-hex commit>' })}`,
          );
        }
        const pin = file === r.files[0] ? r.sha256 : null;
        if (pin && info.sha256 && info.sha256 !== pin) {
          throw new Error(`the hub publishes sha256 ${info.sha256} for ${file} at ${commit}, not the pinned ${pin}; nothing was downloaded`);
        }
        if (r.sha256Prefix && info.sha256 && !info.sha256.startsWith(r.sha256Prefix)) {
          throw new Error(`the hub publishes sha256 ${info.sha256} for ${file}, which does not start with the published ${r.sha256Prefix}; nothing was downloaded`);
        }
        if (info.size !== null && info.size > st.maxDownloadBytes) {
          throw new Error(`${file} is ${info.size} bytes, more than the download limit of ${st.maxDownloadBytes} (raise it with CLIP_IQA_MAX_DOWNLOAD)`);
        }
        // The config's metadata first: a model whose config the hub refuses is not worth its gigabytes.
        const configName = configOf(file);
        let configInfo: HfFileInfo | null = null;
        if (configName) {
          try {
            configInfo = await fileInfo(st, r.repo, commit, configName, io);
          } catch (e) {
            if (!(e instanceof HfError && e.missing)) throw e;
            st.log('warn', `${r.repo} has no ${configName} beside ${file}: reading it as OpenAI's CLIP (QuickGELU)`);
          }
        }
        const stored = await fetchStored(target(r, ctx, commit, file, info, configInfo && configName), st, options);
        let config: string | null = null;
        if (configName && configInfo) {
          const ct = target({ ...r, files: [configName], sha256: null, sha256Prefix: null }, ctx, commit, configName, configInfo, null);
          config = (await fetchStored(ct, st, options)).path;
        }
        if (r.revision !== commit) {
          const ref = hfRefPath(st.root, r.repo, r.revision);
          await ensureDir(join(ref, '..'), `recording ${r.revision} of ${r.repo}`);
          await writeTextAtomic(ref, commit).catch((e: unknown) => {
            throw cacheError(e, ref, `recording which commit ${r.revision} of ${r.repo} is`);
          });
        }
        return fromStored(stored, r.entry ? 'registry' : 'hf', r.entry, { id: r.repo, revision: r.revision, commit }, config);
      }
      throw new HfError(`${r.repo} has none of ${missing.join(', ')} at revision ${r.revision}`, true);
    },
    offline({ st }) {
      const file = r.files[0]!;
      const commit = COMMIT.test(r.revision) ? r.revision : null;
      const pin = r.sha256 ? ` (sha256 ${r.sha256})` : '';
      const where = commit ? hfPath(st.root, r.repo, commit, file) : `clip-iqa's cache (${st.root}) by fetching it online once`;
      return (
        `  needed file:   ${file} of the Hugging Face repository ${r.repo} at ${r.revision}${pin}\n` +
        `  place it at:   ${where}, or in the huggingface_hub cache${st.hfCache ? ` (${st.hfCache})` : ''}: ` +
        `huggingface-cli download ${r.repo} ${file}${configOf(file) ? ` ${configOf(file)}` : ''} --revision ${r.revision}\n` +
        `  download from: ${resolveUrl(st.hfEndpoint, r.repo, r.revision, file)}`
      );
    },
  };
}

/** The same repository file where huggingface_hub keeps it (HF_HUB_CACHE), used in place. */
export function hfCacheSource(r: RepoFile): Source {
  return {
    label: `the huggingface_hub cache, ${repoLabel(r)}`,
    async find({ st }) {
      if (!st.hfCache) return null;
      const commit = await cachedCommit(st.hfCache, r.repo, r.revision);
      if (!commit) return null;
      for (const [i, file] of r.files.entries()) {
        const f = await cachedFile(st.hfCache, r.repo, commit, file);
        if (!f) continue;
        const pin = i === 0 ? r.sha256 : null;
        let sha256 = f.sha256;
        // A copy (no blob name to go by) is hashed when a pin must be checked.
        if (pin && !sha256) sha256 = (await sha256File(f.path)).sha256;
        if ((pin && sha256 !== pin) || (r.sha256Prefix && sha256 && !sha256.startsWith(r.sha256Prefix))) {
          st.log('info', `${f.path} in the huggingface_hub cache is not the pinned file (sha256 ${sha256}); not used`);
          continue;
        }
        const configName = r.withConfig ? configFileFor(file) : null;
        const config = configName ? await cachedFile(st.hfCache, r.repo, commit, configName) : null;
        // Without its config the activation is unknown: better fetched whole than read wrong.
        if (configName && !config) continue;
        return resolved({
          path: f.path,
          config: config?.path ?? null,
          source: r.entry ? 'registry' : 'hf',
          entry: r.entry,
          sha256,
          verification: 'hf-cache',
          downloaded: false,
          url: null,
          repo: { id: r.repo, revision: r.revision, commit },
        });
      }
      return null;
    },
  };
}
