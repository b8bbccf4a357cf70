/**
 * Text cleaning exactly as the CLIP reference does it (clipref.py `Tokenizer.clean`):
 *
 *   NFC → html.unescape twice → str.strip() → regex.sub(r"\s+", " ") → str.strip() → str.lower()
 *
 * Every step has a Python definition that differs from the obvious JavaScript one somewhere, and a
 * difference changes token ids, so each is written out here rather than borrowed:
 * - `regex`'s `\s` is Unicode White_Space (has U+0085, lacks U+FEFF); JavaScript's `\s` is the reverse.
 * - `str.strip()` uses `str.isspace()`, which is White_Space plus U+001C..U+001F.
 * - `html.unescape` decodes numeric references to "invalid code points" (U+0001 etc.) to nothing and
 *   takes the longest legacy entity prefix of an unknown name (`&ampx` → `&x`); the `entities` package
 *   differs on the first and, in 7.0.1, mis-decodes some unknown names (`&acy1;` → "Ă"), so the whole of
 *   `html.unescape` is ported here over CPython's own entity table.
 * - `str.lower()` and `String.prototype.toLowerCase()` agree (both full mappings, both handle final sigma).
 */
import { HTML5_ENTITIES, LEGACY_ENTITY_NAMES } from './html-entities.js';

/** Python `regex` `\s` (Unicode White_Space), as a character-class body. */
export const PY_WHITESPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
/** Python `str.isspace()`: White_Space plus the four information separators. */
const PY_ISSPACE = PY_WHITESPACE + '\\u001c-\\u001f';

const WHITESPACE_RUN = new RegExp(`[${PY_WHITESPACE}]+`, 'gu');
const STRIP = new RegExp(`^[${PY_ISSPACE}]+|[${PY_ISSPACE}]+$`, 'gu');

/** CPython `html._charref`. `u` so that `{1,32}` counts code points as Python does. */
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

/**
 * CPython `html._invalid_charrefs`: NUL, CR and the Windows-1252 reading of C1 references. The identity
 * entries matter: they win over the invalid-code-point rule below, so `&#x81;` is U+0081, not nothing.
 */
const INVALID_CHARREFS = new Map<number, number>([
  [0x00, 0xfffd],
  [0x0d, 0x0d],
  [0x81, 0x81],
  [0x8d, 0x8d],
  [0x8f, 0x8f],
  [0x90, 0x90],
  [0x9d, 0x9d],
  [0x80, 0x20ac],
  [0x82, 0x201a],
  [0x83, 0x0192],
  [0x84, 0x201e],
  [0x85, 0x2026],
  [0x86, 0x2020],
  [0x87, 0x2021],
  [0x88, 0x02c6],
  [0x89, 0x2030],
  [0x8a, 0x0160],
  [0x8b, 0x2039],
  [0x8c, 0x0152],
  [0x8e, 0x017d],
  [0x91, 0x2018],
  [0x92, 0x2019],
  [0x93, 0x201c],
  [0x94, 0x201d],
  [0x95, 0x2022],
  [0x96, 0x2013],
  [0x97, 0x2014],
  [0x98, 0x02dc],
  [0x99, 0x2122],
  [0x9a, 0x0161],
  [0x9b, 0x203a],
  [0x9c, 0x0153],
  [0x9e, 0x017e],
  [0x9f, 0x0178],
]);

/** CPython `html._invalid_codepoints` (after the C1 table above, which takes precedence). */
function isInvalidCodePoint(cp: number): boolean {
  return (
    (cp >= 0x01 && cp <= 0x08) ||
    cp === 0x0b ||
    (cp >= 0x0e && cp <= 0x1f) ||
    (cp >= 0x7f && cp <= 0x9f) ||
    (cp >= 0xfdd0 && cp <= 0xfdef) ||
    (cp & 0xfffe) === 0xfffe // U+xFFFE and U+xFFFF in every plane
  );
}

function numericCharref(body: string): string {
  const hex = body[1] === 'x' || body[1] === 'X';
  const digits = body.slice(hex ? 2 : 1).replace(/;$/, '');
  // Python's int() has no overflow; anything past U+10FFFF becomes U+FFFD, so a long digit run
  // only needs to be known as "too large", not parsed exactly.
  const cp = digits.replace(/^0+/, '').length > 8 ? Infinity : parseInt(digits, hex ? 16 : 10);
  const replaced = INVALID_CHARREFS.get(cp);
  if (replaced !== undefined) return String.fromCodePoint(replaced);
  if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return '\ufffd';
  if (isInvalidCodePoint(cp)) return '';
  return String.fromCodePoint(cp);
}

/**
 * CPython `html._replace_charref` for a name: `name;` if it is an entity, else the longest legacy
 * (semicolon-less) entity name that prefixes it, the rest kept; else the text unchanged.
 */
function namedCharref(body: string): string {
  const terminated = body.endsWith(';');
  const name = terminated ? body.slice(0, -1) : body;
  if (terminated) {
    const value = HTML5_ENTITIES.get(name);
    if (value !== undefined) return value;
  }
  // Legacy names are ASCII, so UTF-16 prefixes here are the code-point prefixes Python takes.
  for (let x = name.length; x >= 2; x--) {
    const prefix = name.slice(0, x);
    if (LEGACY_ENTITY_NAMES.has(prefix)) return HTML5_ENTITIES.get(prefix)! + body.slice(x);
  }
  return '&' + body;
}

/** Python's `html.unescape` (HTML5 rules for valid and invalid references). */
export function pythonHtmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF, (_whole: string, body: string) =>
    body.startsWith('#') ? numericCharref(body) : namedCharref(body),
  );
}

/** clipref.py `Tokenizer.clean`: the text the BPE sees. */
export function cleanText(text: string): string {
  let t = text.normalize('NFC');
  t = pythonHtmlUnescape(pythonHtmlUnescape(t)).replace(STRIP, '');
  return t.replace(WHITESPACE_RUN, ' ').replace(STRIP, '').toLowerCase();
}
