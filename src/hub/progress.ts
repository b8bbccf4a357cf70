/**
 * Download progress: the event type, a meter that turns byte counts into throttled events with a rate and an
 * ETA, and a one-line progress bar for a terminal's stderr.
 */

export interface DownloadProgress {
  readonly fileName: string;
  /** The URL being read (after mirror mapping, before redirects). */
  readonly url: string;
  /** Bytes of the file on disk so far, the resumed prefix included. */
  readonly bytesDone: number;
  /** Size of the whole file when the server said; null when unknown. */
  readonly totalBytes: number | null;
  /** Bytes already present when this transfer began (a resumed download). */
  readonly resumedFrom: number;
  /** Recent transfer rate, bytes per second (0 until measurable). */
  readonly bytesPerSecond: number;
  /** Seconds left at the recent rate; null when the total or the rate is unknown. */
  readonly etaSeconds: number | null;
  /** True on the last event of a transfer, whose `bytesDone` is the final size. */
  readonly done: boolean;
}

export type ProgressCallback = (progress: DownloadProgress) => void;

/** Rate over the last few seconds, so a stall or a burst shows quickly but a single chunk does not jitter it. */
const WINDOW_MS = 5000;

export class ProgressMeter {
  private readonly samples: { t: number; bytes: number }[] = [];
  private lastEmit = 0;
  private bytes: number;

  constructor(
    private readonly fileName: string,
    private readonly url: string,
    private readonly resumedFrom: number,
    private readonly totalBytes: number | null,
    private readonly callback: ProgressCallback | undefined,
    private readonly intervalMs = 100,
  ) {
    this.bytes = resumedFrom;
    this.samples.push({ t: Date.now(), bytes: resumedFrom });
    this.emit(false, true);
  }

  add(n: number): void {
    this.bytes += n;
    this.emit(false, false);
  }

  finish(): void {
    this.emit(true, true);
  }

  private rate(now: number): number {
    const s = this.samples;
    while (s.length > 2 && now - s[1]!.t > WINDOW_MS) s.shift();
    const first = s[0]!;
    const dt = (now - first.t) / 1000;
    return dt > 0.05 ? (this.bytes - first.bytes) / dt : 0;
  }

  private emit(done: boolean, force: boolean): void {
    if (!this.callback) return;
    const now = Date.now();
    if (!force && now - this.lastEmit < this.intervalMs) return;
    this.lastEmit = now;
    this.samples.push({ t: now, bytes: this.bytes });
    const rate = this.rate(now);
    const total = done && this.totalBytes === null ? this.bytes : this.totalBytes;
    const eta = done ? 0 : total !== null && rate > 0 ? Math.max(0, (total - this.bytes) / rate) : null;
    this.callback({
      fileName: this.fileName,
      url: this.url,
      bytesDone: this.bytes,
      totalBytes: total,
      resumedFrom: this.resumedFrom,
      bytesPerSecond: rate,
      etaSeconds: eta,
      done,
    });
  }
}

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[u]}`;
}

/** 3725 → "1:02:05", 65 → "1:05". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** The text of one progress line, without terminal control codes. */
export function formatProgressLine(p: DownloadProgress, columns = 80): string {
  const size = p.totalBytes !== null ? `${formatBytes(p.bytesDone)}/${formatBytes(p.totalBytes)}` : formatBytes(p.bytesDone);
  const rate = p.bytesPerSecond > 0 ? `${formatBytes(p.bytesPerSecond)}/s` : '';
  const eta = p.done ? 'done' : p.etaSeconds !== null ? `ETA ${formatDuration(p.etaSeconds)}` : '';
  const tail = [size, rate, eta].filter(Boolean).join('  ');
  const name = p.fileName.length > 28 ? `${p.fileName.slice(0, 27)}…` : p.fileName;
  if (p.totalBytes === null || p.totalBytes === 0) return `${name}  ${tail}`.slice(0, columns - 1);
  const fraction = Math.min(1, p.bytesDone / p.totalBytes);
  const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
  const barWidth = Math.max(0, Math.min(30, columns - 1 - name.length - tail.length - pct.length - 6));
  if (barWidth < 5) return `${name} ${pct}  ${tail}`.slice(0, columns - 1);
  const filled = Math.round(fraction * barWidth);
  return `${name} ${pct} [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${tail}`;
}

export interface ProgressBarOptions {
  /** Default `process.stderr`. */
  readonly stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** No output at all. */
  readonly quiet?: boolean;
  /** Minimum time between redraws, ms. Default 100. */
  readonly intervalMs?: number;
}

export interface ProgressBar {
  /** Feed it events; it draws when due. */
  readonly update: ProgressCallback;
  /** Ends the current line (if one was drawn). */
  end(): void;
  /** False when it prints nothing (not a terminal, or quiet). */
  readonly active: boolean;
}

/**
 * A progress bar redrawn in place on a terminal. Silent when the stream is not a TTY (logs and pipes must not
 * fill with carriage returns) or when `quiet`.
 */
export function createProgressBar(options: ProgressBarOptions = {}): ProgressBar {
  const stream = options.stream ?? process.stderr;
  const active = !options.quiet && stream.isTTY === true;
  const intervalMs = options.intervalMs ?? 100;
  let drawn = false;
  let last = 0;
  return {
    active,
    update(p) {
      if (!active) return;
      const now = Date.now();
      if (!p.done && drawn && now - last < intervalMs) return;
      last = now;
      stream.write(`\r\x1b[K${formatProgressLine(p, stream.columns ?? 80)}`);
      drawn = true;
      if (p.done) {
        stream.write('\n');
        drawn = false;
      }
    },
    end() {
      if (active && drawn) stream.write('\n');
      drawn = false;
    },
  };
}
