/** The BPE vocabulary ships in the package: the registry's entry resolves to it, offline, with an empty cache. */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClipIqa } from '../src/api.js';
import { DEFAULT_REGISTRY, findEntry, resolveSource } from '../src/hub/index.js';
import { VOCAB, fixture, photo, repoRoot } from './helpers/shared.js';

const SHA = '924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a';

describe('the packaged vocabulary', () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'clip-iqa-vocab-'));
  afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

  it('is OpenAI\'s file, with its licence in the notices', () => {
    expect(VOCAB).toBe(join(repoRoot, 'assets', 'bpe_simple_vocab_16e6.txt.gz'));
    expect(createHash('sha256').update(readFileSync(VOCAB)).digest('hex')).toBe(SHA);
    expect(findEntry(DEFAULT_REGISTRY, 'vocab', 'vocab')?.sha256).toBe(SHA);
    expect(readFileSync(join(repoRoot, 'THIRD_PARTY_NOTICES.md'), 'utf8')).toMatch(/Copyright \(c\) 2021 OpenAI/);
  });

  it('is what the default and the registry names resolve to, offline, caching nothing', async () => {
    for (const spec of [undefined, 'vocab', 'bpe_simple_vocab_16e6']) {
      const r = await resolveSource(spec, 'vocab', { cacheDir, offline: true, quiet: true });
      expect(r).toMatchObject({ path: VOCAB, source: 'registry', downloaded: false, sha256: SHA });
    }
    expect(readdirSync(cacheDir)).toEqual([]);
  });

  it('lets a local model load with no vocab option and no network', async () => {
    const iqa = await ClipIqa.load({ model: fixture('tiny-rn', 'model.pt'), hub: { cacheDir, offline: true, quiet: true } });
    try {
      const { scores } = await iqa.score(photo('camera.png'), { attributes: 'quality' });
      expect(scores.quality).toBeGreaterThan(0);
    } finally {
      await iqa.dispose();
    }
  });
});
