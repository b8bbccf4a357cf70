/**
 * `clip-iqa serve`: CLIP-IQA over HTTP. The server is assembled from plugins, one concern each:
 *
 *   errors      JSON errors with the right status          metrics   Prometheus registry and request metrics
 *   hosts       Host headers answered (DNS rebinding)      cors      which web pages may call the API
 *   auth        optional bearer token                      limits    upload sizes, media types, pixel counts
 *   bodies      bytes in flight, receiving deadline        inference model life cycle and the bounded queue
 *   docs        OpenAPI document and docs page             static    the web page and its scripts
 *   routes/     score, embed, models, prompts, probes
 *
 *   const { app, url } = await startServer({ model: { model: 'RN50' } });   // listens, then loads the model
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import { authPlugin } from './auth.js';
import { bodiesPlugin } from './bodies.js';
import { corsPlugin } from './cors.js';
import { docsPlugin } from './docs.js';
import { clientError, errorHandling } from './errors.js';
import { hostsPlugin } from './hosts.js';
import { inferencePlugin } from './inference.js';
import { limitsPlugin } from './limits.js';
import { metricsPlugin, metricsRoute } from './metrics.js';
import { PACKAGE } from '../util/package.js';
import { type ServerOptions, type Settings, resolveSettings } from './options.js';
import { embedRoute } from './routes/embed.js';
import { healthRoutes } from './routes/health.js';
import { infoRoutes } from './routes/info.js';
import { modelFilesRoutes } from './routes/model-files.js';
import { scoreRoute } from './routes/score.js';
import { securityHeaders, staticPlugin } from './static.js';

export { type Engine, type ServerOptions, DEFAULTS } from './options.js';
export { installShutdown } from './shutdown.js';

/** JSON bodies carry only options and texts (images come as multipart or raw bodies, which have their own limit). */
const JSON_BODY_LIMIT = 256 * 1024;

/** Builds the server; the model is not loaded until `app.clip.load()` (startServer does both). */
export async function buildServer(options: ServerOptions = {}): Promise<FastifyInstance> {
  const settings: Settings = resolveSettings(options);
  const app = Fastify({
    logger:
      typeof settings.logger === 'boolean'
        ? settings.logger && { level: 'info' }
        : { level: settings.logger.level ?? 'info', ...(settings.logger.stream ? { stream: settings.logger.stream } : {}) },
    // One line per request, written below with what matters; fastify's default is two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: JSON_BODY_LIMIT,
    // A client gets this long to send its whole request: slow-loris protection. bodies.ts answers 408 at the
    // deadline itself; Node's own check (headers, and anything bodies.ts does not see) runs every few hundred ms
    // instead of every 30 s, so that it is a deadline and not a suggestion.
    requestTimeout: settings.timeoutMs,
    http: {
      requestTimeout: settings.timeoutMs,
      headersTimeout: settings.timeoutMs,
      connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.round(settings.timeoutMs / 10))),
    },
    // Node's own 400/408/431 answers (malformed HTTP, timeouts, oversized headers), in the API's error shape.
    clientErrorHandler: clientError,
    // Requests that arrive during shutdown get our own JSON 503 (inference.ts), not fastify's.
    return503OnClosing: false,
    ajv: {
      // Unknown parameters are errors, not silently dropped: `atributes=all` must not score the defaults.
      customOptions: { removeAdditional: false },
    },
  });

  await app.register(errorHandling);
  await app.register(metricsPlugin);
  await app.register(securityHeaders);
  await app.register(hostsPlugin, { settings });
  await app.register(corsPlugin, { settings });
  await app.register(authPlugin, { token: settings.token });
  await app.register(limitsPlugin, { settings });
  await app.register(bodiesPlugin, { settings });
  await app.register(inferencePlugin, { settings });
  await app.register(docsPlugin, { settings, version: PACKAGE.version });

  app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
    request.log.info({ method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  // In this order in the docs.
  await app.register(scoreRoute);
  await app.register(embedRoute);
  await app.register(infoRoutes);
  await app.register(modelFilesRoutes);
  await app.register(healthRoutes);
  await app.register(metricsRoute);
  if (settings.ui) await app.register(staticPlugin);
  return app;
}

export interface ListenOptions {
  /** Default 127.0.0.1: reachable from this machine only until you say otherwise. */
  readonly host?: string;
  /** Default 8080; 0 picks a free port. */
  readonly port?: number;
}

/** Builds, listens, then loads the model (so /healthz answers during the load); resolves once it is ready. */
export async function startServer(options: ServerOptions & ListenOptions = {}): Promise<{ app: FastifyInstance; url: string }> {
  const app = await buildServer(options);
  try {
    await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 8080 });
    await app.clip.load();
  } catch (e) {
    await app.close();
    throw e;
  }
  return { app, url: serverUrl(app) };
}

/** http://host:port of a listening server (IPv6 hosts bracketed). */
export function serverUrl(app: FastifyInstance): string {
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('the server is not listening on a TCP port');
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}
