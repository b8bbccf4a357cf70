/** POST /v1/embed: CLIP features of images and texts, as `clip-iqa embed --json` prints them. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { featureVector } from '../../cli/output.js';
import type { PositionalMode } from '../../model/types.js';
import { HttpError, rowError, toHttpError } from '../errors.js';
import { readInput } from '../inputs.js';
import { checkImageMemory } from '../limits.js';
import type { Engine, TaskControl } from '../options.js';
import { embedJsonBody, embedQuery, embedResponse, inferenceErrors } from '../schemas.js';

interface EmbedParams {
  text?: string[];
  positional?: PositionalMode;
  url?: string[];
  name?: string;
}

export async function embedRoute(app: FastifyInstance): Promise<void> {
  const settings = app.clip.settings;
  app.post(
    '/v1/embed',
    {
      config: { auth: true, upload: true, model: true, queued: true },
      schema: {
        summary: 'Embed images and texts',
        description:
          'CLIP features (not normalised) of uploaded images (multipart, raw body or url=) and of texts (`text=`, repeatable, or a JSON body ' +
          '{"text": [...]}). Texts alone need no image.',
        tags: ['embedding'],
        querystring: embedQuery,
        body: { content: { 'application/json': { schema: embedJsonBody } } },
        response: { 200: embedResponse, ...inferenceErrors },
      },
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const engine = app.clip.engine;
      const { uploads, options } = await readInput<EmbedParams>(request, settings, embedQuery, { json: true });
      const texts = options.text ?? [];
      if (uploads.length === 0 && texts.length === 0) {
        throw new HttpError(400, 'E_BAD_REQUEST', 'nothing to embed: upload images and/or give text=');
      }
      const positional = options.positional ?? settings.positional;
      const memory = { architecture: engine.architecture, settings, limit: app.clip.imageMemory, maps: false };
      for (const u of uploads) checkImageMemory(u, u.info, memory);
      // The texts go through the text tower as one batch: one task, one place in the queue.
      const tasks: ((e: Engine, control: TaskControl) => Promise<Float32Array | Float32Array[]>)[] = uploads.map(
        (u) => (e, control) => e.embedImage(u.bytes, { positional, decode: { name: u.name } }, control),
      );
      if (texts.length > 0) tasks.push((e, control) => e.embedText(texts, control));
      const results = await app.clip.run(reply, tasks);
      const textResult = texts.length > 0 ? results.pop()! : undefined;
      if (textResult?.status === 'rejected') throw toHttpError(textResult.reason);
      if (uploads.length === 1 && texts.length === 0 && results[0]!.status === 'rejected') throw toHttpError(results[0]!.reason);
      const images = results.map((r, i) => {
        const file = uploads[i]!.name;
        if (r.status === 'fulfilled') {
          const f = r.value as Float32Array;
          return { file, dim: f.length, features: featureVector(f) };
        }
        return { file, error: rowError(r.reason) };
      });
      const textRows = textResult ? (textResult.value as Float32Array[]).map((f, i) => ({ text: texts[i]!, features: featureVector(f) })) : [];
      return { model: engine.name, positional, dim: engine.architecture.embedDim, images, texts: textRows };
    },
  );
}
