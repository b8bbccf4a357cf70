/**
 * GET /v1/model/browser and GET /v1/model/files/…: the model this server runs, as files for the page's "Score in
 * this browser" mode. The files are streamed from the model cache with an ETag and, their URLs being versioned,
 * a year of immutable caching; If-None-Match answers 304.
 */
import { createReadStream } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from '../errors.js';
import { type BrowserManifest, MODEL_FILES_PREFIX, type ServedFile, browserModelFiles } from '../model-files.js';
import { inferenceErrors } from '../schemas.js';

const { 401: unauthorized, 503: notReady } = inferenceErrors;

export async function modelFilesRoutes(app: FastifyInstance): Promise<void> {
  let files: Promise<{ manifest: BrowserManifest; files: ServedFile[] }> | undefined;
  // Resolved once the model is loaded (the files are in the cache then), and kept: the model does not change.
  const resolved = () => {
    files ??= browserModelFiles(app.clip.settings.model, app.clip.engine.name);
    files.catch(() => (files = undefined));
    return files;
  };

  app.get(
    '/v1/model/browser',
    {
      config: { auth: true, model: true },
      schema: {
        summary: 'The model as files for in-browser scoring',
        description:
          'What the web page passes to the browser build (`clip-iqa/browser`) to score with this server\'s model on the user\'s device: file URLs (relative to the server\'s root), positional mode, polarity, CLIP-IQA+ context. `available: false` with a reason when the model is not a file.',
        tags: ['models'],
        response: { 401: unauthorized, 503: notReady },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', 'no-cache');
      return (await resolved()).manifest;
    },
  );

  app.get(
    `/${MODEL_FILES_PREFIX}*`,
    { config: { auth: true, model: true }, schema: { hide: true } },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const path = request.url.split('?')[0]!.slice(1);
      const file = (await resolved()).files.find((f) => f.urlPath === path);
      if (!file) throw new HttpError(404, 'E_NOT_FOUND', `${request.url}: no such model file; GET /v1/model/browser lists them`);
      reply.header('etag', file.etag);
      // The URL names the file's version: a new model is a new URL, so this one may be kept for good.
      reply.header('cache-control', 'public, max-age=31536000, immutable');
      const match = request.headers['if-none-match'];
      if (match !== undefined && match.split(',').some((t) => t.trim() === file.etag || t.trim() === '*')) return reply.code(304).send();
      reply.header('content-type', file.contentType);
      reply.header('content-length', String(file.size));
      return reply.send(createReadStream(file.path));
    },
  );
}
