/**
 * A bounded load test of `clip-iqa serve` on loopback: the built CLI serving a model, autocannon posting an image
 * for 30 s with more connections than the queue holds, so that the server must refuse some work. It reports
 * answered images per second, latency of the answers (p50/p90/p99, 200s only), peak resident memory and event-loop
 * lag (sampled from /metrics), and fails unless every non-200 answer is a well-formed 429 (E_BUSY + Retry-After).
 *
 *   npm run build && npx tsc -p tsconfig.json --noEmit false --outDir .bench/serve && \
 *   flock /tmp/clip-iqa-cpu.lock node .bench/serve/scripts/load-test.js \
 *     [--model tiny-rn|rn50-random] [--image chelsea.png] [--size N] [--seconds 30] [--connections 32] [--queue 8] [--workers 1]
 *
 * tiny-rn is the fixture model (the HTTP, upload and decode paths dominate); rn50-random has RN50's shapes with
 * random weights (real RN50 arithmetic; use --size 224 to keep each inference short).
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { load, multipart, startChild, withMemorySampling } from './bench-http.js';
import { ROOT, benchImage, modelOptions } from './bench-models.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'tiny-rn' },
    image: { type: 'string', default: 'chelsea.png' },
    size: { type: 'string', default: '' },
    seconds: { type: 'string', default: '30' },
    connections: { type: 'string', default: '32' },
    queue: { type: 'string', default: '8' },
    workers: { type: 'string', default: '1' },
    attributes: { type: 'string', default: 'paper' },
  },
});

async function main(): Promise<number> {
  const options = modelOptions(values.model);
  const { bytes, type } = await benchImage(values.image, values.size);
  const args = [
    join(ROOT, 'dist', 'cli', 'bin.js'),
    'serve',
    '--port',
    '0',
    '--log-level',
    'warn',
    '-m',
    String(options.model),
    '--vocab',
    String(options.vocab),
    '--queue',
    values.queue,
    '--workers',
    values.workers,
  ];
  const server = await startChild(args);
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const { body, contentType } = multipart(bytes, values.image, type);
  const path = `/v1/score?attributes=${encodeURIComponent(values.attributes)}`;
  try {
    await load(server.url, path, body, contentType, 4, 3); // warm-up
    const { result: r, idleRssMiB, peakRssMiB, lagP99Ms } = await withMemorySampling(
      server.url,
      server.child.pid!,
      load(server.url, path, body, contentType, connections, seconds),
    );
    const pct = (n: number) => `${((100 * n) / Math.max(1, r.requests)).toFixed(1)}%`;
    console.log(
      [
        `clip-iqa serve load test: ${values.model}, ${values.image}${values.size ? ` at ${values.size}²` : ''} (${bytes.length} B), attributes=${values.attributes}`,
        `  ${connections} connections for ${r.seconds.toFixed(1)} s; server: ${values.workers} model process(es), queue ${values.queue}`,
        `  answered:   ${r.ok} images (${r.okPerSecond}/s); refused with 429: ${r.busy} (${pct(r.busy)}); requests/s ${r.rps}`,
        `  latency of 200s: p50 ${r.p50} ms, p90 ${r.p90} ms, p99 ${r.p99} ms, max ${r.max} ms`,
        `  memory (server and model processes): RSS ${idleRssMiB} MiB idle, ${peakRssMiB} MiB peak; event-loop lag p99 ${lagP99Ms} ms`,
        `  other statuses: ${JSON.stringify(Object.fromEntries(r.other))}; malformed 429s: ${r.malformed429}; connection errors: ${r.errors}, timeouts: ${r.timeouts}`,
      ].join('\n'),
    );
    const clean = r.other.size === 0 && r.malformed429 === 0 && r.errors === 0 && r.timeouts === 0 && r.ok > 0;
    console.log(clean ? 'PASS: no errors other than well-formed 429s' : 'FAIL: errors other than well-formed 429s');
    return clean ? 0 : 1;
  } finally {
    const code = await server.stop();
    if (code !== 0) console.log(`the server exited with ${code} on SIGTERM`);
  }
}

process.exitCode = await main();
