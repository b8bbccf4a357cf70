import { type Command, Option } from 'commander';
import { ClipIqa } from '../api.js';
import { ClipIqaError } from '../errors.js';
import { checkWritableFile } from '../util/output-file.js';
import { expandInputs, inputName, readStdin } from './inputs.js';
import { type ModelFlags, addModelOptions, clipIqaOptions } from './model-options.js';
import { featureVector, openOutput } from './output.js';
import { printable } from './terminal.js';

interface EmbedFlags extends ModelFlags {
  text: string[];
  json?: boolean;
  format?: 'json' | 'jsonl';
  output?: string;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/**
 * `clip-iqa embed`: CLIP features of images and texts, as JSON:
 *   {"model", "positional", "dim", "images": [{"file", "width", "height", "features": [...]} | {"file", "error"}],
 *    "texts": [{"text", "features": [...]}]}
 * or, with --format jsonl, one such image or text object per line.
 */
export function embedCommand(program: Command): Command {
  const cmd = program
    .command('embed')
    .description('print CLIP image features (and text features with --text), unnormalised')
    .argument('[images...]', 'image files, directories, globs, or - for standard input')
    .option('-t, --text <text>', 'also embed this text (repeatable)', collect, [])
    .option('--json', 'JSON output (the default)')
    .addOption(new Option('-f, --format <format>', 'json: one document; jsonl: one object per line').choices(['json', 'jsonl']).default('json'))
    .option('-o, --output <file>', 'write to a file instead of standard output');
  addModelOptions(cmd);
  return cmd.action(async (images: string[], flags: EmbedFlags) => {
    process.exitCode = await runEmbed(images, flags);
  });
}

async function runEmbed(args: string[], flags: EmbedFlags): Promise<number> {
  if (args.length === 0 && flags.text.length === 0) throw new Error('nothing to embed: give images and/or --text');
  // As `score`: the output path is checked before the model loads.
  if (flags.output) await checkWritableFile(flags.output, 'the features', 'features.json');
  const { items } = await expandInputs(args);
  const iqa = await ClipIqa.load({ ...clipIqaOptions(flags), fetch: true });
  try {
    const output = openOutput(flags.output, 'the features');
    const write = (entry: object) => output.stream.write(`${JSON.stringify(entry)}\n`);
    const jsonl = flags.format === 'jsonl';
    let failed = 0;
    const images: object[] = [];
    for (const item of items) {
      const file = inputName(item);
      let entry: object;
      try {
        if (item.kind === 'bad') throw new ClipIqaError(item.code, item.reason);
        const features = await iqa.embedImage(item.kind === 'stdin' ? await readStdin() : item.name);
        entry = { file, dim: features.length, features: featureVector(features) };
      } catch (e) {
        failed++;
        const err = e as Error & { code?: string };
        entry = { file, error: { code: err.code ?? 'E_NOT_FOUND', message: err.message } };
        if (!flags.quiet) process.stderr.write(`clip-iqa: ${printable(err.message)}\n`);
      }
      if (jsonl) write(entry);
      else images.push(entry);
    }
    const texts = flags.text.length > 0 ? await iqa.embedText(flags.text) : [];
    const textEntries = flags.text.map((text, i) => ({ text, features: featureVector(texts[i]!) }));
    if (jsonl) textEntries.forEach(write);
    else write({ model: iqa.name, positional: flags.positional ?? 'none', dim: iqa.architecture.embedDim, images, texts: textEntries });
    await output.close();
    return failed > 0 ? 1 : 0;
  } finally {
    await iqa.dispose();
  }
}
