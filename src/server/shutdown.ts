/**
 * Graceful shutdown on SIGTERM (orchestrators) and SIGINT (Ctrl-C): readiness turns 503 at once so a load balancer
 * stops sending traffic, the listener closes, requests in flight — uploads still arriving included — are answered,
 * the queue drains, the model is released, then the process may exit. A second signal, or the deadline, ends it
 * without waiting.
 */
import type { FastifyInstance } from 'fastify';

export interface ShutdownOptions {
  /** Longest wait for in-flight requests, milliseconds; default 30 000. */
  readonly timeoutMs?: number;
  readonly signals?: readonly NodeJS.Signals[];
  /** Called when the wait is cut short (deadline or second signal); default: exit with status 1. */
  readonly onForce?: (reason: string) => void;
}

/** Returns a promise that resolves once a signal came and the server closed. */
export function installShutdown(app: FastifyInstance, options: ShutdownOptions = {}): Promise<NodeJS.Signals> {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const timeoutMs = options.timeoutMs ?? 30_000;
  const force =
    options.onForce ??
    ((reason: string) => {
      app.log.error(`shutdown cut short: ${reason}`);
      process.exit(1);
    });
  return new Promise((resolve) => {
    let closing = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (closing) {
        force(`second ${signal}`);
        return;
      }
      closing = true;
      app.log.info({ signal, inFlight: app.clip.queue.running + app.clip.queue.waiting }, 'shutting down: finishing requests in flight');
      app.clip.beginClosing();
      const timer = setTimeout(() => force(`requests still running after ${timeoutMs / 1000} s`), timeoutMs);
      timer.unref();
      void app.close().then(
        () => {
          clearTimeout(timer);
          for (const s of signals) process.off(s, onSignal);
          app.log.info('shut down');
          resolve(signal);
        },
        (e: unknown) => force(`closing failed: ${(e as Error).message}`),
      );
    };
    for (const s of signals) process.on(s, onSignal);
  });
}
