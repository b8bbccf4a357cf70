/**
 * The package's root directory (where package.json, web/ and dist/ are), found by walking up from this module:
 * the same code runs from src/ (tests), dist/ (installed) and a benchmark's compiled copy under .bench/.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function find(): { root: string; version: string } {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'clip-iqa') return { root: dir, version: pkg.version ?? '0.0.0' };
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the clip-iqa package root above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

export const PACKAGE = find();
