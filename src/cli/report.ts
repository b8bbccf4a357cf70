/**
 * `clip-iqa report results.json|results.jsonl -o report.html`: the HTML report of saved results, without loading a
 * model or scoring anything again. Thumbnails come from the image files the results name, when they are still there.
 */
import type { Command } from 'commander';
import { dirname, resolve } from 'node:path';
import { formatBytes } from '../hub/progress.js';
import type { ReportOptions } from '../report/html.js';
import { BatchProgress } from './progress.js';

interface ReportFlags {
  output?: string;
  sort?: string;
  title?: string;
  base?: string;
  thumbnails: boolean;
  fetchUrls?: boolean;
  quiet?: boolean;
}

/** Skipped lines named one by one up to this many; the rest are counted. */
const LISTED = 20;

/** Limits of `--fetch-urls`, as the server's defaults for `url=` images. */
const FETCH = { maxBytes: 20 * 2 ** 20, timeoutMs: 30_000 };

export function reportCommand(program: Command): Command {
  return program
    .command('report')
    .description('make the HTML report of saved results (clip-iqa score --format json or jsonl) without scoring again')
    .argument('<results>', 'results file: .json or .jsonl as clip-iqa score writes them')
    .option('-o, --output <file.html>', 'where to write the report (default: the results file with .html)')
    .option('--sort <score>', 'order the cards by this score, highest first (default: quality, else the first score)')
    .option('--title <text>', 'page heading (default: CLIP-IQA report)')
    .option('--base <dir>', 'folder relative image paths are resolved against (default: the working directory, then the folder of the results file)')
    .option('--no-thumbnails', 'leave thumbnails out (placeholders): no image file is read')
    .option('--fetch-urls', 'fetch http(s) images for their thumbnails (default: a placeholder; nothing is fetched)')
    .option('-q, --quiet', 'no progress bar or notes on stderr')
    .addHelpText(
      'after',
      `
Examples:
  $ clip-iqa score -f jsonl -o results.jsonl photos/ && clip-iqa report results.jsonl -o report.html
  $ clip-iqa report results.json --sort sharpness --title "Holiday photos"

Lines of a JSONL file that are not image rows (a run cut short) are skipped and named on stderr; the exit status is
then 1. A file that is not results at all exits 2.`,
    )
    .action(async (results: string, flags: ReportFlags) => {
      process.exitCode = await runReport(results, flags);
    });
}

async function runReport(path: string, flags: ReportFlags): Promise<number> {
  const output = flags.output ?? path.replace(/(\.(jsonl|ndjson|json))?$/i, '.html');
  // Loaded by this command only, so that `score` and `embed` start without them.
  const [{ checkReportPath, writeReport }, { readResults }, { fetchImage }] = await Promise.all([
    import('../report/html.js'),
    import('../report/results.js'),
    import('../server/fetch.js'),
  ]);
  await checkReportPath(output);
  const saved = await readResults(path);
  const log = (text: string) => {
    if (!flags.quiet) process.stderr.write(`clip-iqa: ${text}\n`);
  };
  // Skipped lines are reported whatever --quiet says: they are what the report leaves out.
  for (const s of saved.skipped.slice(0, LISTED)) process.stderr.write(`clip-iqa: ${path} ${s.where}: ${s.reason}; skipped\n`);
  if (saved.skipped.length > LISTED) process.stderr.write(`clip-iqa: ${path}: ${saved.skipped.length - LISTED} more entries skipped\n`);
  for (const note of saved.notes) log(`${path}: ${note}`);

  const urls = saved.rows.filter((r) => /^https?:\/\//i.test(r.file));
  const hosts = [...new Set(urls.map((r) => new URL(r.file).host))];
  const scored = saved.rows.filter((r) => !('error' in r)).length;
  const progress = new BatchProgress(scored, { quiet: flags.quiet });
  const options: ReportOptions = {
    thumbnails: flags.thumbnails,
    cwd: flags.base ?? process.cwd(),
    // Paths as given are relative to where the run was made: most often here, else beside the results.
    alsoIn: flags.base === undefined ? [dirname(resolve(path))] : [],
    ...(flags.fetchUrls ? { fetchUrl: async (url: string) => (await fetchImage(url, { allow: hosts, ...FETCH })).bytes } : {}),
    onCard: () => progress.tick(true),
  };
  const info = await writeReport(
    output,
    { header: saved.header, rows: saved.rows, sortBy: flags.sort, title: flags.title, date: saved.date, seconds: saved.seconds },
    options,
  ).finally(() => progress.end());
  if (urls.length > 0 && !flags.fetchUrls && flags.thumbnails) log(`${urls.length} images are URLs and have placeholders; --fetch-urls fetches their thumbnails`);
  log(`wrote ${info.path} (${info.scored} images, ${info.failed} failed, ${formatBytes(info.bytes)})`);
  return saved.skipped.length > 0 ? 1 : 0;
}
