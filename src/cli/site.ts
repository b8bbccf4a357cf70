import type { Command } from 'commander';
import { formatBytes } from '../util/read-file.js';
import { writeSite } from '../server/site.js';
import { type ModelFlags, addModelOptions, clipIqaOptions } from './model-options.js';

/** `clip-iqa site OUT_DIR`: the web page as a static site that scores in the visitor's browser. */
export function siteCommand(program: Command): Command {
  const cmd = program
    .command('site')
    .description('write the web page as a static site that scores in the browser (page, browser build, model, vocabulary): no server code, nothing uploaded')
    .argument('<out-dir>', 'folder to write (created; its v1/ and assets/browser/ are replaced)');
  addModelOptions(cmd);
  cmd.action(async (outDir: string, flags: ModelFlags) => {
    const site = await writeSite(outDir, clipIqaOptions(flags));
    process.stderr.write(
      `clip-iqa: wrote ${site.files.length} files (${formatBytes(site.bytes)}) to ${site.dir}; serve it from any static host ` +
        '(.wasm as application/wasm; COOP/COEP headers, as in its _headers file, give WASM threads).\n',
    );
  });
  return cmd;
}
