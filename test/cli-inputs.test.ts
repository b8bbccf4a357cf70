/**
 * Input expansion and checks (no model involved), `--from` lists, `--keep` conditions and the file actions of
 * `--copy-to`/`--move-to`/`--link-to`, on synthetic files in temporary directories.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { expandInputs, readList } from '../src/cli/inputs.js';
import { actOnFiles, parseKeep, passes } from '../src/cli/select.js';

let root: string;
const cwd = process.cwd();

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'clip-iqa-inputs-'));
  mkdirSync(join(root, 'photos', 'sub'), { recursive: true });
  mkdirSync(join(root, 'empty'));
  for (const f of ['photos/a.jpg', 'photos/B.PNG', 'photos/sub/c.webp', 'photos/notes.txt', 'photos/raw.CR2', 'photos/.hidden.jpg', 'other.jpg', 'letter.txt']) {
    writeFileSync(join(root, f), f);
  }
  symlinkSync(join(root, 'photos'), join(root, 'photos', 'sub', 'loop')); // a directory link back up: a loop
  symlinkSync(join(root, 'other.jpg'), join(root, 'photos', 'link-to-other.jpg'));
  symlinkSync(join(root, 'photos', 'a.jpg'), join(root, 'photos', 'sub', 'same-as-a.jpg'));
  execFileSync('mkfifo', [join(root, 'pipe.jpg')]);
});

const names = (items: { name: string }[]) => items.map((i) => i.name);

describe('input expansion', () => {
  it('walks directories in order, skipping (and naming) what it does not take, without following directory links', async () => {
    process.chdir(root);
    try {
      const { items, skipped } = await expandInputs(['photos']);
      expect(names(items)).toEqual(['photos/B.PNG', 'photos/a.jpg', 'photos/link-to-other.jpg', 'photos/sub/c.webp']);
      expect(items.every((i) => i.kind === 'file')).toBe(true);
      // sub/same-as-a.jpg is photos/a.jpg again (by real path); sub/loop is a link to a directory.
      expect(skipped.map((s) => s.file).sort()).toEqual(['photos/notes.txt', 'photos/raw.CR2', 'photos/sub/loop']);
      expect(skipped.find((s) => s.file === 'photos/sub/loop')!.reason).toMatch(/symbolic link to a directory, not followed/);
      expect(skipped.find((s) => s.file === 'photos/raw.CR2')!.reason).toMatch(/not an image extension/);
    } finally {
      process.chdir(cwd);
    }
  });

  it('names files as given (normalised) and takes an image once, whatever the spelling', async () => {
    process.chdir(root);
    try {
      const { items } = await expandInputs(['./photos/../photos/a.jpg', 'photos/a.jpg', 'photos/sub/same-as-a.jpg', join(root, 'other.jpg'), 'photos/link-to-other.jpg']);
      expect(names(items)).toEqual(['photos/a.jpg', join(root, 'other.jpg')]);
    } finally {
      process.chdir(cwd);
    }
  });

  it('refuses, naming them, a FIFO, a device, a missing file, an empty folder, other extensions and other schemes', async () => {
    const started = Date.now();
    const { items } = await expandInputs([join(root, 'pipe.jpg'), '/dev/zero', join(root, 'nope.jpg'), join(root, 'empty'), join(root, 'letter.txt'), 'ftp://example.com/a.jpg', join(root, '*.gif')]);
    expect(Date.now() - started).toBeLessThan(5000); // a FIFO is refused, not opened and waited on
    const bad = items.map((i) => (i.kind === 'bad' ? [i.code, i.reason] : i.kind));
    expect(bad).toEqual([
      ['E_IMAGE', expect.stringMatching(/pipe\.jpg: a named pipe \(FIFO\); only regular files are read/)],
      ['E_IMAGE', expect.stringMatching(/\/dev\/zero: a device; only regular files are read/)],
      ['E_NOT_FOUND', expect.stringMatching(/nope\.jpg: no such file or directory/)],
      ['E_NOT_FOUND', expect.stringMatching(/no images .* in the directory .*empty/)],
      ['E_IMAGE', expect.stringMatching(/letter\.txt: \.txt is not an image extension/)],
      ['E_URL', expect.stringMatching(/only http and https URLs are read/)],
      ['E_NOT_FOUND', expect.stringMatching(/the pattern .*\*\.gif matches no images/)],
    ]);
  });

  it('skips a FIFO found in a directory instead of hanging on it', async () => {
    const { items, skipped } = await expandInputs([root]);
    expect(skipped.find((s) => s.file.endsWith('pipe.jpg'))!.reason).toMatch(/named pipe/);
    expect(items.some((i) => i.name.endsWith('pipe.jpg'))).toBe(false);
  });

  it('takes URLs as given, checking the host list and credentials before anything is fetched', async () => {
    const { items } = await expandInputs(['https://img.example.com/a.jpg', 'http://other.org/b.png', 'https://u:p@img.example.com/c.jpg', 'https://img.example.com/a.jpg'], {
      allowHosts: ['*.example.com'],
    });
    expect(items.map((i) => [i.kind, i.name])).toEqual([
      ['url', 'https://img.example.com/a.jpg'],
      ['bad', 'http://other.org/b.png'],
      ['bad', 'https://u:p@img.example.com/c.jpg'],
    ]);
    expect(items[1]!.kind === 'bad' && items[1]!.reason).toMatch(/other\.org is not among the hosts of --allow-hosts/);
  });

  it('reads --from lists: plain lines, and CSV (also earlier results) by their file or url column', async () => {
    const plain = join(root, 'list.txt');
    writeFileSync(plain, `# my picks\n${join(root, 'other.jpg')}\n\nhttps://example.com/x.jpg\r\n`);
    expect(await readList(plain, 1000)).toEqual([join(root, 'other.jpg'), 'https://example.com/x.jpg']);
    const csv = join(root, 'results.csv');
    writeFileSync(csv, '# run: {"tool":"clip-iqa"}\nfile,width,height,quality,error\n"\'=cmd.jpg",1,1,0.5,\n"a,b#1.jpg",1,1,0.5,\n');
    expect(await readList(csv, 1000)).toEqual(['=cmd.jpg', 'a,b#1.jpg']);
    const urls = join(root, 'urls');
    writeFileSync(urls, 'id,url\n1,https://example.com/1.jpg\n2,https://example.com/2.jpg\n');
    expect(await readList(urls, 1000)).toEqual(['https://example.com/1.jpg', 'https://example.com/2.jpg']);
    writeFileSync(join(root, 'bad.csv'), 'name,size\na.jpg,1\n');
    await expect(readList(join(root, 'bad.csv'), 1000)).rejects.toThrow(/needs a "file" or "url" column; its columns are name, size/);
    await expect(readList(join(root, 'missing-list.txt'), 1000)).rejects.toThrow(/--from .*missing-list\.txt: cannot read the list/);
  });
});

describe('--keep and file actions', () => {
  it('parses conditions and applies them to scored rows only', () => {
    const keep = parseKeep('quality>=0.6, sharpness>0.5,noisiness<0.3');
    expect(keep).toEqual([
      { name: 'quality', op: '>=', value: 0.6 },
      { name: 'sharpness', op: '>', value: 0.5 },
      { name: 'noisiness', op: '<', value: 0.3 },
    ]);
    expect(passes({ file: 'a', width: 1, height: 1, scores: { quality: 0.6, sharpness: 0.51, noisiness: 0.1 } }, keep)).toBe(true);
    expect(passes({ file: 'a', width: 1, height: 1, scores: { quality: 0.59, sharpness: 0.9, noisiness: 0.1 } }, keep)).toBe(false);
    expect(passes({ file: 'a', error: { code: 'E_IMAGE', message: 'x' } }, keep)).toBe(false);
    expect(() => parseKeep('quality=>0.6')).toThrow(/"quality=>0.6" is not a condition/);
  });

  it('copies, links and moves into a directory without ever overwriting; a dry run changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'clip-iqa-act-'));
    const src = join(dir, 'src');
    mkdirSync(join(src, 'x'), { recursive: true });
    for (const f of ['a.jpg', 'x/a.jpg', 'b.jpg']) writeFileSync(join(src, f), f);
    const best = join(dir, 'best');
    mkdirSync(best);
    writeFileSync(join(best, 'a.jpg'), 'already there');
    const files = [join(src, 'a.jpg'), join(src, 'x/a.jpg'), join(src, 'b.jpg'), 'https://example.com/u.jpg'];

    const dry = await actOnFiles('copy', best, files, true);
    expect(dry.done.map((s) => s.to)).toEqual([join(best, 'a-1.jpg'), join(best, 'a-2.jpg'), join(best, 'b.jpg')]);
    expect(dry.skipped).toEqual([{ file: 'https://example.com/u.jpg', reason: 'a URL is not a file' }]);
    expect(existsSync(join(best, 'a-1.jpg'))).toBe(false);

    const copied = await actOnFiles('copy', best, files, false);
    expect(copied.done.map((s) => s.to)).toEqual(dry.done.map((s) => s.to));
    expect(readFileSync(join(best, 'a.jpg'), 'utf8')).toBe('already there');
    expect(readFileSync(join(best, 'a-2.jpg'), 'utf8')).toBe('x/a.jpg');

    const links = join(dir, 'links');
    const linked = await actOnFiles('link', links, files.slice(0, 1), false);
    expect(lstatSync(linked.done[0]!.to).isSymbolicLink()).toBe(true);
    expect(readlinkSync(linked.done[0]!.to)).toBe(join(src, 'a.jpg'));

    const moved = await actOnFiles('move', best, [join(src, 'b.jpg')], false);
    expect(moved.done[0]!.to).toBe(join(best, 'b-1.jpg'));
    expect(existsSync(join(src, 'b.jpg'))).toBe(false);
    expect(readFileSync(join(best, 'b.jpg'), 'utf8')).toBe('b.jpg');
  });
});
