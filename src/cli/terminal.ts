/**
 * Text from outside (file names, URLs, error messages that quote them) made safe to print on a terminal. A file
 * named `a\x1b]0;owned\x07.jpg` or `a\nb.jpg` must not retitle the window, move the cursor or forge a line of
 * output: control characters are printed as visible escapes instead.
 */

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
