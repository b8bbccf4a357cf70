/**
 * `clip-iqa worker`: scores the jobs of queued batches until stopped. Run one per machine (or more); SIGTERM or
 * Ctrl-C finishes the jobs in hand, stores their results and exits 0; a second signal exits at once (the jobs in
 * hand then go to another worker when their lock runs out).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { DEVICES, type Device } from '../runtime/options.js';
import { hubOptions, positiveInt } from './model-options.js';
import { type RedisFlags, addRedisOptions } from './queue.js';
import { printable } from './terminal.js';

interface WorkerFlags extends RedisFlags {
  batch: string[];
  concurrency: number;
  threads?: number;
  device?: Device;
  lockSeconds: number;
  cacheDir?: string;
  offline?: boolean;
  mirror?: string;
  quiet?: boolean;
  verbose?: boolean;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 1) throw new InvalidArgumentError('give a number of seconds, at least 1.');
  return n;
}

export function workerCommand(program: Command): Command {
  const cmd = program
    .command('worker')
    .description('score queued images (clip-iqa queue add) until stopped; run one on every machine')
    .option('--batch <name>', 'serve this batch (repeatable; default every batch, as they are added)', (v: string, p: string[]) => [...p, v], [])
    .option('--concurrency <n>', 'images in hand at once: one is scored while the others download and decode', positiveInt('--concurrency'), 4)
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', positiveInt('--threads'))
    .addOption(new Option('--device <device>', 'where the model runs').choices(DEVICES).default('cpu'))
    .option('--lock-seconds <s>', "a silent worker's jobs go back to the queue after this", seconds, 30)
    .option('--cache-dir <dir>', 'model cache (default: $CLIP_IQA_HOME or the platform cache directory)')
    .option('--offline', 'never use the network for models; fail if not cached')
    .option('--mirror <url>', 'fetch registry files from this base URL or directory instead')
    .option('-v, --verbose', 'a line for every image scored')
    .option('-q, --quiet', 'only errors on stderr');
  addRedisOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Examples:
  $ clip-iqa worker --redis redis://queue:6379                     every batch, as they come
  $ clip-iqa worker --redis rediss://:secret@queue:6380 --batch photos --threads 4

SIGTERM (or Ctrl-C) finishes the images in hand, then exits 0; a killed worker's images are scored by the others.`,
  );
  return cmd.action(async (flags: WorkerFlags) => {
    const log = (text: string) => process.stderr.write(`clip-iqa worker: ${printable(text)}\n`);
    // bullmq and ioredis are loaded by this command only (see queue.ts).
    const { startWorker } = await import('../queue/worker.js');
    const worker = await startWorker({
      redis: flags.redis,
      prefix: flags.prefix,
      batches: flags.batch.length ? flags.batch : undefined,
      concurrency: flags.concurrency,
      lockSeconds: flags.lockSeconds,
      runtime: { ...(flags.threads ? { threads: flags.threads } : {}), ...(flags.device ? { device: flags.device } : {}) },
      hub: hubOptions(flags),
      onEvent: (e) => {
        if (e.type === 'error') log(`${e.batch ? `batch ${e.batch}: ` : ''}${e.message}`);
        else if (flags.quiet) return;
        else if (e.type === 'serving') log(`serving batch ${e.batch} (model ${e.model})`);
        else if (e.type === 'released') {
          if (e.removed) log(`batch ${e.batch} removed; no longer served`);
        }
        else if (e.type === 'failed') log(`batch ${e.batch}: ${e.file}: failed: ${e.code}: ${e.message}`);
        else if (e.type === 'retry') log(`batch ${e.batch}: ${e.file}: ${e.message} (will retry)`);
        else if (flags.verbose) log(`batch ${e.batch}: scored ${e.file}`);
      },
    });
    if (!flags.quiet) log(`ready (pid ${process.pid}); waiting for jobs`);
    await new Promise<void>((done) => {
      const stop = (signal: NodeJS.Signals) => {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        // A second signal does not wait.
        for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => process.exit(s === 'SIGTERM' ? 143 : 130));
        if (!flags.quiet) log(`${signal}: finishing the images in hand…`);
        void worker.close().then(done, (e: unknown) => {
          log(String(e));
          done();
        });
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    if (!flags.quiet) log(`stopped: ${worker.counts.scored} scored, ${worker.counts.failed} failed by this worker`);
  });
}
