/**
 * The `clip-iqa` command: a thin shell over the library. Exit status 0 = all good, 1 = some inputs failed
 * (each reported, the batch went on), 2 = bad usage or a fatal error (model missing, offline, …).
 */
import { Command, CommanderError } from 'commander';
import { isClipIqaError } from '../errors.js';
import { PACKAGE } from '../util/package.js';
import { trace } from '../util/trace.js';
import { embedCommand } from './embed.js';
import { modelsCommand } from './models.js';
import { promptsCommand } from './prompts.js';
import { queueCommand } from './queue.js';
import { reportCommand } from './report.js';
import { scoreCommand } from './score.js';
import { serveCommand } from './serve.js';
import { workerCommand } from './worker.js';


export function createProgram(): Command {
  const program = new Command('clip-iqa')
    .description('How images look and feel, scored by CLIP (CLIP-IQA, Wang, Chan & Loy, AAAI 2023).')
    .version(PACKAGE.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  scoreCommand(program);
  embedCommand(program);
  promptsCommand(program);
  modelsCommand(program);
  reportCommand(program);
  serveCommand(program);
  queueCommand(program);
  workerCommand(program);
  return program;
}

export async function main(argv: readonly string[] = process.argv): Promise<number> {
  trace('modules loaded');
  const program = createProgram();
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    const message = isClipIqaError(e) ? e.message : e instanceof Error ? e.message : String(e);
    process.stderr.write(`clip-iqa: ${message}\n`);
    if (process.env.CLIP_IQA_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return 2;
  }
}
