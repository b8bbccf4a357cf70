/**
 * The model hub: a registry of known checkpoints, vocabularies and CLIP-IQA+ contexts; resolution of names,
 * paths, model folders, Hugging Face ids and URLs to local files, through sources tried in order (sources.ts);
 * downloads into one verified, resumable, lock-protected cache (store.ts, download.ts).
 */
export {
  DEFAULT_CONTEXT,
  DEFAULT_MODEL,
  DEFAULT_REGISTRY,
  DEFAULT_VOCAB,
  FILE_KINDS,
  contextsFor,
  createRegistry,
  entryNames,
  findEntry,
  getEntry,
  normalizeName,
  type ContextEntry,
  type EntryOfKind,
  type FileKind,
  type HubRef,
  type ModelEntry,
  type Registry,
  type RegistryEntry,
  type VocabEntry,
} from './registry.js';
export {
  CACHE_ENV,
  cacheRoot,
  entryPath,
  hfPath,
  manifestPath,
  pinnedUrlPath,
  readManifest,
  sha256File,
  unpinnedUrlPath,
  type CacheRootOptions,
  type ExpectedHash,
  type Manifest,
  type Verification,
} from './cache.js';
export { download, parseContentRange, type DownloadJob, type DownloadOptions, type DownloadResult, type HubLogger } from './download.js';
export { formatHfId, parseHfId, resolveUrl, type HfId } from './hf.js';
export { acquireLock, withLock, type Lock, type LockInfo, type LockOptions } from './lock.js';
export {
  createProgressBar,
  formatBytes,
  formatDuration,
  formatProgressLine,
  type DownloadProgress,
  type ProgressBar,
  type ProgressBarOptions,
  type ProgressCallback,
} from './progress.js';
export {
  DEFAULT_HF_ENDPOINT,
  DEFAULT_MAX_DOWNLOAD_BYTES,
  MAX_DOWNLOAD_ENV,
  MIRROR_ENV,
  OFFLINE_ENV,
  REQUIRE_CHECKSUM_ENV,
  hfCacheRoot,
  hubSettings,
  mirrorUrl,
  type HubOptions,
  type HubSettings,
} from './settings.js';
export { cachedPathOf, parseSource, resolveFile, resolveSource, resolveSources, type FileRequest, type ResolvedFile, type SourceSpec } from './resolve.js';
export {
  cachePath,
  describeVerification,
  listModels,
  pullModel,
  removeModel,
  verifyCache,
  type CacheItem,
  type VerifyResult,
  type VerifyStatus,
} from './models.js';
