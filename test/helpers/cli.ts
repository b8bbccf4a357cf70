import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './shared.js';

export const BIN = join(repoRoot, 'dist', 'cli', 'bin.js');

export interface CliResult {
  readonly code: number | null;
  /** The signal that ended the process (SIGKILL when `timeoutMs` ran out), else null. */
  readonly signal?: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `node <args>` as a child process and collects its output (stdin closed unless given). With `timeoutMs`,
 * the child is killed (SIGKILL) when it runs longer: for tests where a regression would hang.
 */
export function runNode(
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; stdin?: Uint8Array; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: options.cwd ?? repoRoot,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs, killSignal: 'SIGKILL' as const }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(options.stdin);
  });
}

/** Runs the built `clip-iqa` binary as a child process (stdin closed unless given). */
export function runCli(args: readonly string[], options: { env?: NodeJS.ProcessEnv; stdin?: Uint8Array; cwd?: string } = {}): Promise<CliResult> {
  return runNode([BIN, ...args], { ...options, env: { ...process.env, NO_COLOR: '1', ...options.env } });
}
