/**
 * `clip-iqa queue add|status|results|rm`: a batch on Redis for `clip-iqa worker`s on any number of machines. A thin
 * shell over `clip-iqa/queue`; results come out in exactly the shapes of `clip-iqa score`.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { planScore } from '../api.js';
import { ClipIqaError } from '../errors.js';
import { formatDuration } from '../hub/progress.js';
import type { QueueInput } from '../queue/enqueue.js';
import { DEFAULT_PREFIX, checkBatchName, checkPrefix } from '../queue/keys.js';
import type { BatchInfo } from '../queue/results.js';
import type { BatchSettings } from '../queue/settings.js';
import type { BatchStatus } from '../queue/status.js';
import { checkWritableFile } from '../util/output-file.js';
import { expandInputs } from './inputs.js';
import { type ModelFlags, addModelOptions, decodeOptions } from './model-options.js';
import { type ImageRow, type RunHeader, type Summary, createFormatter, formatOfFileName, openOutput, runHeader } from './output.js';
import { runInfo } from './run-info.js';
import { parseSize } from './score.js';
import { printable } from './terminal.js';

/**
 * The queue's modules (bullmq and ioredis take about half a second to load) are loaded by these commands only, so
 * that `clip-iqa score` and the other commands start without them.
 */
async function queueModules() {
  const [{ enqueue }, { open, redactUrl, redisError }, { removeBatch }, { readInfo, readRows, waitFinished }, { readStatus }] = await Promise.all([
    import('../queue/enqueue.js'),
    import('../queue/redis.js'),
    import('../queue/remove.js'),
    import('../queue/results.js'),
    import('../queue/status.js'),
  ]);
  return { enqueue, open, redactUrl, redisError, removeBatch, readInfo, readRows, waitFinished, readStatus };
}

export interface RedisFlags {
  redis: string;
  prefix: string;
}

/** --redis (or $CLIP_IQA_REDIS) and --prefix, on every queue command and the worker. */
export function addRedisOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--redis <url>', 'Redis: redis://[:password@]host[:port][/db], rediss://… for TLS').env('CLIP_IQA_REDIS').makeOptionMandatory())
    .option('--prefix <prefix>', 'prefix of every Redis key (for Redis Cluster: in braces, {clip-iqa})', DEFAULT_PREFIX);
}

const collect = (value: string, previous: string[]) => [...previous, value];
const hostList = (value: string, previous: string[] = []) => [...previous, ...value.split(',').map((h) => h.trim()).filter(Boolean)];
function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('give a number of seconds greater than 0.');
  return n;
}
const usage = (message: string) => new ClipIqaError('E_OPTION', message);
const note = (quiet: boolean | undefined, text: string) => {
  if (!quiet) process.stderr.write(`${text}\n`);
};

interface AddFlags extends ModelFlags, RedisFlags {
  batch: string;
  attributes: string;
  prompt: string[];
  ensemble?: boolean;
  from: string[];
  allowHosts?: string[];
  fetchTimeout?: number;
  maxBytes?: number;
}

/** A model, vocabulary or context named by a local path is stored absolute: workers start elsewhere. */
const absoluteIfLocal = <T>(value: T): T => (typeof value === 'string' && existsSync(value) ? (resolve(value) as T) : value);

export function batchSettings(flags: AddFlags): BatchSettings {
  const decode = Object.fromEntries(Object.entries(decodeOptions(flags)).filter(([, v]) => v !== undefined));
  return {
    model: absoluteIfLocal(flags.model),
    // Results name a local model as the user wrote it, as `clip-iqa score` does.
    ...(flags.model !== undefined && absoluteIfLocal(flags.model) !== flags.model ? { name: flags.model } : {}),
    vocab: absoluteIfLocal(flags.vocab),
    plus: flags.plus === undefined || flags.plus === false ? undefined : absoluteIfLocal(flags.plus),
    positional: flags.positional,
    noisiness: flags.noisiness,
    precision: flags.precision,
    decode,
    attributes: flags.attributes,
    prompts: flags.prompt.length > 0 ? flags.prompt : undefined,
    ensemble: flags.ensemble,
    fetch:
      flags.allowHosts || flags.maxBytes || flags.fetchTimeout
        ? { allowHosts: flags.allowHosts, maxBytes: flags.maxBytes, timeoutMs: flags.fetchTimeout && Math.round(flags.fetchTimeout * 1000) }
        : undefined,
  };
}

async function runAdd(args: string[], flags: AddFlags): Promise<number> {
  const { enqueue, redactUrl } = await queueModules();
  checkBatchName(flags.batch);
  checkPrefix(flags.prefix);
  if (args.length === 0 && flags.from.length === 0) throw usage('no images given: name files, directories, globs or URLs, or --from a list');
  if (args.includes('-') || flags.from.includes('-')) throw usage('standard input (-) cannot be queued: workers on other machines cannot read it; name files or URLs');
  const settings = batchSettings(flags);
  // A bad attribute or prompt fails here, before anything is queued.
  planScore({ attributes: settings.attributes, prompts: settings.prompts, ensemble: settings.ensemble }, { family: 'resnet', plus: settings.plus !== undefined, noisiness: flags.noisiness });
  const inputs = await expandInputs(args, { lists: flags.from, allowHosts: flags.allowHosts });
  const items: QueueInput[] = inputs.items.map((item) =>
    item.kind === 'bad' ? { name: item.name, error: { code: item.code, message: item.reason } } : item.kind === 'file' ? { name: item.name, source: resolve(item.name) } : item.name,
  );
  const bad = inputs.items.filter((i) => i.kind === 'bad').length;
  const result = await enqueue({ redis: flags.redis, prefix: flags.prefix, batch: flags.batch, inputs: items, settings });
  note(
    flags.quiet,
    `batch ${flags.batch}: added ${result.added} ${result.added === 1 ? 'image' : 'images'}` +
      (result.already ? ` (${result.already} already there)` : '') +
      (bad ? `, ${bad} failed the checks (error rows)` : '') +
      `; ${result.total} in all on ${redactUrl(flags.redis)}` +
      (inputs.skipped.length ? `; skipped ${inputs.skipped.length} non-image ${inputs.skipped.length === 1 ? 'file' : 'files'}` : ''),
  );
  return 0;
}

function statusLine(s: BatchStatus): string {
  const done = s.scored + s.failed;
  const rate = s.rate === null ? '' : `  ${s.rate.toFixed(2)} img/s`;
  const eta = s.finished ? '  finished' : s.eta === null ? '' : `  ETA ${formatDuration(s.eta)}`;
  return `${done}/${s.total} done (${s.scored} scored, ${s.failed} failed)  ${s.waiting} waiting, ${s.active} active, ${s.retrying} retrying${rate}${eta}`;
}

function bar(s: BatchStatus, columns: number): string {
  const width = Math.max(10, Math.min(30, columns - 70));
  const filled = s.total ? Math.round(((s.scored + s.failed) / s.total) * width) : 0;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${statusLine(s)}`;
}

interface StatusFlags extends RedisFlags {
  batch: string;
  watch?: boolean;
  json?: boolean;
}

async function runStatus(flags: StatusFlags): Promise<number> {
  const { open, redisError, waitFinished, readStatus } = await queueModules();
  const batch = checkBatchName(flags.batch);
  const prefix = checkPrefix(flags.prefix);
  const redis = await open(flags.redis, 'client');
  try {
    let status: BatchStatus;
    if (flags.watch) {
      const tty = process.stderr.isTTY === true;
      let shown = '';
      let lastAt = 0;
      await waitFinished(redis, prefix, batch, (s) => {
        status = s;
        const line = tty ? bar(s, process.stderr.columns ?? 80) : statusLine(s);
        if (tty) process.stderr.write(`\r\x1b[K${line}`);
        else if (line !== shown && (Date.now() - lastAt > 5000 || s.finished)) {
          process.stderr.write(`${line}\n`);
          lastAt = Date.now();
        }
        shown = line;
      });
      if (tty) process.stderr.write('\n');
    }
    status = await readStatus(redis, prefix, batch);
    process.stdout.write(flags.json ? `${JSON.stringify(status, null, 2)}\n` : `batch ${batch}: ${statusLine(status)}\n`);
    return 0;
  } catch (e) {
    throw redisError(flags.redis, e);
  } finally {
    redis.disconnect();
  }
}

interface ResultsFlags extends RedisFlags {
  batch: string;
  format?: 'json' | 'jsonl' | 'csv';
  output?: string;
  wait?: boolean;
  quiet?: boolean;
}

/** The flags `runInfo` reads, from what the batch stored. */
function settingsFlags(settings: BatchSettings): ModelFlags {
  const d = settings.decode ?? {};
  return {
    precision: settings.precision,
    noisiness: settings.noisiness,
    orientation: d.orientation,
    alpha: d.alpha,
    icc: d.icc,
    background: typeof d.background === 'string' ? d.background : undefined,
    resize: d.resize,
    maxPixels: typeof d.limitInputPixels === 'number' ? d.limitInputPixels : undefined,
  };
}

/** The header `clip-iqa score` would write for the batch's settings and the model its workers loaded. */
export function batchHeader(info: BatchInfo): RunHeader {
  const m = info.model;
  if (!m) {
    // No worker has loaded the model yet: the names are known, the model's particulars not.
    const s = info.settings;
    const plan = planScore({ attributes: s.attributes, prompts: s.prompts, ensemble: s.ensemble }, { family: 'resnet', plus: s.plus !== undefined, noisiness: s.noisiness });
    return runHeader({ name: s.model ?? 'RN50' }, plan);
  }
  const context = m.context === null ? undefined : { source: m.context };
  const header = runHeader({ name: m.name, context }, m.plan);
  const run = runInfo({ name: m.name, modelSha256: m.sha256, maxPixels: m.maxPixels, describe: () => m.architecture, context }, settingsFlags(info.settings), m.positional, new Date(info.created));
  return { ...header, run };
}

async function runResults(flags: ResultsFlags): Promise<number> {
  const { open, redisError, waitFinished, readInfo, readStatus, readRows } = await queueModules();
  const batch = checkBatchName(flags.batch);
  const prefix = checkPrefix(flags.prefix);
  const format = flags.format ?? (flags.output ? formatOfFileName(flags.output) : undefined) ?? 'json';
  if (format === 'table') throw usage('queue results writes json, jsonl or csv');
  if (flags.output) await checkWritableFile(flags.output, 'the results', 'scores.json');
  const redis = await open(flags.redis, 'client');
  try {
    if (flags.wait) await waitFinished(redis, prefix, batch);
    const info = await readInfo(redis, prefix, batch);
    const status = await readStatus(redis, prefix, batch);
    const header = batchHeader(info);
    const formatter = createFormatter(format, header);
    const output = openOutput(flags.output, 'the results');
    const sums = new Map<string, { total: number; n: number }>();
    let scored = 0;
    let failed = 0;
    let pending = 0;
    try {
      output.stream.write(formatter.start());
      for await (const r of readRows(redis, prefix, batch, info.model?.names ?? header.names)) {
        if (r.ok === null) {
          pending++;
          continue;
        }
        const row: ImageRow = r.ok ? { file: r.file, width: r.width, height: r.height, scores: r.scores } : { file: r.file, error: r.error };
        if ('error' in row) failed++;
        else scored++;
        // A batch of millions streams: only json keeps its rows (its formatter does), the means are summed as rows pass.
        if (!('error' in row)) for (const [k, v] of Object.entries(row.scores)) sums.set(k, { total: (sums.get(k)?.total ?? 0) + v, n: (sums.get(k)?.n ?? 0) + 1 });
        output.stream.write(formatter.row(row));
      }
      const last = new Date(info.created).getTime();
      const summary: Summary = {
        images: scored + failed,
        scored,
        failed,
        skipped: 0,
        skipped_files: [],
        seconds: status.finished && status.rate ? Math.round(((status.scored + status.failed - 1) / status.rate) * 1000) / 1000 : Math.round((Date.now() - last) / 10) / 100,
        mean: Object.fromEntries(header.names.filter((n) => sums.has(n)).map((n) => [n, Math.round((sums.get(n)!.total / sums.get(n)!.n) * 1e6) / 1e6])),
        ...(pending ? { interrupted: true as const } : {}),
      };
      output.stream.write(formatter.end(summary));
      await output.close();
      note(
        flags.quiet,
        `batch ${batch}: ${summary.scored} scored, ${failed} failed` +
          (pending ? `, ${pending} not done yet (left out; --wait waits for them)` : '') +
          (output.path ? `; wrote ${scored + failed} results (${format}) to ${printable(flags.output!)}` : ''),
      );
      return failed > 0 || pending > 0 ? 1 : 0;
    } catch (e) {
      await output.discard();
      throw e;
    }
  } catch (e) {
    throw redisError(flags.redis, e);
  } finally {
    redis.disconnect();
  }
}

export function queueCommand(program: Command): Command {
  const queue = program.command('queue').description('score on many workers through Redis: add a batch, follow it, collect its results (see `clip-iqa worker`)');

  const add = queue
    .command('add')
    .description('add images to a batch (one job each; adding the same image again does nothing)')
    .argument('[images...]', 'image files, directories, globs or http(s) URLs, as every worker will read them (a shared filesystem)')
    .requiredOption('--batch <name>', 'the batch (letters, digits, . _ -)')
    .option('-a, --attributes <list>', 'look, feel, paper (both), extra, all, ensemble, or names: quality,sharpness,…', 'paper')
    .option('-p, --prompt <pair>', 'your own antonym pair "name=positive|negative" (repeatable)', collect, [])
    .option('--ensemble', "add pyiqa's five-pair quality ensemble as `ensemble`")
    .option('--from <list>', 'also add the paths or URLs in this file, one a line, or its file/url column if CSV (repeatable)', collect, [])
    .option('--allow-hosts <hosts>', 'workers fetch URL images only from these hosts (comma-separated; *.example.com for sub-domains)', hostList)
    .option('--fetch-timeout <seconds>', 'deadline of one URL fetch, redirects included (default 30)', seconds)
    .option('--max-bytes <size>', 'largest image read from a URL (default 64MiB)', parseSize);
  addRedisOptions(add);
  // The model options: stored with the batch (--threads, --device, --cache-dir and --offline are each worker's own).
  addModelOptions(add);
  add.addHelpText(
    'after',
    `
Examples:
  $ clip-iqa queue add --redis redis://queue:6379 --batch photos -a quality,sharpness /mnt/shared/photos/
  $ clip-iqa queue add --redis redis://:secret@queue:6379 --batch web --from urls.txt --allow-hosts cdn.example.com`,
  );
  add.action(async (images: string[], flags: AddFlags) => {
    process.exitCode = await runAdd(images, flags);
  });

  const status = queue
    .command('status')
    .description("a batch's progress: done, scored, failed, waiting, active, rate and ETA")
    .requiredOption('--batch <name>', 'the batch')
    .option('--watch', 'a progress bar until the batch is done')
    .option('--json', 'the status as JSON');
  addRedisOptions(status).action(async (flags: StatusFlags) => {
    process.exitCode = await runStatus(flags);
  });

  const results = queue
    .command('results')
    .description("a batch's results in input order, in the shapes of `clip-iqa score` (exit 1 when some failed or are not done)")
    .requiredOption('--batch <name>', 'the batch')
    .addOption(new Option('-f, --format <format>', 'output format (default: from the -o file name, else json)').choices(['json', 'jsonl', 'csv']))
    .option('-o, --output <file>', 'write to a file (replaced when complete)')
    .option('--wait', 'wait until every image is done')
    .option('-q, --quiet', 'no notes on stderr');
  addRedisOptions(results).action(async (flags: ResultsFlags) => {
    process.exitCode = await runResults(flags);
  });

  const rm = queue.command('rm').description('remove a batch: its jobs, results and settings').requiredOption('--batch <name>', 'the batch').option('-q, --quiet', 'no notes on stderr');
  addRedisOptions(rm).action(async (flags: RedisFlags & { batch: string; quiet?: boolean }) => {
    const { removeBatch } = await queueModules();
    const existed = await removeBatch({ redis: flags.redis, prefix: flags.prefix, batch: flags.batch });
    if (!existed) throw new ClipIqaError('E_NOT_FOUND', `there is no batch "${flags.batch}" (prefix ${flags.prefix})`);
    note(flags.quiet, `removed batch ${flags.batch}`);
  });
  return queue;
}
