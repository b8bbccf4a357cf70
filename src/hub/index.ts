/**
 * The model hub: a registry of known checkpoints, vocabularies and CLIP-IQA+ contexts; resolution of names,
 * paths and URLs to local files; downloads into a verified, resumable, lock-protected cache.
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
  type ModelEntry,
  type Registry,
  type RegistryEntry,
  type VocabEntry,
} from './registry.js';
export {
  CACHE_ENV,
  cacheRoot,
  entryPath,
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
  MIRROR_ENV,
  OFFLINE_ENV,
  REQUIRE_CHECKSUM_ENV,
  cachedPathOf,
  hubSettings,
  mirrorUrl,
  parseSource,
  resolveFile,
  resolveSource,
  type HubOptions,
  type HubSettings,
  type ResolvedFile,
  type SourceSpec,
} from './resolve.js';
export {
  cachePath,
  listModels,
  pullModel,
  removeModel,
  verifyCache,
  type CacheItem,
  type VerifyResult,
  type VerifyStatus,
} from './models.js';
