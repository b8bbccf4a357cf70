import { type Command, Option } from 'commander';
import { ClipIqa, type ScoreOptions } from '../api.js';
import { ClipIqaError } from '../errors.js';
import type { ImageSource } from '../image/decode.js';
import { expandInputs, inputName, readStdin } from './inputs.js';
import { type ModelFlags, addModelOptions, clipIqaOptions, positiveInt } from './model-options.js';
import { FORMATS, type ImageRow, type OutputFormat, createFormatter, imageRow, openOutput, runHeader, sortRows } from './output.js';
import { checkReportPath, writeReport } from '../report/html.js';
import { checkWritableFile } from '../util/output-file.js';
import { BatchProgress } from './progress.js';

interface ScoreFlags extends ModelFlags {
  attributes?: string;
  prompt: string[];
  ensemble?: boolean;
  format?: OutputFormat;
  json?: boolean;
  output?: string;
  sort?: string;
  report?: string;
  concurrency?: number;
  batch?: number;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function scoreCommand(program: Command): Command {
  const cmd = program
    .command('score', { isDefault: true })
    .description('score how images look and feel (the default command)')
    .argument('<images...>', 'image files, directories (searched recursively), globs, or - for standard input')
    .option('-a, --attributes <list>', 'look, feel, paper (both), extra, all, ensemble, or names: quality,sharpness,…', 'paper')
    .option('-p, --prompt <pair>', 'your own antonym pair "name=positive|negative" (repeatable)', collect, [])
    .option('--ensemble', "add pyiqa's five-pair quality ensemble as `ensemble`")
    .addOption(new Option('-f, --format <format>', 'output format (default: table on a terminal, json otherwise)').choices(FORMATS))
    .option('--json', 'same as --format json')
    .option('-o, --output <file>', 'write results to a file instead of standard output')
    .option('--sort <score>', 'order images by this score, highest first')
    .option('--report <file.html>', 'also write a self-contained HTML report with thumbnails and radar charts')
    .option('--batch <n>', 'run up to n consecutive same-size images through the image tower together (default 1)', positiveInt('--batch'));
  addModelOptions(cmd);
  cmd.addHelpText(
    'after',
    `
Examples:
  $ clip-iqa photos/                                  the paper's 12 attributes for every image under photos/
  $ clip-iqa -a quality,sharpness --sort quality *.jpg
  $ clip-iqa -a look -p "vivid=Vivid photo.|Dull photo." --format csv -o scores.csv photos/
  $ clip-iqa --plus --json photo.jpg                  add CLIP-IQA+ (learned prompts, official context)
  $ clip-iqa --report report.html photos/             an HTML page with thumbnails and radar charts
  $ clip-iqa -m model.safetensors photo.png           a local model: no download

Exit status: 0 when every image was scored, 1 when some failed (reported, the batch goes on), 2 on bad usage.`,
  );
  return cmd.action(async (images: string[], flags: ScoreFlags) => {
    process.exitCode = await runScore(images, flags);
  });
}

async function runScore(args: string[], flags: ScoreFlags): Promise<number> {
  const started = Date.now();
  const format: OutputFormat = flags.json ? 'json' : (flags.format ?? (process.stdout.isTTY && !flags.output ? 'table' : 'json'));
  // Output paths are checked before the model loads, so a typo does not cost a whole run.
  if (flags.output) await checkWritableFile(flags.output, 'the results', 'scores.json');
  if (flags.report) await checkReportPath(flags.report);
  const items = await expandInputs(args);
  const iqa = await ClipIqa.load(clipIqaOptions(flags));
  try {
    const options: ScoreOptions = { attributes: flags.attributes, prompts: flags.prompt, ensemble: flags.ensemble };
    const header = runHeader(iqa, iqa.plan(options));
    if (flags.sort && !header.names.includes(flags.sort)) {
      throw new ClipIqaError('E_OPTION', `--sort ${flags.sort}: not among the scores of this run (${header.names.join(', ')})`);
    }
    const output = openOutput(flags.output, 'the results');
    const color = !flags.output && process.stdout.isTTY === true && !process.env.NO_COLOR;
    const fileWidth = Math.max(5, ...items.map((i) => inputName(i).length));
    const formatter = createFormatter(format, header, { color, fileWidth });
    const progress = new BatchProgress(items.length, { quiet: flags.quiet });
    const buffered = flags.sort !== undefined || flags.report !== undefined;
    const rows: ImageRow[] = [];
    const emit = (text: string) => text && progress.log(output.stream, text);
    let failed = 0;
    const add = (row: ImageRow) => {
      if ('error' in row) failed++;
      progress.tick(!('error' in row));
      if (buffered) rows.push(row);
      if (!flags.sort) emit(formatter.row(row));
      if ('error' in row && format !== 'table' && !flags.quiet) progress.log(process.stderr, `clip-iqa: ${row.error.message}\n`);
    };

    // Arguments that named nothing are reported first; the batch goes on with the rest.
    for (const item of items) if (item.kind === 'missing') add({ file: item.arg, error: { code: 'E_NOT_FOUND', message: item.reason } });
    const present = items.filter((item) => item.kind !== 'missing');
    const sources = async function* (): AsyncGenerator<ImageSource> {
      for (const item of present) yield item.kind === 'stdin' ? await readStdin() : item.path;
    };
    for await (const r of iqa.scoreMany(sources(), { ...options, batch: flags.batch })) add(imageRow(inputName(present[r.index]!), r));
    progress.end();
    if (flags.sort) for (const row of sortRows(rows, flags.sort)) emit(formatter.row(row));
    const seconds = (Date.now() - started) / 1000;
    emit(formatter.end({ images: items.length, failed, seconds: Math.round(seconds * 1000) / 1000 }));
    // The report orders its cards by the same key itself.
    if (flags.report) await writeReport(flags.report, { header, rows, sortBy: flags.sort });
    await output.close();
    if (!flags.quiet && process.stderr.isTTY) {
      const rate = items.length / Math.max(seconds, 1e-3);
      process.stderr.write(`${items.length - failed} scored, ${failed} failed in ${seconds.toFixed(1)} s (${rate.toFixed(2)} images/s)\n`);
    }
    return failed > 0 ? 1 : 0;
  } finally {
    await iqa.dispose();
  }
}
