/**
 * The table for people, fitted to the terminal. Rows are printed as images finish, so the layout is chosen once,
 * before the first row, from the input names and the score names:
 *
 *   wide      image  size  quality  sharpness …   columns as wide as their titles, four decimals
 *   compact   image  quali  sharp …               titles cut to five columns, three decimals, no size
 *   vertical  image  size                         one block per image: "name value" cells, as many a line as fit
 *             quality 0.8123  sharpness 0.4410
 *
 * the first that fits `columns` (the terminal's width; no limit when output is not a terminal). The image column
 * shrinks to fit, down to a minimum, cutting long paths at the start. Widths are measured as a terminal shows text
 * (string-width: East Asian wide characters take two columns). File names, score names and messages are printed
 * through `printable`, so control characters in them cannot act on the terminal.
 */
import stringWidth from 'string-width';
import type { Formatter, ImageRow, RunHeader } from './output.js';
import { printable } from './terminal.js';

/** Columns `text` takes on a terminal (wide East Asian characters count two, combining marks none). */
export const displayWidth = (text: string): number => stringWidth(text);

/** Pads with spaces to `width` columns, on the right (`end`) or the left (`start`). */
export function pad(text: string, width: number, side: 'start' | 'end' = 'end'): string {
  const fill = ' '.repeat(Math.max(0, width - displayWidth(text)));
  return side === 'end' ? text + fill : fill + text;
}

/** Cuts `text` to `width` columns with an ellipsis, keeping its start (`end`) or, for paths, its end (`start`). */
export function truncate(text: string, width: number, cut: 'start' | 'end' = 'end'): string {
  if (displayWidth(text) <= width) return text;
  if (width <= 1) return '…'.slice(0, width);
  const chars = [...text];
  let out = '';
  let used = 1;
  if (cut === 'end') {
    for (const c of chars) {
      const w = displayWidth(c);
      if (used + w > width) break;
      out += c;
      used += w;
    }
    return `${out}…`;
  }
  for (let i = chars.length - 1; i >= 0; i--) {
    const w = displayWidth(chars[i]!);
    if (used + w > width) break;
    out = chars[i]! + out;
    used += w;
  }
  return `…${out}`;
}

export type TableLayout = 'wide' | 'compact' | 'vertical';

export interface TableOptions {
  readonly color: boolean;
  /** Terminal width; undefined for no limit. */
  readonly columns: number | undefined;
  /** Input names, to size the image column. */
  readonly files: readonly string[];
}

const SIZE = 9; // "4032×3024"
const FILE_MIN = 16;
const COMPACT_CELL = 5;

interface Plan {
  readonly layout: TableLayout;
  readonly fileWidth: number;
  readonly cells: readonly number[];
  readonly titles: readonly string[];
  readonly digits: number;
  readonly gap: string;
}

/** Chooses the layout: the first of wide, compact and vertical whose lines fit `columns`. */
export function planTable(scoreNames: readonly string[], files: readonly string[], columns: number | undefined): Plan {
  const limit = columns ?? Infinity;
  const names = scoreNames.map(printable);
  const longest = Math.max(5, ...files.map((f) => displayWidth(printable(f))));
  const wideCells = names.map((n) => Math.max(6, displayWidth(n)));
  const wideRest = 2 + SIZE + wideCells.reduce((a, c) => a + 2 + c, 0);
  const fits = (rest: number) => Math.min(longest, FILE_MIN) + rest <= limit;
  if (fits(wideRest)) {
    return { layout: 'wide', fileWidth: Math.min(longest, limit - wideRest), cells: wideCells, titles: names, digits: 4, gap: '  ' };
  }
  const compactRest = names.length * (1 + COMPACT_CELL);
  if (fits(compactRest)) {
    const titles = names.map((n) => truncate(n, COMPACT_CELL));
    return { layout: 'compact', fileWidth: Math.min(longest, limit - compactRest), cells: names.map(() => COMPACT_CELL), titles, digits: 3, gap: ' ' };
  }
  return { layout: 'vertical', fileWidth: Math.min(longest, Math.max(FILE_MIN, limit - 2 - SIZE)), cells: [], titles: names, digits: 4, gap: '  ' };
}

export function tableFormatter(header: RunHeader, options: TableOptions): Formatter {
  const plan = planTable(header.names, options.files, options.columns);
  // Green for high, red for low: a glance tells which images stand out. Off for pipes and NO_COLOR.
  const paint = (v: number, text: string) => {
    if (!options.color) return text;
    const code = v >= 0.66 ? 32 : v <= 0.33 ? 31 : 0;
    return code ? `\x1b[${code}m${text}\x1b[0m` : text;
  };
  const file = (name: string) => pad(truncate(printable(name), plan.fileWidth, 'start'), plan.fileWidth);
  const failure = (r: Extract<ImageRow, { error: unknown }>) => `error: ${printable(r.error.message)}`;
  const value = (v: number | undefined, width: number) => {
    if (v === undefined) return ''.padStart(width);
    return paint(v, v.toFixed(plan.digits).padStart(width));
  };

  if (plan.layout === 'vertical') {
    const nameWidth = Math.min(20, Math.max(...plan.titles.map((n) => displayWidth(n)), 1));
    const cell = nameWidth + 1 + 6;
    // A line is two spaces of indent and n cells two spaces apart: n × (cell + 2) columns.
    const perLine = Math.max(1, Math.floor((options.columns ?? Infinity) / (cell + 2)));
    return {
      start: () => '',
      row(r) {
        const name = truncate(printable(r.file), Math.max(FILE_MIN, (options.columns ?? Infinity) - 2 - SIZE));
        if ('error' in r) return `${name}  ${failure(r)}\n`;
        const cells = header.names.map((n, i) => `${pad(truncate(plan.titles[i]!, nameWidth), nameWidth)} ${value(r.scores[n], 6)}`);
        const lines: string[] = [];
        for (let i = 0; i < cells.length; i += perLine) lines.push(`  ${cells.slice(i, i + perLine).join('  ')}`);
        return `${name}  ${r.width}×${r.height}\n${lines.join('\n')}\n`;
      },
      end: () => '',
    };
  }

  const withSize = plan.layout === 'wide';
  const head = () => {
    const titles = plan.titles.map((t, i) => pad(t, plan.cells[i]!, 'start'));
    return `${[pad('image', plan.fileWidth), ...(withSize ? [pad('size', SIZE, 'start')] : []), ...titles].join(plan.gap)}\n`;
  };
  return {
    start: head,
    row(r) {
      if ('error' in r) return `${[file(r.file), ...(withSize ? [pad('—', SIZE, 'start')] : [])].join(plan.gap)}${plan.gap}${failure(r)}\n`;
      const cells = header.names.map((n, i) => value(r.scores[n], plan.cells[i]!));
      return `${[file(r.file), ...(withSize ? [pad(`${r.width}×${r.height}`, SIZE, 'start')] : []), ...cells].join(plan.gap)}\n`;
    },
    end: () => '',
  };
}
