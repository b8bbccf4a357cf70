import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

/**
 * CLI tests run the built `clip-iqa` binary, as users do. Build it once per test run from the current
 * sources, so they never exercise a stale `dist/`.
 */
export default function setup(): void {
  const root = resolve(import.meta.dirname, '..');
  try {
    execFileSync(process.execPath, [resolve(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'pipe' });
  } catch (e) {
    const out = (e as { stdout?: Buffer }).stdout?.toString() ?? '';
    throw new Error(`building dist/ for the CLI tests failed:\n${out}`);
  }
}
