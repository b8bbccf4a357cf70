/** Helpers of the serving benchmarks: a server in a child process, multipart bodies, autocannon runs, /metrics samples. */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import autocannon from 'autocannon';

export interface ChildServer {
  readonly url: string;
  readonly child: ChildProcess;
  stop(): Promise<number | null>;
}

/**
 * Starts `node <args…>` and waits for its `listening on http://…` / `ready` lines on stderr (the CLI's), or for a
 * JSON line {"url"} on stdout (the backend child).
 */
export async function startChild(args: readonly string[], readyTimeoutMs = 180_000): Promise<ChildServer> {
  const child = spawn(process.execPath, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    let listening: string | undefined;
    const timer = setTimeout(() => {
      // Nobody will stop a server that never got ready: it would outlive the benchmark.
      child.kill('SIGKILL');
      reject(new Error(`the server did not get ready in time:\n${log}`));
    }, readyTimeoutMs);
    const scan = (chunk: Buffer) => {
      log += chunk.toString();
      listening ??= /listening on (http:\/\/\S+)/.exec(log)?.[1];
      const json = /^\{"url":"([^"]+)"/m.exec(log)?.[1];
      if (json || (listening && /clip-iqa: ready/.test(log))) {
        clearTimeout(timer);
        resolve(json ?? listening!);
      }
    };
    child.stdout!.on('data', scan);
    child.stderr!.on('data', scan);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}) before it was ready:\n${log}`));
    });
  });
  return {
    url,
    child,
    async stop() {
      // Already gone (a crash, a signal): there is no exit event left to wait for.
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

/** A multipart/form-data body with one file under `field`, and its content type. */
export function multipart(bytes: Buffer, filename: string, type: string, field = 'image'): { body: Buffer; contentType: string } {
  const boundary = `----clip-iqa-bench-${Math.random().toString(16).slice(2)}`;
  const head = Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="${field}"; filename="${filename}"\r\ncontent-type: ${type}\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return { body: Buffer.concat([head, bytes, tail]), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** Prometheus text → name{labels} → value, for the few gauges a benchmark reads. */
export async function readMetrics(url: string, headers: Record<string, string> = {}): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`, { headers })).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/**
 * Resident memory of a process and all its descendants, bytes (Linux: /proc): the server with its model processes.
 * Elsewhere 0.
 */
export function treeRss(pid: number): number {
  let total = 0;
  try {
    total += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) total += treeRss(Number(child));
    }
  } catch {
    // Gone meanwhile, or not Linux.
  }
  return total;
}

/**
 * Samples the server's resident memory (its process tree: model processes included) and its event-loop lag while
 * `during` runs: memory every 100 ms, lag every second.
 */
export async function withMemorySampling<T>(
  url: string,
  pid: number,
  during: Promise<T>,
): Promise<{ result: T; idleRssMiB: number; peakRssMiB: number; lagP99Ms: number }> {
  const idle = treeRss(pid);
  let peak = idle;
  let lag = 0;
  let running = true;
  const memory = setInterval(() => (peak = Math.max(peak, treeRss(pid))), 100);
  const loop = (async () => {
    while (running) {
      try {
        const m = await readMetrics(url);
        lag = Math.max(lag, m.get('nodejs_eventloop_lag_p99_seconds') ?? 0);
      } catch {
        // A sample lost under load is no matter.
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  let result: T;
  try {
    result = await during;
  } finally {
    // Also when `during` fails: a sampling loop left running would keep the process alive.
    running = false;
    clearInterval(memory);
    await loop;
  }
  const mib = (n: number) => Math.round(n / 1024 / 1024);
  return { result, idleRssMiB: mib(idle), peakRssMiB: mib(peak), lagP99Ms: Math.round(lag * 1000 * 10) / 10 };
}

export interface LoadResult {
  readonly requests: number;
  readonly ok: number;
  readonly busy: number;
  readonly other: Map<number, number>;
  readonly malformed429: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly rps: number;
  readonly okPerSecond: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly seconds: number;
}

/**
 * autocannon against POST `path` with `body`, `connections` at a time, for `seconds`. Latency percentiles are of
 * 2xx answers only (a 429 comes back in a millisecond and would flatter them); every 429 must carry Retry-After
 * and an E_BUSY JSON error, else it is counted as malformed.
 */
export async function load(url: string, path: string, body: Buffer, contentType: string, connections: number, seconds: number): Promise<LoadResult> {
  const other = new Map<number, number>();
  let busy = 0;
  let ok = 0;
  let malformed429 = 0;
  const r = await autocannon({
    url: `${url}${path}`,
    method: 'POST',
    body,
    headers: { 'content-type': contentType },
    connections,
    duration: seconds,
    timeout: 120,
    excludeErrorStats: true,
    requests: [
      {
        onResponse: (status: number, text: string, _context: object, headers?: Record<string, unknown>) => {
          if (status === 200) ok++;
          else if (status === 429) {
            busy++;
            let code: unknown;
            try {
              code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
            } catch {
              code = undefined;
            }
            // autocannon gives headers as a flat [name, value, …] list or an object, depending on version.
            const list = Array.isArray(headers) ? (headers as string[]) : Object.entries(headers ?? {}).flat().map(String);
            const retry = list.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === 'retry-after');
            if (code !== 'E_BUSY' || retry < 0 || !/^\d+$/.test(list[retry + 1] ?? '')) malformed429++;
          } else other.set(status, (other.get(status) ?? 0) + 1);
        },
      },
    ],
  });
  return {
    requests: r.requests.total,
    ok,
    busy,
    other,
    malformed429,
    errors: r.errors,
    timeouts: r.timeouts,
    rps: Math.round((r.requests.total / r.duration) * 10) / 10,
    okPerSecond: Math.round((ok / r.duration) * 10) / 10,
    p50: r.latency.p50,
    p90: r.latency.p90,
    p99: r.latency.p99,
    max: r.latency.max,
    seconds: r.duration,
  };
}
