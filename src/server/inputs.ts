/**
 * The images and options of a scoring or embedding request, whichever way they came: multipart files under any
 * field name (`curl -F image=@a.jpg -F photo=@b.png`) with options as form fields, a raw image body with options
 * as query parameters, or `url=` parameters. Form fields and query parameters share names and are validated by
 * the route's query schema; a repeatable option (prompt, url, text) collects values from both.
 */
import type { MultipartFile } from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';
import type { ImageInfo } from '../image/decode.js';
import type { RequestBody } from './bodies.js';
import { HttpError, describeValidation } from './errors.js';
import { fetchImage } from './fetch.js';
import { RAW_IMAGE_TYPES, type Upload, acceptablePartType, checkImageHeader } from './limits.js';
import type { Settings } from './options.js';

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

/** An upload whose header passed the checks, with what the header said. */
export type CheckedUpload = Upload & { readonly info: ImageInfo };

/** Settles with `promise`, or rejects with the signal's reason once it aborts (the promise is left to itself). */
function beforeAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}

/** Errors busboy and @fastify/multipart raise for a body that is not well-formed multipart (their codes are mapped in errors.ts). */
function multipartError(e: unknown): unknown {
  if (e instanceof HttpError || (e as { code?: unknown }).code !== undefined) return e;
  return new HttpError(400, 'E_BAD_REQUEST', `the multipart body is malformed (${(e as Error).message ?? String(e)}); send it as curl -F image=@photo.jpg does`, {
    connection: 'close',
  });
}

/** One file part, counted against the body budget chunk by chunk and cut off at the deadline. */
async function readFilePart(part: MultipartFile, body: RequestBody | undefined, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const onDeadline = () => part.file.destroy(body!.deadline.reason as Error);
  body?.deadline.addEventListener('abort', onDeadline, { once: true });
  try {
    for await (const chunk of part.file as AsyncIterable<Buffer>) {
      body?.take(chunk.length, part.filename);
      total += chunk.length;
      chunks.push(chunk);
    }
  } finally {
    body?.deadline.removeEventListener('abort', onDeadline);
  }
  if (part.file.truncated) {
    throw new HttpError(413, 'E_TOO_LARGE', `${part.filename}: larger than the ${maxBytes} bytes this server takes per upload (see maxUploadBytes in GET /v1/models)`, {
      connection: 'close',
    });
  }
  return Buffer.concat(chunks, total);
}

/**
 * Reads the request's images and options. `json` lets a route take options as a JSON body (embed: texts only).
 * Every upload's header has been checked (signature, pixel count) when this returns; bodies and downloads were
 * counted against the server's budget as they arrived.
 */
export async function readInput<O extends { url?: string[]; name?: string }>(
  request: FastifyRequest,
  settings: Settings,
  schema: QuerySchema,
  options: { json?: boolean } = {},
): Promise<{ uploads: CheckedUpload[]; options: O }> {
  // (Query parameters were validated by fastify before the handler ran, unknown names included.)
  const uploads: Upload[] = [];
  let raw: Buffer | undefined;
  const fields = new Map<string, string[]>();
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const body = request.uploadBody;

  if (request.isMultipart()) {
    const parts = request.parts()[Symbol.asyncIterator]();
    const deadline = body?.deadline ?? new AbortController().signal;
    try {
      for (;;) {
        const next = await beforeAbort(parts.next(), deadline);
        if (next.done) break;
        const part = next.value;
        if (part.type === 'field') {
          if (typeof part.value !== 'string') continue;
          body?.take(part.value.length, `field ${part.fieldname}`);
          fields.set(part.fieldname, [...(fields.get(part.fieldname) ?? []), part.value]);
          continue;
        }
        // A form's file input with nothing chosen still sends an empty, nameless part.
        if (!part.filename) {
          await readFilePart(part, body, settings.maxUploadBytes);
          continue;
        }
        if (!acceptablePartType(part.mimetype)) {
          part.file.resume();
          throw new HttpError(415, 'E_MEDIA_TYPE', `${part.filename}: a ${part.mimetype} file is not an image; upload JPEG, PNG, WebP, AVIF, TIFF or GIF`);
        }
        uploads.push({ name: part.filename, bytes: await readFilePart(part, body, settings.maxUploadBytes), contentType: part.mimetype });
      }
    } catch (e) {
      throw multipartError(e);
    }
    checkNames(fields.keys(), schema, 'form field');
  } else if (Buffer.isBuffer(request.body) && RAW_IMAGE_TYPES.test(type)) {
    raw = request.body;
  } else if (type === 'application/json' && options.json) {
    const json = (request.body ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(json)) fields.set(k, Array.isArray(v) ? v.map(String) : [String(v)]);
    checkNames(fields.keys(), schema, 'JSON field');
  } else if (type !== '' || (request.body !== undefined && request.body !== null)) {
    throw new HttpError(
      415,
      'E_MEDIA_TYPE',
      `a ${type || 'body without a content type'} is not taken here: send multipart/form-data (curl -F image=@photo.jpg) or a raw image with an image/* content type` +
        (options.json ? ', or JSON {"text": [...]}' : ''),
    );
  }

  // Whatever the body was (none, for url= alone), it has arrived: the receiving deadline is over.
  body?.received();
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
    // Each download may grow to maxBytes before its cap cuts it, so that much is taken from the budget before it
    // starts, and what it did not need is given back when it has arrived.
    for (const u of urls) body?.take(limits.maxBytes, u);
    // The first failure answers the request; the other fetches stop then, instead of downloading until their deadline.
    const stop = new AbortController();
    try {
      const fetched = await Promise.all(urls.map((u) => fetchImage(u, limits, stop.signal)));
      for (const f of fetched) body?.keep(limits.maxBytes, f.bytes.length);
      uploads.push(...fetched);
    } finally {
      stop.abort();
    }
  }
  const checked: CheckedUpload[] = [];
  for (const upload of uploads) checked.push({ ...upload, info: await checkImageHeader(upload, settings.maxPixels) });
  return { uploads: checked, options: merged };
}
