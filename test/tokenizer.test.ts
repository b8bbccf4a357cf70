import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { ClipIqaError } from '../src/errors.js';
import { cleanText, pythonHtmlUnescape } from '../src/text/clean.js';
import { CLIP_VOCAB_SIZE, Tokenizer } from '../src/text/tokenizer.js';
import { VOCAB, describeEachFixtureSet, fixture } from './helpers/shared.js';

interface TokenizerFixture {
  context_length: number;
  cases: { text: string; ids: number[] }[];
  too_long: { text: string; truncated_ids: number[] };
}
const readCases = (path: string): TokenizerFixture => JSON.parse(readFileSync(path, 'utf8')) as TokenizerFixture;
const FIX = readCases(fixture('tokenizer.json'));

let tok: Tokenizer;
beforeAll(async () => {
  tok = await Tokenizer.fromFile(VOCAB);
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof ClipIqaError ? e.code : `not a ClipIqaError: ${String(e)}`;
  }
  return undefined;
}

describeEachFixtureSet(({ path }) => {
  describe('CLIP tokenizer: fixture parity', () => {
    const FIX = readCases(path('tokenizer.json'));
    it('has the CLIP vocabulary layout', () => {
      expect(tok.vocabSize).toBe(CLIP_VOCAB_SIZE);
      expect(tok.vocabSize).toBe(49408);
      expect(tok.sot).toBe(49406);
      expect(tok.eot).toBe(49407);
      expect(tok.contextLength).toBe(FIX.context_length);
    });

    it.each(FIX.cases.map((c, i) => [i, c.text, c.ids] as const))('case %i %j', (_i, text, ids) => {
      expect(tok.tokenize(text)).toEqual(ids);
      expect(tok.encode(text)).toEqual(ids.filter((id) => id !== 0).slice(1, -1));
    });

    it('tokenizeAll gives the same rows', () => {
      expect(tok.tokenizeAll(FIX.cases.map((c) => c.text))).toEqual(FIX.cases.map((c) => c.ids));
    });

    it('rejects the over-long text, saying how long it is and the limit', () => {
      const n = tok.encode(FIX.too_long.text).length + 2;
      expect(n).toBeGreaterThan(77);
      expect(() => tok.tokenize(FIX.too_long.text)).toThrowError(new RegExp(`${n} tokens .*limit is 77`));
      expect(codeOf(() => tok.tokenizeAll(['Good photo.', FIX.too_long.text]))).toBe('E_TOKENIZER');
    });

    it('truncates the over-long text to the fixture row, last id EOT', () => {
      const row = tok.tokenize(FIX.too_long.text, { truncate: true });
      expect(row).toEqual(FIX.too_long.truncated_ids);
      expect(row).toHaveLength(77);
      expect(row[76]).toBe(49407);
    });

    it('honours another context length', () => {
      expect(tok.tokenize('Good photo.', { contextLength: 8 })).toEqual([49406, 886, 1125, 269, 49407, 0, 0, 0]);
      expect(tok.tokenize('Good photo.', { contextLength: 3, truncate: true })).toEqual([49406, 886, 49407]);
      expect(codeOf(() => tok.tokenize('x', { contextLength: 1 }))).toBe('E_OPTION');
      expect(codeOf(() => tok.tokenize('x', { contextLength: 7.5 }))).toBe('E_OPTION');
    });
  });
});

describe('CLIP tokenizer: Python edge cases', () => {
  // Ids computed with clipref.py's Tokenizer (Python 3.11, regex 2022.x, CPython html.unescape).
  const cases: [string, number[]][] = [
    // Python's \s has U+0085 and not U+FEFF; str.strip() also strips U+001C..U+001F.
    ['a\u0085b\ufeffc', [320, 321, 171, 119, 379, 322]],
    ['\u001cleading sep\u001f', [3833, 10434]],
    // U+0345 matches no branch of the case-insensitive pattern in Python: dropped.
    ['\u0345alone and x\u0345y', [4702, 537, 343, 344]],
    // Long s folds to s under IGNORECASE; <|ſtartoftext|> is matched but is not the special token.
    ["it'ſ <|ſtartoftext|> <|STARTOFTEXT|>", [585, 6, 129, 379, 27, 91, 129, 123, 2002, 6659, 18169, 91, 285, 49406]],
    [
      '&amp;amp; &ampx &notit; &#x81; &#1; &#128512; &#xD800; &acy1;',
      [261, 261, 343, 126, 361, 585, 282, 126, 479, 7334, 39802, 261, 2356, 272, 282],
    ],
    [
      'ΣΑΣ ὈΔΥΣΣΕΎΣ',
      [139, 225, 138, 109, 139, 480, 157, 121, 222, 138, 112, 139, 227, 139, 225, 139, 225, 138, 113, 139, 235, 139, 480],
    ],
    ['İstanbul straße ﬁne', [328, 16384, 11231, 1894, 127, 253, 324, 171, 105, 223, 1422]],
    ['cafe\u0301 vs café', [15304, 1547, 15304]],
    ['tab\u00a0nbsp\u3000ideo\u2028ls', [14724, 6459, 4393, 1909, 334, 1268]],
    ['100% 1½ ٣ ²', [272, 271, 271, 260, 272, 33613, 149, 352, 41175]],
    ['a\u200bb zero width', [320, 9844, 321, 5848, 23571]],
    ['don’t “smart” quotes', [847, 728, 503, 339, 728, 506, 4115, 728, 507, 5808]],
  ];
  it.each(cases)('%j', (text, ids) => {
    expect(tok.encode(text)).toEqual(ids);
  });

  it('unescapes HTML as Python html.unescape does', () => {
    const pairs: [string, string][] = [
      ['&amp;lt;', '&lt;'],
      ['&ampx', '&x'],
      ['&notit;', '¬it;'],
      ['&notin;', '∉'],
      ['&acy1;', '&acy1;'],
      ['&pm1;', '&pm1;'],
      ['&#x81;', '\u0081'],
      ['&#1;x', 'x'],
      ['&#0;', '\ufffd'],
      ['&#128;', '€'],
      ['&#xD800;', '\ufffd'],
      ['&#99999999999999;', '\ufffd'],
      ['&#x1F600', '😀'],
      ['&#39single&#39;', "'single'"],
      ['&constructor;', '&constructor;'],
      ['&CounterClockwiseContourIntegral;', '∳'],
      ['a & b', 'a & b'],
    ];
    for (const [input, out] of pairs) expect([input, pythonHtmlUnescape(input)]).toEqual([input, out]);
    expect(cleanText('  &amp;AMP;  Two\t\tWords  ')).toBe('& two words');
  });
});

describe('CLIP tokenizer: vocabulary file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'clip-iqa-tok-'));
  const raw = gunzipSync(readFileSync(VOCAB));

  it('loads the gzip file and accepts an unpacked one', async () => {
    // Load time is a benchmark figure (printed), not an assertion: a shared machine makes timings flaky.
    const t0 = performance.now();
    const tok = await Tokenizer.fromFile(VOCAB);
    console.log(`vocabulary load: ${(performance.now() - t0).toFixed(1)} ms`);
    expect(tok.tokenize('Good photo.')).toEqual(FIX.cases[0]!.ids);
    const plain = Tokenizer.fromBytes(raw, 'plain.txt');
    expect(plain.tokenize('Good photo.')).toEqual(FIX.cases[0]!.ids);
  });

  it('reports a missing file as E_NOT_FOUND, naming it', async () => {
    const path = join(dir, 'nope', 'bpe_simple_vocab_16e6.txt.gz');
    await expect(Tokenizer.fromFile(path)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await expect(Tokenizer.fromFile(path)).rejects.toThrowError(/not found: .*nope.*bpe_simple_vocab_16e6/);
  });

  it('reports a directory, corrupt gzip, truncated or foreign file as E_TOKENIZER, naming it', async () => {
    await expect(Tokenizer.fromFile(dir)).rejects.toMatchObject({ code: 'E_TOKENIZER' });
    const gz = readFileSync(VOCAB);
    const corrupt = join(dir, 'corrupt.gz');
    writeFileSync(corrupt, gz.subarray(0, gz.length >> 1));
    await expect(Tokenizer.fromFile(corrupt)).rejects.toThrowError(/corrupt\.gz is not a usable CLIP BPE vocabulary: gzip/);
    const short = join(dir, 'short.txt.gz');
    writeFileSync(short, gzipSync(raw.subarray(0, 10_000)));
    await expect(Tokenizer.fromFile(short)).rejects.toThrowError(/short\.txt\.gz .*ends at line \d+, CLIP reads 48894 merge lines/);
    const binary = Uint8Array.from(raw);
    binary[20] = 0xff;
    expect(() => Tokenizer.fromBytes(binary, 'bin')).toThrowError(/bin .*not UTF-8/);
    expect(() => Tokenizer.fromBytes(new Uint8Array(0), 'empty')).toThrowError(/empty .*ends at line 1/);
    const foreign = Buffer.from('#version\n' + 'a b c\n'.repeat(49000));
    expect(() => Tokenizer.fromBytes(foreign, 'foreign.txt')).toThrowError(/foreign\.txt .*line 2 is not a merge/);
  });
});
