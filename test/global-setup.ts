import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ensureGeneratedFixtures } from './helpers/fixture-weights.js';
import { FIXTURES, HAS_SHARED, SHARED } from './helpers/shared.js';

/**
 * Once per test run: the generated fixture models, a private model cache, and a build of `dist/` from the current
 * sources, since CLI tests (and the hub tests' child processes) run the built code as users do and must never
 * exercise a stale one.
 */
export default function setup(): () => void {
  // The safetensors models of test/fixtures are made here, not committed (test/reference/make_fixtures.py).
  ensureGeneratedFixtures(FIXTURES);
  if (!HAS_SHARED) {
    console.log(`\n  ${SHARED}/fixtures is absent: the parity tests run over the repository's fixtures only (the shared set is skipped).\n`);
  }
  // Tests never read or write the user's model cache: text features cached there by an earlier build could hide
  // a regression in the text tower. Test workers and the processes they start inherit this.
  const home = mkdtempSync(join(tmpdir(), 'clip-iqa-test-home-'));
  process.env.CLIP_IQA_HOME = home;
  const root = resolve(import.meta.dirname, '..');
  try {
    execFileSync(process.execPath, [resolve(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'pipe' });
    // The browser build (dist/browser) and its types, as `npm run build` makes them: the browser, site and package tests use it.
    execFileSync(process.execPath, [resolve(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.browser.json'], { cwd: root, stdio: 'pipe' });
    execFileSync(process.execPath, [resolve(root, 'scripts/build-browser.mjs')], { cwd: root, stdio: 'pipe' });
  } catch (e) {
    const out = ['stdout', 'stderr'].map((k) => (e as Record<string, Buffer | undefined>)[k]?.toString() ?? '').join('');
    throw new Error(`building dist/ for the CLI tests failed:\n${out}`);
  }
  // As `npm run build` does: npx runs the bin as an executable.
  chmodSync(resolve(root, 'dist/cli/bin.js'), 0o755);
  return () => rmSync(home, { recursive: true, force: true });
}
