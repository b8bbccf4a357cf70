/** GET /v1/models and GET /v1/prompts: what this server scores with and what it can score, for clients and the page. */
import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { DEFAULT_REGISTRY } from '../../hub/registry.js';
import { ATTRIBUTES, ATTRIBUTE_SETS, DEFAULT_ATTRIBUTES, ENSEMBLE_PAIRS, type NoisinessPolarity, findAttribute } from '../../iqa/prompts.js';
import { pixelsWithin } from '../../model/memory.js';
import { describeArchitecture } from '../../weights/architecture.js';
import { inferenceErrors, modelsResponse, promptsResponse } from '../schemas.js';

const { 401: unauthorized, 503: notReady } = inferenceErrors;

/** The name of the set that is the default, for clients that show it. */
const defaultSet = Object.entries(ATTRIBUTE_SETS).find(([, v]) => v.join() === DEFAULT_ATTRIBUTES.join())?.[0] ?? 'paper';

/** A context's file name, not where it lies on the server. */
export const contextName = (source: string | undefined): string | null => (source === undefined ? null : basename(source));

/** GET /v1/prompts's answer. Polarity is the server's (--noisiness): the prompts listed are the prompts scored. */
export function promptsInfo(noisiness: NoisinessPolarity) {
  const attributes = ATTRIBUTES.map((a) => findAttribute(a.name, noisiness)!).map((a) => ({
    name: a.name,
    group: a.group,
    positive: a.positive,
    negative: a.negative,
    high: a.high,
    low: a.low,
  }));
  return {
    attributes,
    sets: ATTRIBUTE_SETS,
    default: defaultSet,
    noisiness,
    ensemble: ENSEMBLE_PAIRS.map((p) => ({ positive: p.positive, negative: p.negative })),
  };
}

export async function infoRoutes(app: FastifyInstance): Promise<void> {
  const settings = app.clip.settings;
  // The registry does not change while the server runs.
  const registry = DEFAULT_REGISTRY.entries.map((e) => ({
    name: e.name,
    kind: e.kind,
    aliases: [...(e.aliases ?? [])],
    description: e.description,
    ...(e.kind === 'model' ? { architecture: describeArchitecture(e.architecture) } : {}),
    ...(e.kind === 'context' ? { baseModel: e.baseModel } : {}),
    sizeBytes: e.sizeBytes,
    license: e.license,
  }));

  app.get(
    '/v1/models',
    {
      config: { auth: true, model: true },
      schema: {
        summary: 'The model served, the limits, and the registry',
        description: 'The loaded model (maps: whether per-region score maps are available), the request limits, and every name `-m` accepts.',
        tags: ['models'],
        response: { 200: modelsResponse, 401: unauthorized, 503: notReady },
      },
    },
    async () => {
      const engine = app.clip.engine;
      const { vision } = engine.architecture;
      const precision = settings.model.precision ?? settings.model.runtime?.precision;
      return {
        model: {
          name: engine.name,
          description: engine.describe(),
          family: vision.family,
          resolution: vision.resolution,
          embedDim: engine.architecture.embedDim,
          logitScale: engine.logitScale,
          positional: settings.positional,
          maps: vision.family === 'resnet',
          plus: contextName(engine.context?.source),
        },
        limits: {
          maxUploadBytes: settings.maxUploadBytes,
          maxFiles: settings.maxFiles,
          maxPixels: settings.maxPixels,
          maxImageMemory: app.clip.imageMemory,
          // What that memory allows a square image (plain scores), or maxPixels if that is less.
          maxImagePixels: Math.min(settings.maxPixels, pixelsWithin(engine.architecture, app.clip.imageMemory, { precision })),
          maxInFlightBytes: settings.maxInFlightBytes,
          maxPrompts: settings.maxPrompts,
          concurrency: settings.concurrency,
          queue: settings.queue,
          timeoutMs: settings.timeoutMs,
          urlFetch: settings.allowUrlFetch !== undefined,
          auth: settings.token !== undefined,
        },
        registry,
      };
    },
  );

  const prompts = promptsInfo(settings.noisiness);
  app.get(
    '/v1/prompts',
    {
      config: { auth: true },
      schema: {
        summary: 'Built-in attributes and sets',
        description: 'Every attribute with its antonym prompts and what a high score means (as `clip-iqa prompts --json`), the sets, and the default.',
        tags: ['models'],
        response: { 200: promptsResponse, 401: unauthorized },
      },
    },
    async () => prompts,
  );
}
