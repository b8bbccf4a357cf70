/**
 * Prometheus metrics at GET /metrics: request counts and latencies per route, the queue's depth, inference time per
 * image, readiness, and Node's own process metrics (memory, event-loop lag: the lag shows whether anything heavy
 * ever runs on the event loop). Each server has its own registry, so several servers in one process (tests, an
 * application embedding two models) do not collide.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ServerMetrics {
  readonly registry: Registry;
  readonly queueWaiting: Gauge;
  readonly queueRunning: Gauge;
  readonly queueCapacity: Gauge;
  readonly rejected: Counter<'reason'>;
  readonly inference: Histogram<'outcome'>;
  readonly ready: Gauge;
  readonly modelInfo: Gauge<'model' | 'family'>;
  readonly workerRestarts: Counter<'reason'>;
  readonly imageMemory: Gauge;
  readonly bodyBytes: Gauge;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: ServerMetrics;
  }
}

/** Seconds: from a cached tiny model's milliseconds to a large image on a big model. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export function createMetrics(): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics: ServerMetrics = {
    registry,
    queueWaiting: new Gauge({ name: 'clip_iqa_queue_waiting', help: 'Images waiting for an inference lane', registers: [registry] }),
    queueRunning: new Gauge({ name: 'clip_iqa_queue_running', help: 'Images being decoded and scored', registers: [registry] }),
    queueCapacity: new Gauge({ name: 'clip_iqa_queue_capacity', help: 'Images that may wait before requests are refused with 429', registers: [registry] }),
    rejected: new Counter({
      name: 'clip_iqa_rejected_total',
      help:
        'Requests refused or dropped: full (queue full, 429), bodies (request bodies in flight over the budget, 429), timeout (503), gone (client disconnected), closing (shutdown)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    inference: new Histogram({
      name: 'clip_iqa_inference_seconds',
      help: 'Time of one image in an inference lane (decode, network, scores), by outcome',
      labelNames: ['outcome'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    ready: new Gauge({ name: 'clip_iqa_ready', help: '1 when the model is loaded and the server takes requests', registers: [registry] }),
    modelInfo: new Gauge({ name: 'clip_iqa_model_info', help: 'The model being served (value 1)', labelNames: ['model', 'family'] as const, registers: [registry] }),
    workerRestarts: new Counter({
      name: 'clip_iqa_worker_restarts_total',
      help: 'Model processes replaced: timeout (stopped at a request deadline), killed (by a signal: out of memory?), crashed (exited)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    imageMemory: new Gauge({ name: 'clip_iqa_image_memory_limit_bytes', help: 'Most estimated memory one image may take', registers: [registry] }),
    bodyBytes: new Gauge({ name: 'clip_iqa_body_bytes_in_flight', help: 'Bytes of request bodies and url= downloads held in memory', registers: [registry] }),
  };
  return metrics;
}

/** The route a request matched, as declared: ids in paths must not each become a time series. */
const routeOf = (request: FastifyRequest): string => request.routeOptions.url ?? 'unmatched';

export const metricsPlugin = fp(
  async (app: FastifyInstance) => {
    const metrics = createMetrics();
    const requests = new Counter({
      name: 'clip_iqa_http_requests_total',
      help: 'HTTP requests answered, by method, route and status',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [metrics.registry],
    });
    const latency = new Histogram({
      name: 'clip_iqa_http_request_duration_seconds',
      help: 'Time from the request to the end of the response, by method, route and status',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [metrics.registry],
    });
    app.decorate('metrics', metrics);
    app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
      const labels = { method: request.method, route: routeOf(request), status: String(reply.statusCode) };
      requests.inc(labels);
      latency.observe(labels, reply.elapsedTime / 1000);
    });
  },
  { name: 'clip-iqa-metrics' },
);

/** GET /metrics, in Prometheus' text format. */
export async function metricsRoute(app: FastifyInstance): Promise<void> {
  app.get(
    '/metrics',
    {
      config: { auth: true },
      schema: {
        summary: 'Prometheus metrics',
        description:
          'Requests, latency histograms, queue depth, inference time per image, readiness, and process metrics (memory, event-loop lag), in the Prometheus text format.',
        tags: ['operations'],
        produces: ['text/plain'],
        response: { 200: { description: 'Prometheus text exposition format', type: 'string' } },
      },
    },
    async (_request: FastifyRequest, reply: FastifyReply) => {
      reply.type(app.metrics.registry.contentType);
      return app.metrics.registry.metrics();
    },
  );
}
