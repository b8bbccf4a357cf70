/**
 * CLIP's byte-level BPE tokenizer, id for id the reference's (clipref.py `Tokenizer`, itself equal to
 * OpenAI's `simple_tokenizer` on well-formed text; the published one runs ftfy first, we stand in NFC).
 *
 * Vocabulary (49408 ids): the 256 byte symbols, the same with `</w>`, the 48894 merges of
 * `bpe_simple_vocab_16e6.txt.gz` (lines 1..48894, line 0 is a version header, the rest of the file is
 * unused), then `<|startoftext|>` 49406 and `<|endoftext|>` 49407.
 */
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { ClipIqaError, errCode } from '../errors.js';
import { formatBytes, readRegularFile } from '../util/read-file.js';
import { PY_WHITESPACE, cleanText } from './clean.js';

const SOT_TEXT = '<|startoftext|>';
const EOT_TEXT = '<|endoftext|>';
/** The vocabulary layout is fixed by CLIP's code, not by the file: 49152 - 256 - 2 merges are read. */
const MERGE_COUNT = 49152 - 256 - 2;
export const CLIP_VOCAB_SIZE = 256 * 2 + MERGE_COUNT + 2;
export const DEFAULT_CONTEXT_LENGTH = 77;
/**
 * The vocabulary file, and its text once unpacked, may take this much: the real file is 1.3 MB (3.2 MB unpacked)
 * and CLIP reads only its first 48895 lines; a gzip bomb would otherwise inflate to gigabytes.
 */
/** SHA-256 of the published `bpe_simple_vocab_16e6.txt.gz`. */
export const CLIP_VOCAB_SHA256 = '924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a';
export const MAX_VOCAB_BYTES = 16 * 1024 * 1024;
/** The word cache is bounded so that a long-running server fed arbitrary text does not grow without end. */
const CACHE_LIMIT = 100_000;

/**
 * The reference pattern, with `regex.IGNORECASE` spelled out: the text is already lower-cased, and the
 * only case folds that still matter are long s (U+017F folds to `s`) in `'s` and `<|startoftext|>`, and
 * U+0345, which Python's case-insensitive classes match neither as a letter nor as "other" (it is
 * dropped), where JavaScript's `iu` would count it a letter. `\s` is Python's, not JavaScript's.
 */
const PATTERN = new RegExp(
  "<\\|[sſ]tartoftext\\|>|<\\|endoftext\\|>|'[sſ]|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|" +
    `[^${PY_WHITESPACE}\\p{L}\\p{N}\\u0345]+`,
  'gu',
);

/** GPT-2's reversible byte → printable-character table. */
function byteAlphabet(): string[] {
  const table = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return table;
}

/** Byte symbols in the reference's vocabulary order: printable bytes first, then the remapped ones. */
function byteSymbolsInVocabOrder(table: readonly string[]): string[] {
  const printable: string[] = [];
  const rest: string[] = [];
  for (let b = 0; b < 256; b++) (table[b]!.charCodeAt(0) === b ? printable : rest).push(table[b]!);
  return [...printable, ...rest];
}

export interface TokenizeOptions {
  /** Row length, SOT and EOT included (default: the tokenizer's, 77 for CLIP). */
  readonly contextLength?: number;
  /** Cut an over-long text to the row, last id EOT, instead of failing (default false, as CLIP). */
  readonly truncate?: boolean;
}

export interface TokenizerOptions {
  /** Default row length for `tokenize` (77 for every published CLIP). */
  readonly contextLength?: number;
}

export class Tokenizer {
  /** Id of `<|startoftext|>` (49406). */
  readonly sot: number;
  /** Id of `<|endoftext|>` (49407), the largest id, which CLIP's text tower pools at. */
  readonly eot: number;
  readonly vocabSize: number;
  readonly contextLength: number;

  /** SHA-256 (hex) of the vocabulary file's bytes as given (gzipped or not). */
  readonly digest: string;

  #ids: Map<string, number> | undefined;
  /** Merge ranks keyed by the merge line `left right`; symbols never hold a space (it is byte-mapped to `Ġ`). */
  #ranks: Map<string, number> | undefined;
  #merges: readonly string[] | (() => readonly string[]);
  private readonly byteChars: readonly string[];
  private readonly cache = new Map<string, readonly number[]>();
  private readonly utf8 = new TextEncoder();

  /**
   * `merges` may be a function that parses them on first use: for the published vocabulary (known by its SHA-256),
   * whose ids are known, so that a run whose prompts are all memoised never parses 49k merge lines.
   */
  private constructor(merges: readonly string[] | (() => readonly string[]), options: TokenizerOptions, digest: string) {
    this.byteChars = byteAlphabet();
    this.#merges = merges;
    this.digest = digest;
    if (typeof merges === 'function') {
      this.sot = CLIP_VOCAB_SIZE - 2;
      this.eot = CLIP_VOCAB_SIZE - 1;
      this.vocabSize = CLIP_VOCAB_SIZE;
    } else {
      this.#build();
      this.sot = this.#ids!.get(SOT_TEXT)!;
      this.eot = this.#ids!.get(EOT_TEXT)!;
      this.vocabSize = 256 * 2 + merges.length + 2;
    }
    this.contextLength = checkContextLength(options.contextLength ?? DEFAULT_CONTEXT_LENGTH);
  }

  #build(): void {
    if (typeof this.#merges === 'function') this.#merges = this.#merges();
    const merges = this.#merges;
    const symbols = byteSymbolsInVocabOrder(this.byteChars);
    const vocab = [...symbols, ...symbols.map((s) => s + '</w>'), ...merges.map((m) => m.replace(' ', '')), SOT_TEXT, EOT_TEXT];
    // Later duplicates overwrite earlier ones, as in the reference's dict comprehension.
    this.#ids = new Map();
    vocab.forEach((tok, i) => this.#ids!.set(tok, i));
    this.#ranks = new Map();
    merges.forEach((m, i) => this.#ranks!.set(m, i));
  }

  private get ids(): Map<string, number> {
    if (!this.#ids) this.#build();
    return this.#ids!;
  }

  private get ranks(): Map<string, number> {
    if (!this.#ranks) this.#build();
    return this.#ranks!;
  }

  /**
   * Reads `bpe_simple_vocab_16e6.txt.gz` (gzip or already unpacked).
   * Missing → E_NOT_FOUND; unreadable or not a CLIP vocabulary → E_TOKENIZER.
   */
  static async fromFile(path: string, options: TokenizerOptions = {}): Promise<Tokenizer> {
    let bytes: Uint8Array;
    try {
      bytes = await readRegularFile(path, {
        maxBytes: MAX_VOCAB_BYTES,
        code: 'E_TOKENIZER',
        what: 'the CLIP BPE vocabulary (bpe_simple_vocab_16e6.txt.gz)',
        raise: 'it is not a CLIP vocabulary',
      });
    } catch (e) {
      if (e instanceof ClipIqaError) throw e;
      const code = errCode(e);
      if (code === 'ENOENT') {
        throw new ClipIqaError(
          'E_NOT_FOUND',
          `CLIP BPE vocabulary not found: ${path}. It is bpe_simple_vocab_16e6.txt.gz, downloaded with the model; ` +
            'fetch the model again or pass the path of that file.',
          { cause: e },
        );
      }
      throw new ClipIqaError('E_TOKENIZER', `Cannot read the CLIP BPE vocabulary ${path}: ${(e as Error).message}.`, {
        cause: e,
      });
    }
    return Tokenizer.fromBytes(bytes, path, options);
  }

  /** Builds the tokenizer from the vocabulary file's bytes; `source` names it in errors. */
  static fromBytes(bytes: Uint8Array, source = '<vocabulary bytes>', options: TokenizerOptions = {}): Tokenizer {
    const digest = createHash('sha256').update(bytes).digest('hex');
    // The published vocabulary is known good: its merges are parsed when first needed (a copy, as the caller may reuse
    // the buffer).
    if (digest === CLIP_VOCAB_SHA256) {
      const copy = Uint8Array.from(bytes);
      return new Tokenizer(() => parseMerges(copy, source), options, digest);
    }
    return new Tokenizer(parseMerges(bytes, source), options, digest);
  }

  /** BPE ids of the text, without SOT/EOT. */
  encode(text: string): number[] {
    const out: number[] = [];
    for (const match of cleanText(text).matchAll(PATTERN)) {
      const piece = match[0];
      if (piece === SOT_TEXT || piece === EOT_TEXT) {
        // The reference's BPE passes these two through whole; `<|ſtartoftext|>` is not one of them.
        out.push(piece === SOT_TEXT ? this.sot : this.eot);
        continue;
      }
      for (const id of this.wordIds(piece)) out.push(id);
    }
    return out;
  }

  /**
   * The text as one model row: SOT, ids, EOT, zero padding to `contextLength`. A text that does not fit
   * is an E_TOKENIZER error unless `truncate` is set.
   */
  tokenize(text: string, options: TokenizeOptions = {}): number[] {
    const contextLength = checkContextLength(options.contextLength ?? this.contextLength);
    const ids = [this.sot, ...this.encode(text), this.eot];
    if (ids.length > contextLength) {
      if (!options.truncate) {
        const shown = text.length > 80 ? `${text.slice(0, 77)}...` : text;
        throw new ClipIqaError(
          'E_TOKENIZER',
          `Text is too long for CLIP: ${ids.length} tokens with start and end markers, the limit is ${contextLength}: ` +
            `${JSON.stringify(shown)}. Shorten it or allow truncation.`,
        );
      }
      ids.length = contextLength;
      ids[contextLength - 1] = this.eot;
    }
    const row = new Array<number>(contextLength).fill(0);
    for (let i = 0; i < ids.length; i++) row[i] = ids[i]!;
    return row;
  }

  tokenizeAll(texts: readonly string[], options: TokenizeOptions = {}): number[][] {
    return texts.map((t) => this.tokenize(t, options));
  }

  /** One pre-token (a regex match) → ids, through the byte alphabet and BPE, cached. */
  private wordIds(piece: string): readonly number[] {
    const cached = this.cache.get(piece);
    if (cached) return cached;
    let word = '';
    for (const b of this.utf8.encode(piece)) word += this.byteChars[b];
    const ids = this.bpe(word).map((tok) => this.ids.get(tok)!);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(piece, ids);
    return ids;
  }

  /** Repeatedly merge the lowest-ranked adjacent pair, every occurrence left to right (as the reference). */
  private bpe(word: string): string[] {
    const chars = Array.from(word);
    let parts = [...chars.slice(0, -1), chars[chars.length - 1] + '</w>'];
    while (parts.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < parts.length - 1; i++) {
        const rank = this.ranks.get(parts[i] + ' ' + parts[i + 1]);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      const left = parts[best]!;
      const right = parts[best + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < parts.length; ) {
        if (i < parts.length - 1 && parts[i] === left && parts[i + 1] === right) {
          merged.push(left + right);
          i += 2;
        } else {
          merged.push(parts[i]!);
          i += 1;
        }
      }
      parts = merged;
    }
    return parts;
  }
}

function checkContextLength(n: number): number {
  if (!Number.isInteger(n) || n < 2) {
    throw new ClipIqaError('E_OPTION', `contextLength must be an integer of at least 2 (start and end markers), got ${n}.`);
  }
  return n;
}

/** The first MERGE_COUNT merge lines of a vocabulary file, checked. */
function parseMerges(bytes: Uint8Array, source: string): string[] {
  const fail = (what: string, cause?: unknown): ClipIqaError =>
    new ClipIqaError(
      'E_TOKENIZER',
      `${source} is not a usable CLIP BPE vocabulary: ${what}. Expected bpe_simple_vocab_16e6.txt.gz ` +
        '(sha256 924691ac…6804a); download it again with the model.',
      cause === undefined ? undefined : { cause },
    );
  let raw = bytes;
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      raw = gunzipSync(bytes, { maxOutputLength: MAX_VOCAB_BYTES });
    } catch (e) {
      if (errCode(e) === 'ERR_BUFFER_TOO_LARGE') throw fail(`it inflates to more than ${formatBytes(MAX_VOCAB_BYTES)} (the real one is 3.2 MB)`, e);
      throw fail(`gzip data is corrupt (${(e as Error).message})`, e);
    }
  }
  // The file holds ~262k merges and CLIP uses the first 48894: decode and split only those lines.
  let end = 0;
  for (let line = 0; line <= MERGE_COUNT; line++) {
    const nl = raw.indexOf(0x0a, end);
    if (nl < 0) {
      if (line === MERGE_COUNT && end < raw.length) end = raw.length; // last needed line, no newline after it
      else throw fail(`it ends at line ${line + 1}, CLIP reads ${MERGE_COUNT} merge lines after the header`);
      break;
    }
    end = nl + 1;
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw.subarray(0, end));
  } catch (e) {
    throw fail('it is not UTF-8 text', e);
  }
  const lines = text.split('\n', MERGE_COUNT + 1);
  lines.shift(); // "#version: 0.2"
  const region = lines.join('\n');
  // One scan instead of a test per line: merge halves are byte-alphabet strings (`</w>` is made of them too).
  const stray = /[^!-~¡-¬®-ÿĀ-Ń \r\n]/u.exec(region);
  if (stray) {
    const at = region.slice(0, stray.index).split('\n').length + 1;
    throw fail(`line ${at} holds ${JSON.stringify(stray[0])}, which is not a byte symbol`);
  }
  const merges: string[] = new Array(MERGE_COUNT);
  for (let i = 0; i < MERGE_COUNT; i++) {
    let line = lines[i]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const sp = line.indexOf(' ');
    if (sp <= 0 || sp === line.length - 1 || line.indexOf(' ', sp + 1) >= 0) {
      throw fail(`line ${i + 2} is not a merge of two byte-symbol strings: ${JSON.stringify(line.slice(0, 60))}`);
    }
    merges[i] = line;
  }
  return merges;
}
