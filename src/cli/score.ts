import { realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type BatchResult, ClipIqa, type ScoreOptions, planScore } from '../api.js';
import { ClipIqaError, errorMessage } from '../errors.js';
import { DEFAULT_URL_FETCH, type UrlFetchOptions } from '../image/fetch.js';
import type { ImageSource } from '../image/decode.js';
import { checkWritableFile } from '../util/output-file.js';
import { DEFAULT_MAX_INPUT_BYTES, type InputItem, type Inputs, expandInputs, readStdin } from './inputs.js';
import { type ModelFlags, addModelOptions, clipIqaOptions, positiveInt } from './model-options.js';
import {
  FORMATS,
  type ImageRow,
  type OutputFormat,
  type RunHeader,
  type Summary,
  createFormatter,
  formatOfFileName,
  headerRecord,
  imageRow,
  meanScores,
  openOutput,
  runHeader,
  sortRows,
} from './output.js';
import { BatchProgress } from './progress.js';
import { type ResumeState, checkCompatible, checkScoreNames, readResume, resumeKey, rewriteResume } from './resume.js';
import { runInfo } from './run-info.js';
import { type Condition, type FileAction, actOnFiles, actionWords, checkActionDir, checkConditions, parseKeep, passes } from './select.js';
import { printable } from './terminal.js';

interface ScoreFlags extends ModelFlags {
  attributes?: string;
  prompt: string[];
  ensemble?: boolean;
  format?: OutputFormat;
  json?: boolean;
  output?: string;
  sort?: string;
  report?: string;
  batch?: number;
  from: string[];
  resume?: string;
  keep?: string;
  top?: number;
  copyTo?: string;
  moveTo?: string;
  linkTo?: string;
  dryRun?: boolean;
  allowHosts?: string[];
  fetchTimeout?: number;
  maxBytes?: number;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** `64MiB`, `100M`, `1.5G`, `500k` or a number of bytes. */
export function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?$/i.exec(value.trim());
  const n = m ? Math.floor(Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase())) : NaN;
  if (!Number.isFinite(n) || n < 1) throw new InvalidArgumentError('give a size such as 64MiB, 500k or a number of bytes.');
  return n;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('give a number of seconds greater than 0.');
  return n;
}

const hostList = (value: string, previous: string[] = []) => [...previous, ...value.split(',').map((h) => h.trim()).filter(Boolean)];

export function scoreCommand(program: Command): Command {
  const cmd = program
    .command('score', { isDefault: true })
    .description('score how images look and feel (the default command)')
    .argument('[images...]', 'image files, directories (searched recursively), globs, http(s) URLs, or - for standard input')
    .option('-a, --attributes <list>', 'look, feel, paper (both), extra, all, ensemble, or names: quality,sharpness,…', 'paper')
    .option('-p, --prompt <pair>', 'your own antonym pair "name=positive|negative" (repeatable)', collect, [])
    .option('--ensemble', "add pyiqa's five-pair quality ensemble as `ensemble`")
    .option('--from <list>', 'also score the paths or URLs in this file, one a line, or its file/url column if CSV; - for standard input (repeatable)', collect, [])
    .addOption(new Option('-f, --format <format>', 'output format (default: from the -o file name; else a table on a terminal, json otherwise)').choices(FORMATS))
    .option('--json', 'same as --format json')
    .option('-o, --output <file>', 'write results to a file (.json, .jsonl or .csv pick the format), replaced when complete')
    .option('--resume <file.jsonl>', 'append results to this JSONL file as they come, skipping images it already holds (rerun the same command to go on)')
    .option('--sort <score>', 'order images by this score, highest first')
    .option('--keep <conditions>', 'keep only images that meet every condition, e.g. "quality>=0.6,sharpness>=0.5"')
    .option('--top <n>', 'keep only the n highest by --sort (default quality)', positiveInt('--top'))
    .option('--copy-to <dir>', 'copy the kept images into this directory (never overwriting: a clash gets a -1, -2… name)')
    .option('--move-to <dir>', 'move the kept images into this directory (never overwriting)')
    .option('--link-to <dir>', 'symlink the kept images into this directory (never overwriting)')
    .option('-n, --dry-run', 'with --copy-to/--move-to/--link-to: score, then only print what would be done')
    .option('--report <file.html>', 'also write a self-contained HTML report with thumbnails and radar charts')
    .option('--allow-hosts <hosts>', 'fetch URL images only from these hosts (comma-separated; *.example.com for sub-domains; default any)', hostList)
    .option('--fetch-timeout <seconds>', `deadline of one URL fetch, redirects included (default ${DEFAULT_URL_FETCH.timeoutMs / 1000})`, seconds)
    .option('--max-bytes <size>', 'largest image read from a URL or standard input, and largest list on standard input (default 64MiB)', parseSize)
    .option('--batch <n>', 'run up to n consecutive same-size images through the image tower together (default 1)', positiveInt('--batch'));
  addModelOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Examples:
  $ clip-iqa photos/                                  the paper's 12 attributes for every image under photos/
  $ clip-iqa -a quality,sharpness --sort quality *.jpg
  $ clip-iqa -a look -p "vivid=Vivid photo.|Dull photo." -o scores.csv photos/
  $ clip-iqa --resume scores.jsonl photos/            a long batch: rerun the same command after an interruption
  $ clip-iqa --from urls.txt -o scores.json           paths or URLs, one a line (or a CSV with a file/url column)
  $ clip-iqa --keep 'quality>=0.6,sharpness>=0.5' --copy-to best/ --dry-run photos/
  $ clip-iqa --plus --json photo.jpg                  add CLIP-IQA+ (learned prompts, official context)
  $ clip-iqa --report report.html photos/             an HTML page with thumbnails and radar charts
  $ clip-iqa -m model.safetensors photo.png           a local model: no download

Exit status: 0 when every image was scored, 1 when some failed (reported, the batch goes on), 2 on bad usage,
130 (143 on SIGTERM) when interrupted: the output then holds what was done, and says so.`,
  );
  return cmd.action(async (images: string[], flags: ScoreFlags) => {
    process.exitCode = await runScore(images, flags);
  });
}

const usage = (message: string) => new ClipIqaError('E_OPTION', message);

/** The format asked for: --json, --format, the -o file's extension, else a table on a terminal and JSON otherwise. */
function chooseFormat(flags: ScoreFlags): OutputFormat {
  if (flags.resume) {
    if ((flags.format && flags.format !== 'jsonl') || flags.json) throw usage('--resume writes JSONL; leave out --format/--json');
    return 'jsonl';
  }
  if (flags.json) return 'json';
  if (flags.format) return flags.format;
  if (flags.output) {
    if (/\.html?$/i.test(flags.output)) throw usage(`-o ${flags.output}: -o writes results (json, jsonl, csv); for an HTML page use --report`);
    return formatOfFileName(flags.output) ?? 'json';
  }
  return process.stdout.isTTY ? 'table' : 'json';
}

function fileAction(flags: ScoreFlags): { action: FileAction; dir: string; flag: string } | undefined {
  const given = (
    [
      ['copy', flags.copyTo, '--copy-to'],
      ['move', flags.moveTo, '--move-to'],
      ['link', flags.linkTo, '--link-to'],
    ] as const
  ).filter(([, dir]) => dir !== undefined);
  if (given.length > 1) throw usage(`${given.map((g) => g[2]).join(' and ')}: choose one`);
  if (given.length === 0) {
    if (flags.dryRun) throw usage('--dry-run goes with --copy-to, --move-to or --link-to');
    return undefined;
  }
  return { action: given[0]![0], dir: given[0]![1]!, flag: given[0]![2] };
}

/** A path as it will be on disk, symbolic links resolved, for comparing outputs with inputs and each other. */
async function realTarget(path: string): Promise<string> {
  const full = resolve(path);
  return (await realpath(full).catch(() => undefined)) ?? join((await realpath(dirname(full)).catch(() => dirname(full))) as string, basename(full));
}

/** Fails when an output file is one of the inputs, or two outputs are one file. */
async function checkOutputsAgainstInputs(outputs: { flag: string; path: string }[], items: readonly InputItem[]): Promise<void> {
  const targets = await Promise.all(outputs.map(async (o) => ({ ...o, real: await realTarget(o.path) })));
  for (const [i, o] of targets.entries()) {
    const input = items.find((item) => item.kind === 'file' && item.real === o.real);
    if (input) throw new ClipIqaError('E_OUTPUT', `${o.flag} ${o.path}: that is one of the images of this run (${input.name}); choose another file name`);
    const twin = targets.slice(0, i).find((t) => t.real === o.real);
    if (twin) throw new ClipIqaError('E_OUTPUT', `${twin.flag} and ${o.flag} name the same file ${o.path}; give each its own`);
  }
}

interface Selection {
  readonly conditions: Condition[] | undefined;
  readonly top: number | undefined;
  readonly by: string | undefined;
}

async function runScore(args: string[], flags: ScoreFlags): Promise<number> {
  const started = new Date();
  const quiet = flags.quiet === true;
  const note = (text: string) => {
    if (!quiet) process.stderr.write(`${text}\n`);
  };

  // -- everything that can be checked without a model: a mistake costs nothing --------------------------------
  if (args.length === 0 && flags.from.length === 0) throw usage('no images given: name files, directories, globs or URLs, or --from a list');
  if (flags.from.filter((f) => f === '-').length + args.filter((a) => a === '-').length > 1) {
    throw usage('standard input (-) can be read once: as an image or as a --from list, not both');
  }
  const format = chooseFormat(flags);
  if (flags.resume && (flags.output || flags.sort || flags.keep || flags.top)) {
    throw usage('--resume appends every image to its file as it is scored; it does not go with -o, --sort, --keep or --top');
  }
  const action = fileAction(flags);
  const outputPath = flags.resume ?? flags.output;
  if (outputPath) await checkWritableFile(outputPath, 'the results', 'scores.json');
  // The report code (and what it loads) only when a report is asked for.
  if (flags.report) await (await import('../report/html.js')).checkReportPath(flags.report);
  if (action) await checkActionDir(action.dir, action.flag);

  const options: ScoreOptions = { attributes: flags.attributes, prompts: flags.prompt, ensemble: flags.ensemble };
  const plusAsked = flags.plus !== undefined && flags.plus !== false;
  // The scores a run reports depend on the model only through its family (score maps); the CLI asks for none.
  const plan = planScore(options, { family: 'resnet', plus: plusAsked, noisiness: flags.noisiness, positional: flags.positional });
  const names = runHeader({ name: '', context: { source: '' } }, plan).names;
  if (flags.sort && !names.includes(flags.sort)) throw usage(`--sort ${flags.sort}: not among the scores of this run (${names.join(', ')})`);
  const conditions = flags.keep === undefined ? undefined : parseKeep(flags.keep);
  if (conditions) checkConditions(conditions, names);
  const by = flags.sort ?? (flags.top !== undefined ? (names.includes('quality') ? 'quality' : undefined) : undefined);
  if (flags.top !== undefined && by === undefined) throw usage('--top needs --sort SCORE (there is no quality score to rank by)');
  const selection: Selection = { conditions, top: flags.top, by };

  const resume = flags.resume ? await readResume(flags.resume) : undefined;
  if (resume) checkScoreNames(resume, names);

  const inputs = await expandInputs(args, { lists: flags.from, allowHosts: flags.allowHosts, maxStdinBytes: flags.maxBytes });
  await checkOutputsAgainstInputs(
    [
      ...(flags.output ? [{ flag: '-o', path: flags.output }] : []),
      ...(flags.resume ? [{ flag: '--resume', path: flags.resume }] : []),
      ...(flags.report ? [{ flag: '--report', path: flags.report }] : []),
    ],
    inputs.items,
  );
  const todo = resume ? inputs.items.filter((i) => i.kind === 'bad' || !resume.done.has(resumeKey(i.name))) : inputs.items;
  const already = inputs.items.length - todo.length;
  if (resume && already > 0) note(`clip-iqa: resuming ${printable(resume.path)}: ${already} of ${inputs.items.length} images already scored there`);
  const runnable = todo.filter((i) => i.kind !== 'bad');
  if (runnable.length === 0) {
    for (const item of todo) if (item.kind === 'bad') process.stderr.write(`clip-iqa: ${printable(item.reason)}\n`);
    reportSkipped(inputs, note);
    if (todo.length > 0) throw usage(`nothing to score: ${todo.length === 1 ? 'the input' : `all ${todo.length} inputs`} failed the checks above`);
    if (!resume) throw usage('nothing to score');
    note(`clip-iqa: every image is already in ${printable(resume.path)}; nothing to do`);
    return 0;
  }

  // -- the model, then the run --------------------------------------------------------------------------------
  const fetch: UrlFetchOptions = { allowHosts: flags.allowHosts, maxBytes: flags.maxBytes, timeoutMs: flags.fetchTimeout && Math.round(flags.fetchTimeout * 1000) };
  const iqa = await ClipIqa.load({ ...clipIqaOptions(flags), fetch });
  let interrupted: NodeJS.Signals | undefined;
  try {
    const base = runHeader(iqa, iqa.plan(options));
    const header: RunHeader = { ...base, run: runInfo(iqa, flags, base.positional, started) };
    if (resume) checkCompatible(resume, header);
    return await scoreAll(iqa, { flags, format, header, inputs, todo, resume, selection, action, options, started, note }, (s) => (interrupted = s));
  } finally {
    // An interrupted run may have inference in flight: the process ends without waiting for it.
    if (!interrupted) await iqa.dispose();
  }
}

interface RunContext {
  readonly flags: ScoreFlags;
  readonly format: OutputFormat;
  readonly header: RunHeader;
  readonly inputs: Inputs;
  readonly todo: readonly InputItem[];
  readonly resume: ResumeState | undefined;
  readonly selection: Selection;
  readonly action: ReturnType<typeof fileAction>;
  readonly options: ScoreOptions;
  readonly started: Date;
  readonly note: (text: string) => void;
}

const INTERRUPT = 'interrupt' as const;

async function scoreAll(iqa: ClipIqa, ctx: RunContext, onInterrupt: (signal: NodeJS.Signals) => void): Promise<number> {
  const { flags, format, header, inputs, todo, resume, selection, note } = ctx;
  const outputPath = flags.resume ?? flags.output;
  // A resumed file gets its header here (a new file, or one whose torn line or failed rows are dropped), then rows.
  if (resume?.rewrite) await rewriteResume(resume, `${JSON.stringify(resume.header ?? headerRecord(header))}\n`);
  const output = openOutput(outputPath, 'the results', { append: resume !== undefined });
  const toTerminal = !outputPath && process.stdout.isTTY === true;
  const columns = outputPath ? undefined : toTerminal ? process.stdout.columns : Number(process.env.COLUMNS) || undefined;
  const formatter =
    format === 'table'
      ? (await import('./table.js')).tableFormatter(header, { color: toTerminal && !process.env.NO_COLOR, columns, files: todo.map((i) => i.name) })
      : createFormatter(format, header);
  const progress = new BatchProgress(todo.length, { quiet: flags.quiet });
  const filtered = selection.conditions !== undefined || selection.top !== undefined;
  const buffered = flags.sort !== undefined || selection.top !== undefined;
  const rows: ImageRow[] = [];
  const emit = (text: string) => text && progress.log(output.stream, text);
  let failed = 0;
  let scored = 0;
  const add = (row: ImageRow) => {
    if ('error' in row) failed++;
    else scored++;
    progress.tick(!('error' in row));
    rows.push(row);
    const shown = !filtered || 'error' in row || !selection.conditions || passes(row, selection.conditions);
    if (!buffered && shown) emit(formatter.row(row));
    if ('error' in row && format !== 'table' && !flags.quiet) progress.log(process.stderr, `clip-iqa: ${printable(row.error.message)}\n`);
  };

  // Stopping (Ctrl-C, SIGTERM) ends the run after the image in hand and writes what was done: the output stays valid.
  let stop: (signal: NodeJS.Signals) => void = () => undefined;
  const stopped = new Promise<NodeJS.Signals>((resolve) => (stop = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    onInterrupt(signal);
    stop(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let signal: NodeJS.Signals | undefined;
  try {
    if (!resume) emit(formatter.start());
    // Inputs that cannot be scored are reported first; the batch goes on with the rest.
    for (const item of todo) if (item.kind === 'bad') add({ file: item.name, error: { code: item.code, message: item.reason } });
    // Standard input is read before the batch starts, so that too much of it fails as its own row.
    let stdin: Buffer | undefined;
    if (todo.some((item) => item.kind === 'stdin')) {
      try {
        stdin = await readStdin(flags.maxBytes ?? DEFAULT_MAX_INPUT_BYTES);
      } catch (e) {
        const err = e instanceof ClipIqaError ? e : new ClipIqaError('E_IMAGE', `-: cannot read standard input (${errorMessage(e)})`);
        add({ file: '-', error: { code: err.code, message: err.message } });
      }
    }
    const present = todo.filter((item) => item.kind === 'file' || item.kind === 'url' || (item.kind === 'stdin' && stdin));
    const sources = async function* (): AsyncGenerator<ImageSource> {
      for (const item of present) yield item.kind === 'stdin' ? stdin! : item.name;
    };
    const results = iqa.scoreMany(sources(), { ...ctx.options, batch: flags.batch })[Symbol.asyncIterator]();
    for (;;) {
      const next: IteratorResult<BatchResult> | typeof INTERRUPT = await Promise.race([results.next(), stopped.then((): typeof INTERRUPT => INTERRUPT)]);
      if (next === INTERRUPT) {
        signal = await stopped;
        void results.return(undefined).catch(() => undefined);
        break;
      }
      if (next.done) break;
      const r = next.value;
      add(imageRow(present[r.index]!.name, r));
    }
  } catch (e) {
    progress.end();
    await output.discard();
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  progress.end();

  // -- the end: sorted or selected rows, summary, report, file actions -----------------------------------------
  let shownRows = rows;
  if (filtered) shownRows = rows.filter((r) => 'error' in r || !selection.conditions || passes(r, selection.conditions));
  if (selection.by && (flags.sort || selection.top !== undefined)) shownRows = sortRows(shownRows, selection.by);
  if (selection.top !== undefined) {
    const scoredRows = shownRows.filter((r) => !('error' in r)).slice(0, selection.top);
    shownRows = [...scoredRows, ...shownRows.filter((r) => 'error' in r)];
  }
  if (buffered) for (const row of shownRows) emit(formatter.row(row));
  const elapsed = (Date.now() - ctx.started.getTime()) / 1000;
  const kept = shownRows.filter((r) => !('error' in r)).length;
  const summary: Summary = {
    images: rows.length,
    scored,
    failed,
    skipped: inputs.skipped.length,
    skipped_files: inputs.skipped,
    seconds: Math.round(elapsed * 1000) / 1000,
    mean: meanScores(rows, header.names),
    ...(signal ? { interrupted: true as const } : {}),
    ...(filtered ? { selection: { ...(flags.keep ? { keep: flags.keep } : {}), ...(selection.top !== undefined ? { top: selection.top } : {}), kept } } : {}),
  };
  emit(formatter.end(summary));
  await output.close();

  const total = todo.length;
  if (signal) {
    const where = output.path ? printable(outputPath!) : 'the output';
    process.stderr.write(
      `clip-iqa: interrupted (${signal}) after ${rows.length} of ${total} images; ${where} holds the results of those ${rows.length} (complete, valid ${format})` +
        (flags.report || ctx.action ? '; no report written and no files copied, moved or linked' : '') +
        (resume ? '; run the same command again to go on\n' : '\n'),
    );
    // Inference may still be running on native threads; nothing more is written, so the process may end now.
    setTimeout(() => process.exit(), 1000).unref();
    return signal === 'SIGTERM' ? 143 : 130;
  }
  const rate = rows.length / Math.max(elapsed, 1e-3);
  const means = Object.entries(summary.mean).map(([k, v]) => `${k} ${v.toFixed(3)}`);
  note(
    `${scored} scored, ${failed} failed${inputs.skipped.length ? `, ${inputs.skipped.length} skipped` : ''} in ${elapsed.toFixed(1)} s (${rate.toFixed(2)} images/s)` +
      (means.length ? `; mean ${means.join(', ')}` : ''),
  );
  reportSkipped(inputs, note);
  if (output.path) note(`wrote ${rows.length} ${rows.length === 1 ? 'result' : 'results'} (${format}${resume ? `, ${resume.rows.length + rows.length} in all` : ''}) to ${printable(outputPath!)}`);
  if (flags.report) {
    // A resumed run's report shows every image of the file, not only this run's.
    const reportRows = resume ? [...resume.rows, ...rows] : filtered ? shownRows : rows;
    const info = await (await import('../report/html.js')).writeReport(flags.report, { header, rows: reportRows, sortBy: selection.by });
    note(`wrote the report (${info.scored} images) to ${printable(flags.report)}`);
  }
  if (ctx.action) await act(ctx.action, shownRows, flags.dryRun === true, note);
  return failed > 0 ? 1 : 0;
}

function reportSkipped(inputs: Inputs, note: (text: string) => void): void {
  if (inputs.skipped.length === 0) return;
  const shown = inputs.skipped.slice(0, 5).map((s) => `${printable(s.file)} (${s.reason})`);
  const more = inputs.skipped.length - shown.length;
  note(`skipped ${inputs.skipped.length} ${inputs.skipped.length === 1 ? 'file' : 'files'}: ${shown.join(', ')}${more > 0 ? `, and ${more} more (listed in JSON output's summary.skipped_files)` : ''}`);
}

async function act(action: NonNullable<ReturnType<typeof fileAction>>, rows: readonly ImageRow[], dryRun: boolean, note: (text: string) => void): Promise<void> {
  const files = rows.filter((r) => !('error' in r)).map((r) => r.file);
  const words = actionWords(action.action);
  const result = await actOnFiles(action.action, action.dir, files, dryRun);
  if (dryRun) {
    // What a dry run is for: printed even with --quiet.
    for (const s of result.done) process.stderr.write(`would ${words.present} ${printable(s.from)} → ${printable(s.to)}\n`);
  }
  for (const s of result.skipped) process.stderr.write(`clip-iqa: not ${words.past}: ${printable(s.file)}: ${printable(s.reason)}\n`);
  const renamed = result.done.filter((s) => basename(s.to) !== basename(s.from)).length;
  const what = `${result.done.length} ${result.done.length === 1 ? 'image' : 'images'} to ${printable(action.dir)}`;
  const clashes = renamed ? ` (${renamed} renamed to avoid overwriting)` : '';
  if (dryRun) process.stderr.write(`dry run: would ${words.present} ${what}${clashes}; nothing was changed\n`);
  else note(`${words.past} ${what}${clashes}`);
}
