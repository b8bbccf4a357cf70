/**
 * Probes. /healthz: the process answers (liveness; never depends on the model, so a slow load is not a restart).
 * /readyz: the model is loaded and warm and the server is not shutting down (readiness; a load balancer sends
 * traffic only then).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { errorSchema, statusResponse } from '../schemas.js';

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  const started = Date.now();
  app.get(
    '/healthz',
    {
      schema: { summary: 'Liveness', description: 'Answers 200 while the process runs.', tags: ['operations'], response: { 200: statusResponse } },
    },
    async () => ({ status: 'ok', uptimeSeconds: Math.round((Date.now() - started) / 100) / 10 }),
  );
  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness',
        description: '200 once the model is loaded and warmed up; 503 (E_NOT_READY) while loading, after a failed load, and during shutdown.',
        tags: ['operations'],
        response: { 200: statusResponse, 503: { $ref: `${errorSchema.$id}#` } },
      },
    },
    async (_request, reply: FastifyReply) => {
      reply.header('cache-control', 'no-store');
      if (!app.clip.ready) throw app.clip.notReady();
      return { status: 'ready', model: app.clip.engine.name };
    },
  );
}
