/**
 * The images and options of a scoring or embedding request, whichever way they came: multipart files under any
 * field name (`curl -F image=@a.jpg -F photo=@b.png`) with options as form fields, a raw image body with options
 * as query parameters, or `url=` parameters. Form fields and query parameters share names and are validated by
 * the route's query schema; a repeatable option (prompt, url, text) collects values from both.
 */
import type { FastifyRequest } from 'fastify';
import { HttpError, describeValidation } from './errors.js';
import { fetchImage } from './fetch.js';
import { RAW_IMAGE_TYPES, type Upload, acceptablePartType, checkImageHeader } from './limits.js';
import type { Settings } from './options.js';

export interface RequestInput<O> {
  readonly uploads: Upload[];
  /** Query parameters and form fields (or JSON body fields), merged and validated. */
  readonly options: O;
}

interface QuerySchema {
  readonly properties: Readonly<Record<string, { readonly type?: unknown }>>;
}

const RAW_BODY_NAME = '<body>';

/** Unknown option names are refused rather than ignored: a misspelt `atributes=` must not silently score the defaults. */
function checkNames(names: Iterable<string>, schema: QuerySchema, where: string): void {
  const known = Object.keys(schema.properties);
  for (const name of names) {
    if (!known.includes(name)) {
      throw new HttpError(400, 'E_BAD_REQUEST', `unknown ${where} "${name}"; this route takes ${known.join(', ')}`);
    }
  }
}

/** Query parameters and form fields in one object: fields override query values, repeatable options accumulate. */
function merge(query: Record<string, unknown>, fields: Map<string, string[]>, schema: QuerySchema): Record<string, unknown> {
  const out: Record<string, unknown> = { ...query };
  for (const [name, values] of fields) {
    if (schema.properties[name]?.type === 'array') {
      const before = out[name];
      out[name] = [...(Array.isArray(before) ? (before as unknown[]) : before === undefined ? [] : [before]), ...values];
    } else {
      out[name] = values[values.length - 1];
    }
  }
  return out;
}

/** Validates the merged options with the route's own (compiled) query schema: same coercion, same messages. */
function validate<O>(request: FastifyRequest, data: Record<string, unknown>): O {
  const check = request.getValidationFunction('querystring');
  if (check && !check(data)) throw new HttpError(400, 'E_BAD_REQUEST', describeValidation(check.errors ?? [], 'option'));
  return data as O;
}

/**
 * Reads the request's images and options. `json` lets a route take options as a JSON body (embed: texts only).
 * Every upload's header has been checked (signature, pixel count) when this returns.
 */
export async function readInput<O extends { url?: string[]; name?: string }>(
  request: FastifyRequest,
  settings: Settings,
  schema: QuerySchema,
  options: { json?: boolean } = {},
): Promise<RequestInput<O>> {
  // (Query parameters were validated by fastify before the handler ran, unknown names included.)
  const uploads: Upload[] = [];
  let raw: Buffer | undefined;
  const fields = new Map<string, string[]>();
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();

  if (request.isMultipart()) {
    for await (const part of request.parts()) {
      if (part.type === 'field') {
        if (typeof part.value !== 'string') continue;
        fields.set(part.fieldname, [...(fields.get(part.fieldname) ?? []), part.value]);
        continue;
      }
      // A form's file input with nothing chosen still sends an empty, nameless part.
      if (!part.filename) {
        await part.toBuffer();
        continue;
      }
      if (!acceptablePartType(part.mimetype)) {
        part.file.resume();
        throw new HttpError(415, 'E_MEDIA_TYPE', `${part.filename}: a ${part.mimetype} file is not an image; upload JPEG, PNG, WebP, AVIF, TIFF or GIF`);
      }
      uploads.push({ name: part.filename, bytes: await part.toBuffer(), contentType: part.mimetype });
    }
    checkNames(fields.keys(), schema, 'form field');
  } else if (Buffer.isBuffer(request.body) && RAW_IMAGE_TYPES.test(type)) {
    raw = request.body;
  } else if (type === 'application/json' && options.json) {
    const body = (request.body ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(body)) fields.set(k, Array.isArray(v) ? v.map(String) : [String(v)]);
    checkNames(fields.keys(), schema, 'JSON field');
  } else if (type !== '' || (request.body !== undefined && request.body !== null)) {
    throw new HttpError(
      415,
      'E_MEDIA_TYPE',
      `a ${type || 'body without a content type'} is not taken here: send multipart/form-data (curl -F image=@photo.jpg) or a raw image with an image/* content type` +
        (options.json ? ', or JSON {"text": [...]}' : ''),
    );
  }

  const merged = validate<O>(request, merge(request.query as Record<string, unknown>, fields, schema));
  if (raw) uploads.push({ name: merged.name ?? RAW_BODY_NAME, bytes: raw, contentType: type });
  const urls = merged.url ?? [];
  if (urls.length > 0) {
    if (!settings.allowUrlFetch) {
      throw new HttpError(400, 'E_URL', 'this server does not fetch URLs (start it with --allow-url-fetch <hosts> to allow some); upload the image instead');
    }
    if (uploads.length + urls.length > settings.maxFiles) {
      throw new HttpError(413, 'E_TOO_LARGE', `at most ${settings.maxFiles} images per request, got ${uploads.length + urls.length}`);
    }
    const limits = { allow: settings.allowUrlFetch, maxBytes: settings.maxUploadBytes, timeoutMs: settings.fetchTimeoutMs };
    // The first failure answers the request; the other fetches stop then, instead of downloading until their deadline.
    const stop = new AbortController();
    try {
      uploads.push(...(await Promise.all(urls.map((u) => fetchImage(u, limits, stop.signal)))));
    } finally {
      stop.abort();
    }
  }
  for (const upload of uploads) await checkImageHeader(upload, settings.maxPixels);
  return { uploads, options: merged };
}
