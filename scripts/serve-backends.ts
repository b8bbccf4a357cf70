/**
 * Which serves two cores better: the bounded queue in front of one model on the main thread (onnxruntime spreading
 * each inference over every core), or model processes each holding a model on a share of the cores?
 * Same server, same routes, same load; only the Engine behind the queue differs.
 *
 *   npx tsc -p tsconfig.json --noEmit false --outDir .bench && npm run build && \
 *   flock /tmp/clip-iqa-cpu.lock node .bench/scripts/serve-backends.js [--model tiny-rn|rn50-random] \
 *     [--configs main:1,main:2,pool:1x2,pool:2x1] [--seconds 20] [--connections 8] [--size 224] [--spin on|off]
 *
 * `main:C`: one model on the main thread behind the queue, C images at once, onnxruntime on every core.
 * `pool:WxT[:C]`: the shipped design, W model processes with T onnxruntime threads each, C images at once (2W).
 * Prints one line per config: answered/s, latency p50/p99 of 200s, peak RSS, event-loop lag p99.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { ClipIqa } from '../src/api.js';
import { buildServer, serverUrl } from '../src/server/index.js';
import { load, multipart, startChild, withMemorySampling } from './bench-http.js';
import { benchImage, modelOptions } from './bench-models.js';

const { values } = parseArgs({
  options: {
    child: { type: 'boolean', default: false },
    backend: { type: 'string', default: 'queue' },
    model: { type: 'string', default: 'tiny-rn' },
    configs: { type: 'string', default: 'main:1,main:2,pool:1x2,pool:2x1' },
    seconds: { type: 'string', default: '20' },
    connections: { type: 'string', default: '8' },
    size: { type: 'string', default: '' },
    image: { type: 'string', default: 'chelsea.png' },
    spin: { type: 'string', default: 'off' },
  },
});

/** The server side: one config, in its own process, so that the load generator's work is not counted in its memory. */
async function child(): Promise<void> {
  const [kind, spec, lanes] = values.backend.split(':') as [string, string, string | undefined];
  const cores = availableParallelism();
  const base = modelOptions(values.model);
  // The server turns onnxruntime's spinning off unless told otherwise; `--spin on` measures the library default.
  const options = { ...base, runtime: { configEntries: { 'session.intra_op.allow_spinning': values.spin === 'on' ? '1' : '0' } } };
  let app;
  if (kind === 'main') {
    // The model on the event loop's thread, behind the same queue.
    app = await buildServer({ model: options, engine: () => ClipIqa.load(options), concurrency: Number(spec), queue: 1024, ui: false, maxPixels: 2 ** 28 });
  } else {
    const [workers, threads] = spec.split('x').map(Number) as [number, number];
    app = await buildServer({
      model: { ...options, runtime: { ...options.runtime, threads } },
      workers,
      concurrency: lanes ? Number(lanes) : undefined,
      queue: 1024,
      ui: false,
      maxPixels: 2 ** 28,
    });
  }
  await app.listen({ host: '127.0.0.1', port: 0 });
  await app.clip.load();
  process.stdout.write(`${JSON.stringify({ url: serverUrl(app), cores })}\n`);
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

async function main(): Promise<void> {
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const { bytes, type } = await benchImage(values.image, values.size);
  const { body, contentType } = multipart(bytes, values.image, type);
  const path = '/v1/score?attributes=paper';
  console.log(`spinning ${values.spin}; model ${values.model}, image ${values.image}${values.size ? ` at ${values.size}²` : ''} (${bytes.length} B), ${connections} connections, ${seconds} s per config`);
  for (const config of values.configs.split(',')) {
    const server = await startChild([process.argv[1]!, '--child', '--backend', config, '--model', values.model, '--spin', values.spin]);
    try {
      await load(server.url, path, body, contentType, connections, 3); // warm-up: JIT, arenas, first allocations
      const { result: r, peakRssMiB, lagP99Ms } = await withMemorySampling(server.url, server.child.pid!, load(server.url, path, body, contentType, connections, seconds));
      const bad = r.other.size > 0 || r.errors > 0 ? ` other=${JSON.stringify([...r.other])} errors=${r.errors}` : '';
      console.log(
        `${config.padEnd(10)} ${String(r.okPerSecond).padStart(7)} images/s   p50 ${String(r.p50).padStart(5)} ms   p99 ${String(r.p99).padStart(5)} ms   ` +
          `peak RSS ${peakRssMiB} MiB   event-loop lag p99 ${lagP99Ms} ms${bad}`,
      );
    } finally {
      await server.stop();
    }
  }
}

await (values.child ? child() : main());
