/**
 * Registry files that ship inside the package: the CLIP BPE vocabulary (MIT, OpenAI; see THIRD_PARTY_NOTICES.md) is
 * 1.3 MB and every model needs it, so `--vocab` is never required and nothing is fetched for it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE } from '../util/package.js';
import type { RegistryEntry } from './registry.js';

/** Where the package keeps the files it ships. */
export const ASSETS = join(PACKAGE.root, 'assets');

const checked = new Map<string, string | null>();

/**
 * The packaged copy of a registry entry, when the package has one whose SHA-256 is the entry's (checked once per
 * process: a damaged install then falls back to the cache and the download, as if the file were not shipped).
 */
export function packagedFile(entry: RegistryEntry): string | null {
  if (entry.sha256 === null) return null;
  const path = join(ASSETS, entry.fileName);
  let found = checked.get(path);
  if (found === undefined) {
    found = existsSync(path) && createHash('sha256').update(readFileSync(path)).digest('hex') === entry.sha256 ? path : null;
    checked.set(path, found);
  }
  return found;
}
