/**
 * `CLIP_IQA_TRACE=1`: step timings on stderr, for finding where a cold start goes. Each line gives the wall time
 * since the process started, the step's own wall time when it has one, and the CPU time (user + system) used so
 * far; CPU well above wall means the step ran on several cores, far below means it waited (disk, other processes).
 */
const ON = process.env.CLIP_IQA_TRACE === '1' || process.env.CLIP_IQA_TRACE === 'true';

const ms = (x: number): string => `${x.toFixed(0).padStart(5)} ms`;

function line(what: string, took?: number): void {
  const cpu = process.cpuUsage();
  const step = took === undefined ? '         ' : ms(took);
  process.stderr.write(`[trace] ${ms(performance.now())}  ${step}  cpu ${ms((cpu.user + cpu.system) / 1000)}  ${what}\n`);
}

/** Marks a point in time. */
export function trace(what: string): void {
  if (ON) line(what);
}

/** Times a step (sync or async) and marks its end with its duration. */
export function traced<T>(what: string, step: () => T): T {
  if (!ON) return step();
  const start = performance.now();
  const result = step();
  if (result instanceof Promise) {
    return result.finally(() => line(what, performance.now() - start)) as T;
  }
  line(what, performance.now() - start);
  return result;
}
