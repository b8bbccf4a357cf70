import { formatDuration } from '../hub/progress.js';

type Stream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

/**
 * "12/100 images  2.4 img/s  ETA 0:37" on one stderr line, redrawn in place. Silent when stderr is not a
 * terminal or when quiet. Other output to the same terminal goes through `log`, which lifts the bar first.
 */
export class BatchProgress {
  readonly active: boolean;
  readonly #stream: Stream;
  readonly #total: number;
  readonly #started = Date.now();
  #done = 0;
  #failed = 0;
  #drawn = false;
  #last = 0;

  constructor(total: number, options: { quiet?: boolean; stream?: Stream } = {}) {
    this.#stream = options.stream ?? process.stderr;
    this.#total = total;
    this.active = !options.quiet && this.#stream.isTTY === true && total > 1;
  }

  tick(ok: boolean): void {
    this.#done++;
    if (!ok) this.#failed++;
    const now = Date.now();
    if (this.#done < this.#total && now - this.#last < 100) return;
    this.#last = now;
    this.#draw();
  }

  /** Writes a line to `target` without leaving a torn progress line behind. */
  log(target: NodeJS.WritableStream, text: string): void {
    const sameTerminal = this.active && (target as Stream).isTTY === true;
    if (sameTerminal && this.#drawn) this.#stream.write('\r\x1b[K');
    target.write(text);
    if (sameTerminal && this.#drawn) this.#draw();
  }

  end(): void {
    if (this.active && this.#drawn) this.#stream.write('\n');
    this.#drawn = false;
  }

  #draw(): void {
    if (!this.active) return;
    const seconds = (Date.now() - this.#started) / 1000;
    const rate = seconds > 0 ? this.#done / seconds : 0;
    const eta = this.#done >= this.#total ? formatDuration(0) : rate > 0 ? formatDuration((this.#total - this.#done) / rate) : '?';
    const width = Math.max(10, Math.min(30, (this.#stream.columns ?? 80) - 60));
    const filled = Math.round((this.#done / this.#total) * width);
    const failed = this.#failed ? `  ${this.#failed} failed` : '';
    const line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${this.#done}/${this.#total} images  ${rate.toFixed(1)} img/s  ETA ${eta}${failed}`;
    this.#stream.write(`\r\x1b[K${line}`);
    this.#drawn = true;
  }
}
