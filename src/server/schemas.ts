/**
 * JSON schemas of every route: fastify validates requests and serialises responses with them, and the OpenAPI
 * document at /openapi.json is generated from them. Names and defaults of options are the CLI's (`clip-iqa score
 * --help`), and an image row is the CLI's ImageRow (`clip-iqa score --json`), so a result reads the same
 * whichever way it was made.
 */
import { ATTRIBUTE_SETS } from '../iqa/prompts.js';
import { POSITIONAL_MODES } from '../model/types.js';

const setNames = Object.keys(ATTRIBUTE_SETS).join(', ');

export const errorSchema = {
  $id: 'ApiError',
  type: 'object',
  description: 'Every error: a stable code for programs and a message that says what to do.',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: {
          type: 'string',
          description: 'E_IMAGE, E_PROMPT, E_OPTION, E_TOO_LARGE, E_TOO_MANY_PIXELS, E_MEDIA_TYPE, E_BUSY, E_TIMEOUT, E_UNAUTHORIZED, E_HOST, E_ORIGIN, E_NOT_READY, E_WORKER, …',
        },
        message: { type: 'string' },
      },
    },
  },
} as const;

const errorRef = { $ref: 'ApiError#' } as const;

/** Error responses of a route that scores or embeds images. */
export const inferenceErrors = {
  400: { ...errorRef, description: 'A bad image, option or prompt (E_IMAGE, E_IMAGE_TOO_SMALL, E_OPTION, E_PROMPT, E_BAD_REQUEST, E_URL)' },
  401: { ...errorRef, description: 'A bearer token is required (E_UNAUTHORIZED)' },
  403: { ...errorRef, description: 'A Host header the server does not answer (E_HOST), or a web page from an origin that may not call the API (E_ORIGIN)' },
  408: { ...errorRef, description: 'The request did not arrive within the server’s timeout (E_TIMEOUT)' },
  413: {
    ...errorRef,
    description: 'An upload over the size limit or too many files (E_TOO_LARGE), or an image with more pixels, or needing more memory, than allowed (E_TOO_MANY_PIXELS)',
  },
  415: { ...errorRef, description: 'A body that is neither multipart/form-data nor an image (E_MEDIA_TYPE)' },
  429: { ...errorRef, description: 'The queue, or the memory for request bodies, is full (E_BUSY): retry after the Retry-After header’s seconds' },
  502: { ...errorRef, description: 'A `url=` fetch failed (E_FETCH)' },
  504: { ...errorRef, description: 'A `url=` fetch took too long (E_FETCH)' },
  503: {
    ...errorRef,
    description: 'The model is loading or the server is shutting down (E_NOT_READY), the answer took too long (E_TIMEOUT), or the model process scoring it ended (E_WORKER)',
  },
  500: { ...errorRef, description: 'A bug or an onnxruntime failure (E_INTERNAL, E_RUNTIME)' },
} as const;

const repeatable = (description: string, maxLength: number, maxItems: number) =>
  ({ type: 'array', items: { type: 'string', maxLength }, maxItems, description }) as const;

const positional = {
  type: 'string',
  enum: POSITIONAL_MODES,
  description: 'Positional embedding of the image tower: none (CLIP-IQA, default), interpolate, fixed (native size only).',
} as const;

/** Options of POST /v1/score, as query parameters or multipart form fields (same names). */
export const scoreQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    attributes: {
      type: 'string',
      maxLength: 1000,
      description: `Comma-separated attribute and set names (sets: ${setNames}; also ensemble). Default: paper (the paper's twelve). Empty: only your prompt pairs.`,
      examples: ['paper', 'all', 'quality,sharpness'],
    },
    prompt: repeatable('Your own antonym pair "name=positive|negative" (repeatable), e.g. "vivid=Vivid photo.|Dull photo."', 300, 64),
    ensemble: { type: 'boolean', description: "Also report pyiqa's five-pair quality ensemble as `ensemble`." },
    plus: { type: 'boolean', description: 'Report the CLIP-IQA+ score `clipiqa+` (default: true when the server was started with --plus).' },
    positional,
    maps: {
      type: 'string',
      maxLength: 1000,
      description: 'Per-region score maps (ResNet models): true (every scored pair), false (default), or comma-separated score names.',
      examples: ['quality', 'true'],
    },
    url: repeatable('Fetch the image from this URL (repeatable); only when the server allows the host (--allow-url-fetch).', 2048, 16),
    name: { type: 'string', maxLength: 256, description: 'Name of a raw-body image in the result (`file`); default `<body>`.' },
  },
} as const;

/** Texts to embed, as `text=` options or a JSON body: the same limits either way. */
const texts = repeatable('Also embed this text (repeatable).', 1000, 64);

/** Options of POST /v1/embed. */
export const embedQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    text: texts,
    positional,
    url: scoreQuery.properties.url,
    name: scoreQuery.properties.name,
  },
} as const;

/** A JSON body of POST /v1/embed, for texts only. */
export const embedJsonBody = {
  type: 'object',
  additionalProperties: false,
  properties: { text: texts },
} as const;

const scoreMap = {
  type: 'object',
  description: 'Scores of each region of the final feature map (about 1/32 of the image per side), row-major, top row first.',
  required: ['name', 'width', 'height', 'scores'],
  properties: {
    name: { type: 'string' },
    width: { type: 'integer' },
    height: { type: 'integer' },
    scores: { type: 'array', items: { type: 'number' } },
  },
} as const;

const failure = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string' }, message: { type: 'string' } },
} as const;

const imageRow = {
  type: 'object',
  description: 'An image: {file, width, height, scores[, maps]} when scored, {file, error} when not (as `clip-iqa score --json`).',
  required: ['file'],
  properties: {
    file: { type: 'string', description: 'The upload’s file name, the URL, or `name` for a raw body.' },
    width: { type: 'integer', description: 'Size the network saw (after EXIF orientation and any --resize).' },
    height: { type: 'integer' },
    scores: { type: 'object', additionalProperties: { type: 'number' }, description: 'Score name → probability of the positive prompt, in (0, 1).' },
    maps: { type: 'array', items: scoreMap },
    error: failure,
  },
} as const;

export const scoreResponse = {
  type: 'object',
  description: 'The scores, as `clip-iqa score --json` prints them',
  required: ['model', 'positional', 'prompts', 'images', 'summary'],
  properties: {
    model: { type: 'string' },
    positional: { type: 'string' },
    prompts: {
      type: 'object',
      description: 'What each score measures: [positive, negative], a list of pairs (ensemble), or a description (clipiqa+).',
      additionalProperties: {},
    },
    images: { type: 'array', items: imageRow },
    summary: {
      type: 'object',
      required: ['images', 'failed', 'seconds'],
      properties: { images: { type: 'integer' }, failed: { type: 'integer' }, seconds: { type: 'number' } },
    },
  },
} as const;

const vector = { type: 'array', items: { type: 'number' } } as const;

export const embedResponse = {
  type: 'object',
  description: 'Features, as `clip-iqa embed --json` prints them',
  required: ['model', 'positional', 'dim', 'images', 'texts'],
  properties: {
    model: { type: 'string' },
    positional: { type: 'string' },
    dim: { type: 'integer' },
    images: {
      type: 'array',
      items: {
        type: 'object',
        required: ['file'],
        properties: { file: { type: 'string' }, dim: { type: 'integer' }, features: vector, error: failure },
      },
    },
    texts: { type: 'array', items: { type: 'object', required: ['text', 'features'], properties: { text: { type: 'string' }, features: vector } } },
  },
} as const;

const attribute = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    group: { type: 'string', enum: ['look', 'feel', 'extra'] },
    positive: { type: 'string' },
    negative: { type: 'string' },
    high: { type: 'string', description: 'What a score near 1 means.' },
    low: { type: 'string', description: 'What a score near 0 means.' },
  },
} as const;

export const promptsResponse = {
  type: 'object',
  description: 'Attributes, sets and the default, as `clip-iqa prompts --json` prints them',
  properties: {
    attributes: { type: 'array', items: attribute },
    sets: { type: 'object', additionalProperties: { type: 'array', items: { type: 'string' } } },
    default: { type: 'string' },
    noisiness: { type: 'string', enum: ['noisy', 'clean'] },
    ensemble: { type: 'array', items: { type: 'object', properties: { positive: { type: 'string' }, negative: { type: 'string' } } } },
  },
} as const;

export const modelsResponse = {
  type: 'object',
  description: 'The model, the limits and the registry',
  properties: {
    model: {
      type: 'object',
      description: 'The model this server scores with.',
      properties: {
        name: { type: 'string' },
        description: { type: 'string' },
        family: { type: 'string', enum: ['resnet', 'vit'] },
        resolution: { type: 'integer' },
        embedDim: { type: 'integer' },
        logitScale: { type: 'number' },
        positional: { type: 'string' },
        maps: { type: 'boolean', description: 'Per-region score maps available (ResNet models).' },
        plus: { type: ['string', 'null'], description: 'The CLIP-IQA+ context, when loaded.' },
      },
    },
    limits: {
      type: 'object',
      properties: {
        maxUploadBytes: { type: 'integer' },
        maxFiles: { type: 'integer' },
        maxPixels: { type: 'integer', description: 'Largest width×height the decoder takes (checked from the header).' },
        maxImageMemory: { type: 'integer', description: 'Most memory, in bytes, one image may take as estimated for this model (413 beyond).' },
        maxImagePixels: { type: 'integer', description: 'The largest square image (width×height) that memory allows with plain scores, at most maxPixels.' },
        maxInFlightBytes: { type: 'integer', description: 'Bytes of request bodies the server holds at once (429 beyond).' },
        maxPrompts: { type: 'integer' },
        concurrency: { type: 'integer' },
        queue: { type: 'integer' },
        timeoutMs: { type: 'integer' },
        urlFetch: { type: 'boolean' },
        auth: { type: 'boolean' },
      },
    },
    registry: {
      type: 'array',
      description: 'Models, vocabularies and CLIP-IQA+ contexts clip-iqa can fetch by name (`clip-iqa serve -m NAME`).',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          kind: { type: 'string', enum: ['model', 'vocab', 'context'] },
          aliases: { type: 'array', items: { type: 'string' } },
          description: { type: 'string' },
          architecture: { type: 'string' },
          baseModel: { type: 'string' },
          sizeBytes: { type: ['integer', 'null'] },
          license: { type: 'string' },
        },
      },
    },
  },
} as const;

export const statusResponse = {
  type: 'object',
  description: 'The status',
  properties: { status: { type: 'string' }, model: { type: 'string' }, uptimeSeconds: { type: 'number' } },
} as const;
