/**
 * The Web Worker that holds the model (clip-iqa-worker.js): building graphs and running onnxruntime-web here keeps
 * the page's thread free. It answers the page's requests (protocol.ts) one model per worker.
 */
import { ClipIqaError } from '../errors.js';
import { type BrowserLoadOptions, LocalClipIqa } from './local.js';
import { type ModelInfo, type Reply, type Request, serializeError } from './protocol.js';
import type { BrowserImageSource } from './decode.js';

let model: LocalClipIqa | undefined;
/** The open scoreMany streams: request id → the queue its inputs arrive in. */
const streams = new Map<number, { push(input: BrowserImageSource): void; end(): void }>();

const post = (reply: Reply) => (self as unknown as Worker).postMessage(reply);

function loaded(): LocalClipIqa {
  if (!model) throw new ClipIqaError('E_OPTION', 'the model is not loaded, or was disposed');
  return model;
}

/** An async iterable fed by messages, for scoreMany. */
function queue(): { iterable: AsyncIterable<BrowserImageSource>; push(input: BrowserImageSource): void; end(): void } {
  const items: BrowserImageSource[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  return {
    push(input) {
      items.push(input);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    iterable: {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          if (items.length > 0) yield items.shift()!;
          else if (ended) return;
          else await new Promise<void>((resolve) => (wake = resolve));
        }
      },
    },
  };
}

async function handle({ id, method, args }: Request): Promise<unknown> {
  switch (method) {
    case 'load': {
      const options = args[0] as BrowserLoadOptions;
      model = await LocalClipIqa.load({ ...options, onProgress: (p) => post({ id, progress: p }) });
      const info: ModelInfo = {
        name: model.name,
        backend: model.backend,
        threads: model.threads,
        architecture: model.architecture,
        logitScale: model.logitScale,
        description: model.describe(),
        plus: model.context !== undefined,
      };
      return info;
    }
    case 'score':
      return loaded().score(args[0] as BrowserImageSource, args[1] as never);
    case 'embedImage':
      return loaded().embedImage(args[0] as BrowserImageSource, args[1] as never);
    case 'embedText':
      return loaded().embedText(args[0] as string[]);
    case 'scoreMaps':
      return loaded().scoreMaps(args[0] as BrowserImageSource, args[1] as string[], args[2] as never);
    case 'plan':
      return loaded().plan(args[0] as never);
    case 'dispose': {
      const m = model;
      model = undefined;
      await m?.dispose();
      return undefined;
    }
    case 'manyStart': {
      const q = queue();
      streams.set(id, q);
      try {
        for await (const r of loaded().scoreMany(q.iterable, args[0] as never)) {
          post({ id, item: r.ok ? r : { ...r, error: serializeError(r.error) } });
        }
      } finally {
        streams.delete(id);
      }
      return undefined;
    }
    case 'manyItem':
      streams.get(args[0] as number)?.push(args[1] as BrowserImageSource);
      return undefined;
    case 'manyEnd':
      streams.get(args[0] as number)?.end();
      return undefined;
  }
}

self.onmessage = (event: MessageEvent<Request>) => {
  const request = event.data;
  handle(request).then(
    (value) => {
      if (request.method !== 'manyItem' && request.method !== 'manyEnd') post({ id: request.id, ok: true, value });
    },
    (e: unknown) => post({ id: request.id, ok: false, error: serializeError(e) }),
  );
};
