/** POST /v1/score: how uploaded images look and feel, as `clip-iqa score --json` reports them. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ImageScores, ScoreOptions } from '../../api.js';
import { type ImageRow, roundRow, runHeader } from '../../cli/output.js';
import type { PositionalMode } from '../../model/types.js';
import { HttpError, rowError, toHttpError } from '../errors.js';
import { readInput } from '../inputs.js';
import { checkImageMemory } from '../limits.js';
import type { Engine } from '../options.js';
import { inferenceErrors, scoreQuery, scoreResponse } from '../schemas.js';
import { contextName } from './info.js';

interface ScoreParams {
  attributes?: string;
  prompt?: string[];
  ensemble?: boolean;
  plus?: boolean;
  positional?: PositionalMode;
  maps?: string;
  url?: string[];
  name?: string;
}

/** An image row plus its maps, which the CLI's rows do not have. */
type Row = ImageRow & { maps?: { name: string; width: number; height: number; scores: number[] }[] };

/** Maps to 1e-4 (scores are rounded as the CLI's): it keeps them small and is far below what a heat map shows. */
const round = (v: number, digits: number): number => Math.round(v * 10 ** digits) / 10 ** digits;

/** `maps=true` means every scored pair, `false` or empty none, anything else a list of score names. */
function mapNames(value: string | undefined, names: readonly string[]): string[] {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '' || v === 'false' || v === '0' || v === 'no') return [];
  if (v === 'true' || v === '1' || v === 'yes' || v === 'all') return [...names];
  return (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

function row(result: PromiseSettledResult<ImageScores>, file: string): Row {
  if (result.status === 'rejected') return { file, error: rowError(result.reason) };
  const r = result.value;
  const out: Row = roundRow({ file, width: r.width, height: r.height, scores: r.scores });
  if (r.maps) out.maps = r.maps.map((m) => ({ name: m.name, width: m.width, height: m.height, scores: Array.from(m.scores, (v) => round(v, 4)) }));
  return out;
}

export async function scoreRoute(app: FastifyInstance): Promise<void> {
  const settings = app.clip.settings;
  app.post(
    '/v1/score',
    {
      config: { auth: true, upload: true, model: true, queued: true },
      schema: {
        summary: 'Score images',
        description:
          'Upload one or many images as multipart/form-data under any field names (`curl -F image=@photo.jpg`), or one image as the raw body ' +
          '(`Content-Type: image/jpeg`). Options come as query parameters or form fields, named and defaulted as `clip-iqa score`. ' +
          'Each image gets {file, width, height, scores}; with `maps`, per-region maps too. A request with one image that cannot be scored ' +
          'answers with that error; with several, the others are scored and the failure is reported in its row.',
        tags: ['scoring'],
        querystring: scoreQuery,
        response: { 200: scoreResponse, ...inferenceErrors },
      },
    },
    async (request: FastifyRequest, reply: FastifyReply) => {
      const started = performance.now();
      const engine = app.clip.engine;
      const { uploads, options: params } = await readInput<ScoreParams>(request, settings, scoreQuery);
      if (uploads.length === 0) {
        throw new HttpError(400, 'E_BAD_REQUEST', 'no image: upload one (curl -F image=@photo.jpg), send it as the body, or give url=');
      }
      const prompts = params.prompt ?? [];
      if (prompts.length > settings.maxPrompts) {
        throw new HttpError(400, 'E_PROMPT', `at most ${settings.maxPrompts} prompt pairs per request, got ${prompts.length}`);
      }
      const base: ScoreOptions = {
        attributes: params.attributes,
        prompts,
        ensemble: params.ensemble,
        plus: params.plus,
        positional: params.positional,
      };
      // Planning first turns a bad attribute or pair into a 400 before anything is queued.
      const plan = engine.plan(base);
      const options: ScoreOptions = { ...base, maps: mapNames(params.maps, plan.pairs.map((p) => p.name)) };
      engine.plan(options);
      const memory = { architecture: engine.architecture, settings, limit: app.clip.imageMemory, maps: options.maps!.length > 0 };
      for (const u of uploads) checkImageMemory(u, u.info, memory);

      const results = await app.clip.run(
        reply,
        uploads.map((u) => (e: Engine, control) => e.score(u.bytes, { ...options, decode: { name: u.name } }, control)),
      );
      if (results.length === 1 && results[0]!.status === 'rejected') throw toHttpError(results[0]!.reason);
      const images = results.map((r, i) => row(r, uploads[i]!.name));
      const failed = images.filter((r) => 'error' in r).length;
      return {
        model: engine.name,
        positional: plan.positional,
        // The context's file name, not where it lies on the server.
        prompts: runHeader({ name: engine.name, context: engine.context && { source: contextName(engine.context.source)! } }, plan).prompts,
        images,
        summary: { images: images.length, failed, seconds: round((performance.now() - started) / 1000, 3) },
      };
    },
  );
}
