/** The README's commands work as printed. */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './helpers/shared.js';
import { freePort } from './helpers/free-port.js';

const run = promisify(execFile);
const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
const blocks = (lang: string) => [...readme.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
const env = { ...process.env, NO_COLOR: '1', CLIP_IQA_HOME: join(repoRoot, 'node_modules', '.cache', 'clip-iqa-readme') };

describe('README', () => {
  it('opens with exactly the two set-up commands, which .ci/run calls', () => {
    const first = blocks('sh')[0]!.trim().split('\n');
    expect(first).toEqual(['npm ci', 'npm test']);
    expect(readme.indexOf('```sh')).toBeLessThan(readme.indexOf('\n## '));
    const ci = readFileSync(join(repoRoot, '.ci', 'run'), 'utf8');
    for (const cmd of first) expect(ci).toMatch(new RegExp(`^${cmd}$`, 'm'));
  });

  it("'Try it' scores the repository's photos with a model in the repository, no ../shared needed", async () => {
    const line = blocks('sh')[1]!.trim();
    expect(line).toMatch(/^npx clip-iqa -m test\/fixtures\/\S+ test\/fixtures\/photos$/);
    expect(line).not.toMatch(/shared|--vocab/);
    const { stdout } = await run('bash', ['-c', line], { cwd: repoRoot, env });
    const doc = JSON.parse(stdout);
    expect(doc.images).toHaveLength(3);
    expect(doc.summary.failed).toBe(0);
  });

  it('the served-from-URL command downloads, verifies and scores', async () => {
    const block = blocks('sh').find((b) => b.includes('http.server'))!;
    expect(block).toContain('8731');
    // A free port instead of the README's, and the server stopped whatever happens, so runs never meet each other.
    const port = await freePort();
    const script = block.replace(/8731/g, String(port)).replace(/\/tmp\/clip-iqa-demo/g, join(env.CLIP_IQA_HOME, `demo-${Date.now()}`));
    const result = await run('bash', ['-c', `trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\nset -e\n${script}`], { cwd: repoRoot, env }).catch(
      (e: { code?: number; stdout?: string; stderr?: string }) => {
        throw new Error(`exit ${e.code}\nstdout: ${e.stdout?.slice(-2000)}\nstderr: ${e.stderr?.slice(-2000)}`);
      },
    );
    const { stdout } = result;
    const doc = JSON.parse(stdout);
    expect(doc.images).toHaveLength(3);
    expect(doc.summary.failed).toBe(0);
  });

  it('the library example runs', async () => {
    const code = blocks('js')[0]!;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], { cwd: repoRoot, env });
    expect(stdout).toMatch(/quality: 0\.\d+, sharpness: 0\.\d+/);
    expect(stdout).toMatch(/missing\.jpg failed: .*missing\.jpg/);
  });
});
