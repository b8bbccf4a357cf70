import type { Command } from 'commander';
import { describeArchitecture } from '../weights/architecture.js';
import { cachePath, formatBytes, hfCacheRoot, listModels, pullModel, removeModel, verifyCache } from '../hub/index.js';
import { GRAPH_CACHE_ENV, GraphCache } from '../model/graph-cache.js';
import { type ModelFlags, hubOptions } from './model-options.js';

interface HubFlags extends Pick<ModelFlags, 'cacheDir' | 'offline' | 'mirror' | 'quiet'> {
  json?: boolean;
  force?: boolean;
}

const hubFlags = (cmd: Command): Command =>
  cmd
    .option('--cache-dir <dir>', 'model cache (default: $CLIP_IQA_HOME or the platform cache directory)')
    .option('--offline', 'never use the network')
    .option('--mirror <url>', 'fetch registry files from this base URL or directory instead')
    .option('-q, --quiet', 'no progress bar')
    .option('--json', 'machine-readable output');

/** `clip-iqa models [list|pull|verify|rm|path]`: what the registry knows and what the cache holds. */
export function modelsCommand(program: Command): Command {
  const models = program.command('models').description('list, download, verify and remove models, vocabularies and CLIP-IQA+ contexts');

  hubFlags(models.command('list', { isDefault: true }).description('registry entries with their sources, what is cached and how it was verified')).action(
    async (flags: HubFlags) => {
      const items = await listModels(hubOptions(flags));
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(items.map(({ entry, ...rest }) => ({ ...rest, description: entry?.description ?? null })), null, 2)}\n`);
        return;
      }
      const rows = items.map((i) => {
        const size = i.cached ? formatBytes(i.sizeBytes ?? 0) : i.expectedSizeBytes ? `${i.sizeApproximate ? '~' : ''}${formatBytes(i.expectedSizeBytes)}` : '?';
        const what = i.entry?.kind === 'model' ? describeArchitecture(i.entry.architecture) : (i.entry?.description ?? i.fileName);
        const state = i.cached ? 'cached' : i.partialBytes > 0 ? `partial ${formatBytes(i.partialBytes)}` : '-';
        // The huggingface_hub cache is looked in for every hub copy (the footer says so); commits shortened to 12 digits.
        const sources = i.sources.filter((x) => !x.startsWith('the huggingface_hub cache')).map((x) => x.replace(/\b([0-9a-f]{12})[0-9a-f]{28}(?:[0-9a-f]{24})?\b/g, '$1…'));
        return { cells: [i.name, i.kind ?? i.source, state, size, i.verified ?? '-', what], sources };
      });
      const head = ['name', 'kind', 'cache', 'size', 'verified', 'what'];
      const widths = [0, 1, 2, 3, 4].map((c) => Math.max(...rows.map((r) => r.cells[c]!.length), head[c]!.length));
      const line = (cells: string[]) => `${cells.map((cell, c) => (c < 5 ? cell.padEnd(widths[c]!) : cell)).join('  ')}\n`;
      process.stdout.write(line(head));
      for (const r of rows) process.stdout.write(`${line(r.cells)}  sources: ${r.sources.join(' → ')}\n`);
      process.stdout.write(
        `\ncache: ${cachePath(hubOptions(flags))}   (default model RN50; pull one with: clip-iqa models pull NAME, or any hub model: hf:ORG/NAME)\n` +
          `Hub copies already in the huggingface_hub cache (${hfCacheRoot()}) are used where they lie.\n`,
      );
    },
  );

  hubFlags(models.command('pull').description('download into the cache (verified)').argument('<names...>').option('--force', 'download again even if cached')).action(
    async (names: string[], flags: HubFlags) => {
      for (const name of names) {
        const r = await pullModel(name, { ...hubOptions(flags), force: flags.force });
        process.stdout.write(
          flags.json
            ? `${JSON.stringify({ name, path: r.path, config: r.config, sha256: r.sha256, verification: r.verification, repo: r.repo, downloaded: r.downloaded })}\n`
            : `${name}: ${r.path}${r.downloaded ? '' : ' (already cached)'}\n`,
        );
      }
    },
  );

  hubFlags(models.command('verify').description('re-hash cached files against their checksums').argument('[names...]')).action(async (names: string[], flags: HubFlags) => {
    const results = await verifyCache({ ...hubOptions(flags), names });
    if (flags.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    else for (const r of results) process.stdout.write(`${r.status.padEnd(10)} ${r.name}  ${r.message}\n`);
    process.exitCode = results.some((r) => r.status === 'corrupt') ? 1 : 0;
  });

  hubFlags(models.command('rm').description('remove cached files').argument('<names...>')).action(async (names: string[], flags: HubFlags) => {
    for (const name of names) {
      const removed = await removeModel(name, hubOptions(flags));
      process.stdout.write(flags.json ? `${JSON.stringify({ name, removed })}\n` : removed.length ? `${name}: removed ${removed.join(', ')}\n` : `${name}: not cached\n`);
    }
  });

  hubFlags(
    models
      .command('built')
      .description('optimised graphs and checkpoint summaries kept for fast starts (see CLIP_IQA_GRAPH_CACHE_MB); --clear removes them')
      .option('--clear', 'remove them all (they are built again when next needed)'),
  ).action(async (flags: HubFlags & { clear?: boolean }) => {
    const cache = new GraphCache(cachePath(hubOptions(flags)));
    if (flags.clear) {
      const { entries, bytes } = await cache.clear();
      process.stdout.write(flags.json ? `${JSON.stringify({ cleared: entries, bytes })}\n` : `removed ${entries} built ${entries === 1 ? 'entry' : 'entries'} (${formatBytes(bytes)}) from ${cache.dir}\n`);
      return;
    }
    const entries = await cache.list();
    if (flags.json) {
      process.stdout.write(`${JSON.stringify({ dir: cache.dir, maxBytes: cache.maxBytes, entries: entries.map((e) => ({ ...e, lastUsed: e.lastUsed.toISOString() })) }, null, 2)}\n`);
      return;
    }
    const total = entries.reduce((a, e) => a + e.bytes, 0);
    const rows = entries.map((e) => [e.key.slice(0, 12), e.kind, e.what, formatBytes(e.bytes), e.lastUsed.toISOString().slice(0, 16).replace('T', ' '), e.model]);
    const head = ['key', 'kind', 'what', 'size', 'last used', 'model'];
    const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
    for (const r of [head, ...rows]) process.stdout.write(`${r.map((cell, c) => (c < r.length - 1 ? cell.padEnd(widths[c]!) : cell)).join('  ')}\n`);
    process.stdout.write(
      `\n${entries.length} ${entries.length === 1 ? 'entry' : 'entries'}, ${formatBytes(total)} of ${cache.enabled ? formatBytes(cache.maxBytes) : 'a cache turned off'} (${GRAPH_CACHE_ENV}) in ${cache.dir}\n`,
    );
  });

  hubFlags(models.command('path').description('print the cache directory')).action((flags: HubFlags) => {
    process.stdout.write(`${cachePath(hubOptions(flags))}\n`);
  });
  return models;
}
