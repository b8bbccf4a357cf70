/**
 * Loaded into the CLI by bench/run.ts (`node --import`): writes the process's peak RSS (KiB) to $CLIP_IQA_BENCH_RSS
 * on exit. On Linux it reads VmHWM from /proc/self/status: getrusage's maxrss (process.resourceUsage) survives
 * fork and exec, so a child spawned by a large benchmark process would report its parent's peak.
 */
import { readFileSync, writeFileSync } from 'node:fs';

function peakKiB(): number {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]);
  } catch {
    /* not Linux */
  }
  return process.resourceUsage().maxRSS;
}

const file = process.env.CLIP_IQA_BENCH_RSS;
if (file) process.on('exit', () => writeFileSync(file, String(peakKiB())));
