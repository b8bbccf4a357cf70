/**
 * Text from outside (file names, URLs, error messages that quote them) made safe to print on a terminal, and
 * measured as a terminal lays it out. A file named `a\x1b]0;owned\x07.jpg` or `a\nb.jpg` must not retitle the
 * window, move the cursor or forge a line of output: control characters are printed as visible escapes instead.
 */
import stringWidth from 'string-width';

// C0 controls, DEL and C1 controls (ESC, CSI, OSC, NEL, …), plus the Unicode line and paragraph separators and the
// bidirectional overrides that reorder what a terminal shows.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const escape = (c: string): string => {
  const code = c.codePointAt(0)!;
  if (c === '\n') return '\\n';
  if (c === '\r') return '\\r';
  if (c === '\t') return '\\t';
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
};

/** `text` with every control character shown as an escape (`\x1b`, `\n`), so that printing it does nothing but print. */
export const printable = (text: string): string => text.replace(UNSAFE, escape);

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
