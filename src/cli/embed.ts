import { createWriteStream } from 'node:fs';
import { type Command, Option } from 'commander';
import { ClipIqa } from '../api.js';
import { expandInputs, inputName, readStdin } from './inputs.js';
import { type ModelFlags, addModelOptions, clipIqaOptions } from './model-options.js';

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

const vector = (f: Float32Array) => Array.from(f, (v) => Math.round(v * 1e7) / 1e7);

async function runEmbed(args: string[], flags: EmbedFlags): Promise<number> {
  if (args.length === 0 && flags.text.length === 0) throw new Error('nothing to embed: give images and/or --text');
  const items = await expandInputs(args);
  const iqa = await ClipIqa.load(clipIqaOptions(flags));
  const out = flags.output ? createWriteStream(flags.output) : process.stdout;
  const jsonl = flags.format === 'jsonl';
  let failed = 0;
  try {
    const images: object[] = [];
    for (const item of items) {
      const file = inputName(item);
      let entry: object;
      try {
        if (item.kind === 'missing') throw new Error(item.reason);
        const source = item.kind === 'stdin' ? await readStdin() : item.path;
        const features = await iqa.embedImage(source);
        entry = { file, dim: features.length, features: vector(features) };
      } catch (e) {
        failed++;
        const err = e as Error & { code?: string };
        entry = { file, error: { code: err.code ?? 'E_NOT_FOUND', message: err.message } };
        if (!flags.quiet) process.stderr.write(`clip-iqa: ${err.message}\n`);
      }
      if (jsonl) out.write(`${JSON.stringify(entry)}\n`);
      else images.push(entry);
    }
    const texts = flags.text.length > 0 ? await iqa.embedText(flags.text) : [];
    const textEntries = flags.text.map((text, i) => ({ text, features: vector(texts[i]!) }));
    if (jsonl) for (const t of textEntries) out.write(`${JSON.stringify(t)}\n`);
    else {
      const doc = { model: iqa.name, positional: flags.positional ?? 'none', dim: iqa.architecture.embedDim, images, texts: textEntries };
      out.write(`${JSON.stringify(doc)}\n`);
    }
  } finally {
    if (out !== process.stdout) await new Promise<void>((resolve) => (out as NodeJS.WritableStream).end(resolve));
    await iqa.dispose();
  }
  return failed > 0 ? 1 : 0;
}
