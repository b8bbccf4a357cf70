/**
 * One worker's images go through the model as `clip-iqa score` sends them: through `scoreMany`, so that the next
 * images decode (and download) while one runs the network, and the network runs one image at a time with every
 * thread. Jobs scored side by side would instead run two networks at once, each on all cores, and both slower.
 *
 * `scoreMany` reads its inputs ahead; a stream of jobs has no end, so a run takes the images waiting and ends when
 * none comes for a moment (waiting longer, it could wait for a job that only comes once it answers), and the next
 * run starts with the next image. The worker keeps one job more in hand than the run reads ahead, so that in a
 * busy batch the next image is there when it is asked for and a run goes on.
 */
import type { ClipIqa, ImageScores, ScoreOptions } from '../api.js';

/** How long a run waits for the next image before it ends (the tail of a batch, an idle queue). */
const IDLE_MS = 25;

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
  #arrived: (() => void) | undefined;

  /** `ahead`: images decoded ahead of the one being scored. */
  constructor(iqa: ClipIqa, options: ScoreOptions, ahead: number) {
    this.#iqa = iqa;
    this.#options = { ...options, concurrency: Math.max(1, ahead) };
  }

  score(source: string): Promise<ImageScores> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ source, resolve, reject });
      this.#arrived?.();
      void this.#drain();
    });
  }

  /** Resolves when an image is added, or after `ms`. */
  #arrival(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#arrived = () => {
        this.#arrived = undefined;
        done();
      };
    });
  }

  async #drain(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      while (this.#waiting.length > 0) {
        const taken: Pending[] = [];
        const waiting = this.#waiting;
        const inputs = async function* (this: ScorePipeline): AsyncGenerator<string> {
          for (;;) {
            if (waiting.length === 0) await this.#arrival(IDLE_MS);
            const next = waiting.shift();
            if (!next) return;
            taken.push(next);
            yield next.source;
          }
        }.call(this);
        let answered = 0;
        try {
          for await (const r of this.#iqa.scoreMany(inputs, this.#options)) {
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
