import type { Command } from 'commander';
import { ATTRIBUTES, ATTRIBUTE_SETS, ENSEMBLE, ENSEMBLE_PAIRS, findAttribute, higherBetter, type NoisinessPolarity } from '../iqa/prompts.js';
import { PLUS } from '../iqa/plus.js';

/** `clip-iqa prompts`: the built-in prompt sets with their polarity, so a score's direction is never a guess. */
export function promptsCommand(program: Command): Command {
  return program
    .command('prompts')
    .description('list the built-in attributes, their antonym prompts and what a high score means')
    .option('--json', 'machine-readable output')
    .option('--noisiness <polarity>', 'show noisiness as noisy (official) or clean (torchmetrics)', 'noisy')
    .action((flags: { json?: boolean; noisiness: NoisinessPolarity }) => {
      const attributes = ATTRIBUTES.map((a) => findAttribute(a.name, flags.noisiness)!);
      if (flags.json) {
        const doc = {
          attributes: attributes.map((a) => ({ name: a.name, group: a.group, positive: a.positive, negative: a.negative, high: a.high, low: a.low, higher_better: higherBetter(a) })),
          sets: ATTRIBUTE_SETS,
          ensemble: ENSEMBLE_PAIRS.map((p) => ({ positive: p.positive, negative: p.negative })),
          // Every score's direction, by name, as the score outputs give it (custom pairs: higher = more like the first prompt).
          higher_better: { ...Object.fromEntries(attributes.map((a) => [a.name, higherBetter(a)])), [ENSEMBLE]: true, [PLUS]: true },
        };
        process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
        return;
      }
      const lines: string[] = [];
      for (const group of ['look', 'feel', 'extra'] as const) {
        lines.push(`${group === 'extra' ? 'extra (appendix / torchmetrics)' : group}:`);
        for (const a of attributes.filter((x) => x.group === group)) {
          lines.push(`  ${a.name.padEnd(13)} "${a.positive}" vs "${a.negative}"`.padEnd(70) + `  1 = ${a.high}, 0 = ${a.low}`);
        }
      }
      lines.push('ensemble (pyiqa clipiqa, mean of five pairs):');
      for (const p of ENSEMBLE_PAIRS) lines.push(`  "${p.positive}" vs "${p.negative}"`);
      lines.push('', `sets: ${Object.entries(ATTRIBUTE_SETS).map(([k, v]) => `${k} (${v.length})`).join(', ')}; default: paper`);
      lines.push('your own: -p "name=positive|negative"; scores are the probability of the positive prompt.');
      lines.push('higher is better for every score but noisiness (official polarity: 1 = noisy); for the feel attributes, higher is more of it.');
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
