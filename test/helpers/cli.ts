import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './shared.js';

export const BIN = join(repoRoot, 'dist', 'cli', 'bin.js');

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node <args>` as a child process and collects its output (stdin closed unless given). */
export function runNode(args: readonly string[], options: { env?: NodeJS.ProcessEnv; stdin?: Uint8Array; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: options.cwd ?? repoRoot, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin);
  });
}

/** Runs the built `clip-iqa` binary as a child process (stdin closed unless given). */
export function runCli(args: readonly string[], options: { env?: NodeJS.ProcessEnv; stdin?: Uint8Array; cwd?: string } = {}): Promise<CliResult> {
  return runNode([BIN, ...args], { ...options, env: { ...process.env, NO_COLOR: '1', ...options.env } });
}
