import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BatchProgress } from '../src/cli/progress.js';

function fakeTerminal(isTTY: boolean) {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  }) as Writable & { isTTY?: boolean; columns?: number };
  stream.isTTY = isTTY;
  stream.columns = 100;
  return { stream, text: () => text };
}

describe('batch progress bar', () => {
  it('draws count, rate, ETA and failures on a terminal, and lifts itself for other output', () => {
    const term = fakeTerminal(true);
    const p = new BatchProgress(3, { stream: term.stream });
    p.tick(true);
    p.tick(false);
    p.tick(true);
    expect(term.text()).toMatch(/3\/3 images\s+[\d.]+ img\/s\s+ETA 0:00\s+1 failed/);
    p.log(term.stream, 'row\n');
    const ESC = String.fromCharCode(27);
    expect(term.text()).toContain(`\r${ESC}[Krow\n\r${ESC}[K[`);
    p.end();
    expect(term.text().endsWith('\n')).toBe(true);
  });

  it('is silent when stderr is not a terminal, when quiet, and for a single image', () => {
    for (const [tty, quiet, total] of [
      [false, false, 5],
      [true, true, 5],
      [true, false, 1],
    ] as const) {
      const term = fakeTerminal(tty);
      const p = new BatchProgress(total, { stream: term.stream, quiet });
      for (let i = 0; i < total; i++) p.tick(true);
      p.end();
      expect(term.text()).toBe('');
    }
  });
});
