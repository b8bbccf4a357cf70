/**
 * The server's model as files a browser can fetch (the page's "Score in this browser" mode, and `clip-iqa site`):
 * the checkpoint (and its config), the vocabulary and the CLIP-IQA+ context that `ClipIqa.load` resolved, each under
 * a URL that carries its version (SHA-256, else size and mtime), so that a browser's Cache Storage, keyed by URL,
 * never serves last week's model for today's; and the manifest the page loads them with.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { type ClipIqaOptions, resolveModelFiles } from '../api.js';
import type { ResolvedFile } from '../hub/resolve.js';
import type { NoisinessPolarity } from '../iqa/prompts.js';
import type { PositionalMode } from '../model/types.js';
import type { ClipArchitecture } from '../weights/architecture.js';

/** What the page gives `ClipIqa.load` of the browser build; URLs are relative to the page's root. */
export interface BrowserManifest {
  readonly available: boolean;
  /** Why the model cannot be scored in the browser, when it cannot. */
  readonly reason?: string;
  readonly name?: string;
  /** The checkpoint's URL, or a folder's map of file name → URL (weights and config). */
  readonly model?: string | Record<string, string>;
  readonly vocab?: string;
  readonly plus?: string | null;
  readonly plusPositional?: PositionalMode;
  readonly positional?: PositionalMode;
  readonly noisiness?: NoisinessPolarity;
  /** What the registry knows of the model that its weights do not say (activation, heads), as the Node build uses it. */
  readonly architecture?: ClipArchitecture;
}

/** A file the manifest names: its URL path (relative, no leading slash), where it is, and its validator. */
export interface ServedFile {
  readonly urlPath: string;
  readonly path: string;
  readonly size: number;
  /** A strong ETag from the SHA-256 when the hub knows it, else a weak one from size and mtime. */
  readonly etag: string;
  readonly contentType: string;
}

export const MODEL_FILES_PREFIX = 'v1/model/files/';

async function served(kind: string, path: string, sha256: string | undefined | null): Promise<ServedFile> {
  const st = await stat(path);
  const version = sha256 ? sha256.slice(0, 16) : `${st.size.toString(36)}-${Math.round(st.mtimeMs).toString(36)}`;
  const name = basename(path);
  return {
    urlPath: `${MODEL_FILES_PREFIX}${kind}/${version}/${encodeURIComponent(name)}`,
    path,
    size: st.size,
    etag: sha256 ? `"${sha256}"` : `W/"${version}"`,
    contentType: name.endsWith('.gz') ? 'application/gzip' : name.endsWith('.json') ? 'application/json' : 'application/octet-stream',
  };
}

/** The manifest and the files behind it, for a model loaded with `options` (files resolved through the hub's cache). */
export async function browserModelFiles(options: ClipIqaOptions, name: string): Promise<{ manifest: BrowserManifest; files: ServedFile[] }> {
  if (options.model instanceof Uint8Array || (options.model !== undefined && typeof options.model !== 'string')) {
    return { manifest: { available: false, reason: 'the model was given to the server as bytes or a state dict, not a file it can serve' }, files: [] };
  }
  if (options.vocab instanceof Uint8Array || options.plus instanceof Uint8Array) {
    return { manifest: { available: false, reason: 'the vocabulary or CLIP-IQA+ context was given to the server as bytes, not a file it can serve' }, files: [] };
  }
  const { modelFile, vocabFile, plusFile } = await resolveModelFiles(options);
  const weights = await served('model', modelFile!.path, modelFile!.sha256);
  const config = modelFile!.config ? await served('model', modelFile!.config, undefined) : undefined;
  const vocab = await served('vocab', vocabFile!.path, vocabFile!.sha256);
  const plus = plusFile ? await served('plus', plusFile.path, plusFile.sha256) : undefined;
  const fileName = (f: ServedFile) => basename(f.path);
  const trainedWith = plusFile?.entry?.kind === 'context' ? plusFile.entry.positional : undefined;
  const manifest: BrowserManifest = {
    available: true,
    name,
    model: config ? { [fileName(weights)]: weights.urlPath, [fileName(config)]: config.urlPath } : weights.urlPath,
    vocab: vocab.urlPath,
    plus: plus?.urlPath ?? null,
    ...((options.plusPositional ?? trainedWith) ? { plusPositional: options.plusPositional ?? trainedWith } : {}),
    positional: options.positional ?? 'none',
    noisiness: options.noisiness ?? 'noisy',
    ...(modelFile!.entry?.kind === 'model' ? { architecture: modelFile!.entry.architecture } : {}),
  };
  return { manifest, files: [weights, ...(config ? [config] : []), vocab, ...(plus ? [plus] : [])] };
}

export type { ResolvedFile };
