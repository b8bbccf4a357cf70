import { type Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULTS } from '../server/options.js';
import { type ModelFlags, addModelOptions, clipIqaOptions, positiveInt } from './model-options.js';

interface ServeFlags extends ModelFlags {
  host: string;
  port: number;
  workers?: number;
  concurrency?: number;
  queue?: number;
  maxUpload?: number;
  maxFiles?: number;
  maxImageMemory?: number;
  maxInFlight?: number;
  allowedHosts?: string[];
  cors?: string[];
  maxPrompts?: number;
  timeout?: number;
  token?: string;
  allowUrlFetch?: string[];
  fetchTimeout?: number;
  ui: boolean;
  logLevel: string;
  shutdownTimeout: number;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port is a whole number from 0 (any free port) to 65535.');
  return n;
}

function seconds(what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${what} is a positive number of seconds.`);
    return n;
  };
}

function wholeNumber(what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${what} must be a whole number.`);
    return n;
  };
}

function megabytes(what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${what} is a positive number of megabytes (MiB).`);
    return Math.round(n * 1024 * 1024);
  };
}

/** A comma-separated list, repeatable: `--cors a,b --cors c`. */
const list = (value: string, previous: string[] = []): string[] => [
  ...previous,
  ...value
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean),
];

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** `clip-iqa serve`: the HTTP API and the web page. */
export function serveCommand(program: Command): Command {
  const cmd = program
    .command('serve')
    .description('serve the HTTP API (POST /v1/score, …) and a web page for looking at images')
    .option('--host <host>', 'interface to listen on (0.0.0.0: every interface; then set --token)', '127.0.0.1')
    .option('--port <port>', 'TCP port (0: any free port)', port, 8080)
    .option('--workers <n>', `model processes, each holding the model (default ${DEFAULTS.workers}; --threads is per process)`, positiveInt('--workers'))
    .option('--concurrency <n>', `images in the model processes at once (default ${DEFAULTS.concurrencyPerWorker} per process)`, positiveInt('--concurrency'))
    .option('--queue <n>', `images that may wait; more get 429 with Retry-After (default ${DEFAULTS.queue})`, wholeNumber('--queue'))
    .option('--max-upload <MiB>', `largest upload per image (default ${DEFAULTS.maxUploadBytes / 1024 / 1024})`, megabytes('--max-upload'))
    .option('--max-files <n>', `most images per request (default ${DEFAULTS.maxFiles})`, positiveInt('--max-files'))
    .option(
      '--max-image-memory <MiB>',
      'most memory one image may take, estimated from its header for the model; larger ones get 413 (default: half the memory available after loading, per process)',
      megabytes('--max-image-memory'),
    )
    .option('--max-in-flight <MiB>', `request bodies held in memory at once, server-wide; more get 429 (default ${DEFAULTS.maxInFlightBytes / 1024 / 1024})`, megabytes('--max-in-flight'))
    .option('--max-prompts <n>', `most custom prompt pairs per request (default ${DEFAULTS.maxPrompts})`, wholeNumber('--max-prompts'))
    .option('--timeout <seconds>', `time to receive a request (then 408), and again to answer it (then 503, work stopped) (default ${DEFAULTS.timeoutMs / 1000})`, seconds('--timeout'))
    .option('--token <token>', 'require "Authorization: Bearer <token>" on /v1/* and /metrics ($CLIP_IQA_TOKEN)')
    .option('--allow-url-fetch <hosts>', 'let url= fetch images from these hosts (comma-separated; *.example.com for sub-domains)', list)
    .option('--allowed-hosts <hosts>', 'Host headers to answer, against DNS rebinding (comma-separated; * for any; default: localhost names on a loopback --host, any otherwise)', list)
    .option('--cors <origins>', 'web pages from these origins may call the API (comma-separated, e.g. https://app.example.com; * for any; default: none)', list)
    .option('--fetch-timeout <seconds>', `deadline of one url= fetch (default ${DEFAULTS.fetchTimeoutMs / 1000})`, seconds('--fetch-timeout'))
    .option('--no-ui', 'serve the API only: no web page and no docs page')
    .addOption(new Option('--log-level <level>', 'JSON request log on standard output').choices(['fatal', 'error', 'warn', 'info', 'debug', 'silent']).default('info'))
    .option('--shutdown-timeout <seconds>', 'on SIGTERM/SIGINT, longest wait for requests in flight', seconds('--shutdown-timeout'), 30);
  addModelOptions(cmd);
  cmd.addHelpText(
    'after',
    `
The server loads the model once, then answers /readyz with 200. It takes images as multipart uploads under any field
name, or as a raw image body; options are the query parameters or form fields of the same names as \`clip-iqa score\`.
--max-pixels defaults to ${DEFAULTS.maxPixels} (4096²) here, and --max-image-memory bounds what each image may cost the
model at its size (a 4096² image needs about 5.6 GB with RN50, far more with a ViT): images are refused from their
header, before decoding. GET /v1/models lists the limits in force.

Examples:
  $ clip-iqa serve                                    RN50 on http://127.0.0.1:8080 (page at /, API docs at /docs)
  $ curl -F image=@photo.jpg http://127.0.0.1:8080/v1/score
  $ curl -F image=@a.jpg -F image=@b.jpg "http://127.0.0.1:8080/v1/score?attributes=all&maps=quality"
  $ curl --data-binary @photo.jpg -H 'content-type: image/jpeg' "http://127.0.0.1:8080/v1/score?attributes=quality"
  $ clip-iqa serve --host 0.0.0.0 --token "$(openssl rand -hex 16)" --plus    reachable from the network, CLIP-IQA+ too`,
  );
  return cmd.action(async (flags: ServeFlags) => {
    process.exitCode = await runServe(flags);
  });
}

async function runServe(flags: ServeFlags): Promise<number> {
  const token = flags.token ?? (process.env.CLIP_IQA_TOKEN || undefined);
  // fastify and the server's plugins are loaded only by this command (a `score` run never pays for them).
  const { buildServer, installShutdown, serverUrl } = await import('../server/index.js');
  const app = await buildServer({
    model: clipIqaOptions(flags),
    workers: flags.workers,
    concurrency: flags.concurrency,
    queue: flags.queue,
    maxUploadBytes: flags.maxUpload,
    maxFiles: flags.maxFiles,
    maxImageMemory: flags.maxImageMemory,
    maxInFlightBytes: flags.maxInFlight,
    allowedHosts: flags.allowedHosts,
    cors: flags.cors,
    maxPixels: flags.maxPixels,
    maxPrompts: flags.maxPrompts,
    timeoutMs: flags.timeout === undefined ? undefined : Math.round(flags.timeout * 1000),
    token,
    allowUrlFetch: flags.allowUrlFetch,
    fetchTimeoutMs: flags.fetchTimeout === undefined ? undefined : Math.round(flags.fetchTimeout * 1000),
    ui: flags.ui,
    logger: flags.logLevel === 'silent' ? false : { level: flags.logLevel },
  });
  const closed = installShutdown(app, { timeoutMs: flags.shutdownTimeout * 1000 });
  await app.listen({ host: flags.host, port: flags.port });
  const url = serverUrl(app);
  const say = (line: string) => {
    if (!flags.quiet) process.stderr.write(`clip-iqa: ${line}\n`);
  };
  say(`listening on ${url} (loading ${flags.model ?? 'the model'}…)`);
  if (!LOOPBACK.has(flags.host) && !token) say('warning: reachable from the network without a token; anyone who can connect can use it (set --token)');
  if (!LOOPBACK.has(flags.host) && !flags.allowedHosts) say('note: answering any Host header; name the server\'s host names with --allowed-hosts to guard against DNS rebinding');
  try {
    await app.clip.load();
  } catch (e) {
    await app.close();
    throw e;
  }
  say(`ready: ${url}/ (web page), ${url}/docs (API), ${url}/v1/score`);
  await closed;
  return 0;
}
