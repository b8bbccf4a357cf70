/** The table fitted to the terminal (fake widths), and text from outside made safe to print. */
import { describe, expect, it } from 'vitest';
import { type ImageRow, type RunHeader, csvCell } from '../src/cli/output.js';
import { displayWidth, planTable, tableFormatter } from '../src/cli/table.js';
import { printable } from '../src/cli/terminal.js';
import { DEFAULT_ATTRIBUTES } from '../src/iqa/prompts.js';

const names = [...DEFAULT_ATTRIBUTES];
const header: RunHeader = { model: 'RN50', positional: 'none', prompts: {}, names };
const files = ['photos/holiday/2023/IMG_0001.jpg', 'photos/b.png'];
const row = (file: string): ImageRow => ({ file, width: 4032, height: 3024, scores: Object.fromEntries(names.map((n, i) => [n, i / 12])) });

function render(columns: number | undefined, rows: ImageRow[] = files.map(row)): string {
  const f = tableFormatter(header, { color: false, columns, files: rows.map((r) => r.file) });
  return f.start() + rows.map((r) => f.row(r)).join('') + f.end({ images: 0, scored: 0, failed: 0, skipped: 0, skipped_files: [], seconds: 0, mean: {} });
}

const widest = (text: string) => Math.max(...text.split('\n').map(displayWidth));

describe('table layout', () => {
  it('without a width limit (a pipe), lays out every score in a wide column with four decimals', () => {
    expect(planTable(names, files, undefined).layout).toBe('wide');
    const text = render(undefined);
    expect(text.split('\n')[0]).toMatch(/^image\s+size\s+quality\s+brightness\s+sharpness\s+noisiness\s+colorfulness/);
    expect(text).toContain('photos/holiday/2023/IMG_0001.jpg  4032×3024   0.0000      0.0833');
  });

  it('at 120 columns, the paper\'s twelve scores fit in one line per image (compact), never wrapped', () => {
    const text = render(120);
    expect(planTable(names, files, 120).layout).toBe('compact');
    expect(widest(text)).toBeLessThanOrEqual(120);
    const lines = text.trim().split('\n');
    expect(lines).toHaveLength(3); // title line and one line per image
    expect(lines[0]).toMatch(/^image\s+qual… brig… shar…/);
    expect(lines[1]).toMatch(/IMG_0001\.jpg\s+0\.000 0\.083 0\.167/);
  });

  it('at 80 columns, switches to one block per image with the scores in aligned cells', () => {
    expect(planTable(names, files, 80).layout).toBe('vertical');
    const text = render(80);
    expect(widest(text)).toBeLessThanOrEqual(80);
    const lines = text.trim().split('\n');
    expect(lines[0]).toBe('photos/holiday/2023/IMG_0001.jpg  4032×3024');
    expect(lines[1]).toMatch(/^ {2}quality +0\.0000 {2}brightness +0\.0833 {2}sharpness +0\.1667$/);
    expect(lines.filter((l) => l.startsWith('  ')).length).toBe(8); // twelve scores, three a line, two images
  });

  it('at 80 columns, a few scores stay a wide table, and a long path is cut at its start to fit', () => {
    const few: RunHeader = { ...header, names: ['quality', 'sharpness'] };
    const long = `${'deep/'.repeat(20)}photo.jpg`;
    const f = tableFormatter(few, { color: false, columns: 80, files: [long] });
    const text = f.start() + f.row({ file: long, width: 10, height: 10, scores: { quality: 0.5, sharpness: 0.25 } });
    expect(widest(text)).toBeLessThanOrEqual(80);
    expect(text).toMatch(/\n…eep\/(deep\/)+photo\.jpg\s+10×10\s+0\.5000\s+0\.2500\n/);
  });

  it('prints control characters in file names and messages as escapes, never raw', () => {
    const evil = 'a\x1b]0;owned\x07\nb\r.jpg';
    for (const columns of [undefined, 120, 80]) {
      const text = render(columns, [row(evil), { file: evil, error: { code: 'E_IMAGE', message: `${evil}: broken` } }]);
      expect(text).not.toMatch(new RegExp(`[${String.fromCharCode(7, 27, 13)}]`));
      expect(text).toContain('a\\x1b]0;owned\\x07\\nb\\r.jpg');
    }
    expect(printable('x\u202eexe.jpg\u0085')).toBe('x\\u202eexe.jpg\\x85');
  });

  it('counts wide characters as two columns', () => {
    const name = '写真/猫.jpg';
    expect(displayWidth(name)).toBe(11);
    const f = tableFormatter({ ...header, names: ['quality'] }, { color: false, columns: undefined, files: [name, 'ab.jpg'] });
    const lines = (f.start() + f.row({ file: name, width: 1, height: 1, scores: { quality: 1 } }) + f.row({ file: 'ab.jpg', width: 1, height: 1, scores: { quality: 1 } })).split('\n');
    expect(displayWidth(lines[1]!)).toBe(displayWidth(lines[2]!));
  });
});

describe('CSV cells', () => {
  it('neutralise formulas as OWASP recommends and quote what needs it', () => {
    expect(csvCell('=HYPERLINK("http://x","y").jpg')).toBe('"\'=HYPERLINK(""http://x"",""y"").jpg"');
    for (const c of ['+1.jpg', '-1.jpg', '@SUM(A1).jpg', '\tx.jpg', '\rx.jpg']) expect(csvCell(c)).toBe(`"'${c}"`);
    expect(csvCell('a,b.jpg')).toBe('"a,b.jpg"');
    expect(csvCell('plain.jpg')).toBe('plain.jpg');
    expect(csvCell(0.5)).toBe('0.5');
  });
});
