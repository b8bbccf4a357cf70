/**
 * One worker's images go through the model as `clip-iqa score` sends them: through `scoreMany`, so that the next
 * images decode (and download) while one runs the network, and the network runs one image at a time with every
 * thread. Jobs scored side by side would instead run two networks at once, each on all cores, and both slower.
 *
 * `scoreMany` reads its inputs ahead; a stream of jobs has no end, so a run takes the images waiting and ends when
 * none is left (it would otherwise wait for a job that only comes once it answers), and the next run starts with
 * the next image.
 */
import type { ClipIqa, ImageScores, ScoreOptions } from '../api.js';

interface Pending {
  readonly source: string;
  readonly resolve: (scores: ImageScores) => void;
  readonly reject: (e: unknown) => void;
}

export class ScorePipeline {
  readonly #iqa: ClipIqa;
  readonly #options: ScoreOptions & { concurrency: number };
  readonly #waiting: Pending[] = [];
  #running = false;

  /** `ahead`: images decoded ahead of the one being scored. */
  constructor(iqa: ClipIqa, options: ScoreOptions, ahead: number) {
    this.#iqa = iqa;
    this.#options = { ...options, concurrency: Math.max(1, ahead) };
  }

  score(source: string): Promise<ImageScores> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ source, resolve, reject });
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      while (this.#waiting.length > 0) {
        const taken: Pending[] = [];
        const waiting = this.#waiting;
        const inputs = function* (): Generator<string> {
          while (waiting.length > 0) {
            const next = waiting.shift()!;
            taken.push(next);
            yield next.source;
          }
        };
        let answered = 0;
        try {
          for await (const r of this.#iqa.scoreMany(inputs(), this.#options)) {
            const p = taken[r.index]!;
            answered++;
            if (r.ok) p.resolve(r);
            else p.reject(r.error);
          }
        } catch (e) {
          for (const p of taken.slice(answered)) p.reject(e);
        }
      }
    } finally {
      this.#running = false;
    }
  }
}
