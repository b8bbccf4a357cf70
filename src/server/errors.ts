/**
 * Every error leaves the server as `{"error": {"code", "message"}}` with a status that says whose fault it is:
 * the library's ClipIqaError codes keep their names (a client that scores locally and remotely sees the same
 * codes), and the server adds its own for what only HTTP has (sizes, media types, queueing, auth, readiness).
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { type ErrorCode, errorMessage, isClipIqaError } from '../errors.js';

export type ServerErrorCode =
  | 'E_TOO_LARGE' // an upload over the size limit, or too many files or fields
  | 'E_TOO_MANY_PIXELS' // an image whose header announces more pixels than allowed (decompression bomb)
  | 'E_MEDIA_TYPE' // a body that is neither multipart nor an image
  | 'E_BAD_REQUEST' // a malformed request: bad parameter, no image, broken multipart
  | 'E_BUSY' // the inference queue is full: retry after Retry-After seconds
  | 'E_TIMEOUT' // the request could not be answered in time
  | 'E_UNAUTHORIZED' // a bearer token is required and was missing or wrong
  | 'E_NOT_READY' // the model is still loading, or the server is shutting down
  | 'E_WORKER' // the model process scoring the image ended (out of memory, crashed, or stopped at another request's deadline)
  | 'E_HOST' // a Host header this server does not answer (DNS rebinding)
  | 'E_ORIGIN' // a browser request from an origin that may not use the API (CORS)
  | 'E_URL' // a `url=` parameter that may not be fetched (disabled, scheme, host not allowed)
  | 'E_FETCH' // fetching an allowed URL failed (status, network, timeout)
  | 'E_ROUTE' // no such route
  | 'E_INTERNAL'; // a bug: logged with its stack, reported without it

export type ApiErrorCode = ErrorCode | ServerErrorCode;

/** An error with its HTTP status and, for 429/503, headers such as Retry-After. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: ApiErrorCode;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, code: ApiErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/**
 * Status of a library error: what the client sent is wrong (400) unless the runtime itself failed (500).
 * E_NOT_FOUND cannot come from uploaded bytes; it would mean a server-side file is missing.
 */
export function statusOfLibraryCode(code: ErrorCode): number {
  switch (code) {
    case 'E_IMAGE':
    case 'E_IMAGE_TOO_SMALL':
    case 'E_OPTION':
    case 'E_PROMPT':
    case 'E_TOKENIZER':
    case 'E_CONTEXT':
      return 400;
    default:
      return 500;
  }
}

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

export const errorBody = (code: string, message: string): ErrorBody => ({ error: { code, message } });

/** The `error` of one image's row when the others of its request were answered (`{file, error}`). */
export const rowError = (e: unknown): ErrorBody['error'] => ({ code: isClipIqaError(e) ? e.code : 'E_INTERNAL', message: errorMessage(e) });

interface ValidationIssue {
  readonly instancePath?: string;
  readonly message?: string;
  readonly params?: Record<string, unknown>;
}

/** An AJV error as a sentence that names the parameter: `query parameter "positional" must be one of none, …`. */
export function describeValidation(issues: readonly ValidationIssue[], part: string): string {
  const what = part === 'querystring' ? 'query parameter' : part === 'body' ? 'field' : part;
  const first = issues[0];
  if (!first) return `the ${part} is invalid`;
  const unknown = first.params?.additionalProperty;
  if (typeof unknown === 'string') return `unknown ${what} "${unknown}"`;
  const name = (first.instancePath ?? '').split('/').filter((s) => s && !/^\d+$/.test(s)).join('.');
  const allowed = first.params?.allowedValues;
  const message = Array.isArray(allowed) ? `must be one of ${allowed.join(', ')}` : (first.message ?? 'is invalid');
  return name ? `${what} "${name}" ${message}` : `the ${part} ${message}`;
}

/** Fastify's own errors (body parsing, validation, limits) in the API's vocabulary. */
function fromFastifyError(e: FastifyError): HttpError | undefined {
  if (e.validation) return new HttpError(400, 'E_BAD_REQUEST', describeValidation(e.validation, e.validationContext ?? 'request'));
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
      return new HttpError(413, 'E_TOO_LARGE', 'the upload is larger than the server accepts (see maxUploadBytes in GET /v1/models)');
    case 'FST_FILES_LIMIT':
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new HttpError(413, 'E_TOO_LARGE', `too many files or form fields in one request (${e.message}); split the request`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return new HttpError(415, 'E_MEDIA_TYPE', 'send images as multipart/form-data (curl -F image=@photo.jpg) or as a raw body with an image/* content type');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_PROTO_VIOLATION':
    case 'FST_MP_PREMATURE_CLOSE':
    case 'FST_INVALID_JSON_FIELD_ERROR':
      return new HttpError(400, 'E_BAD_REQUEST', e.message);
  }
  if (e.statusCode === 400 && e.name === 'SyntaxError') return new HttpError(400, 'E_BAD_REQUEST', `the JSON body does not parse: ${e.message}`);
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new HttpError(e.statusCode, 'E_BAD_REQUEST', e.message);
  }
  return undefined;
}

/** Any thrown value as an HttpError; unknown ones become a 500 whose details stay in the log. */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (isClipIqaError(e)) return new HttpError(statusOfLibraryCode(e.code), e.code, e.message);
  const mapped = e instanceof Error ? fromFastifyError(e as FastifyError) : undefined;
  return mapped ?? new HttpError(500, 'E_INTERNAL', 'internal error; the server log has the details');
}

export function sendError(reply: FastifyReply, error: HttpError): FastifyReply {
  return reply.code(error.status).headers(error.headers).type('application/json; charset=utf-8').send(errorBody(error.code, error.message));
}

/** The error and not-found handlers, for the whole server (hence fastify-plugin: no encapsulation). */
export const errorHandling = fp(
  async (app: FastifyInstance) => {
    app.setErrorHandler((e: unknown, request: FastifyRequest, reply: FastifyReply) => {
      const error = toHttpError(e);
      // A failure of the server itself gets its stack in the log. Expected unavailability (loading, a deadline, a
      // restarting model process, an upstream URL) is a fact about the moment, logged without a stack, and a
      // readiness probe's 503 during loading is already in the request line.
      if (error.status === 500) request.log.error({ err: e }, 'request failed');
      else if (error.status > 500 && error.code !== 'E_NOT_READY') request.log.warn({ code: error.code, reason: error.message }, 'request not served');
      return sendError(reply, error);
    });
    app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) =>
      sendError(reply, new HttpError(404, 'E_ROUTE', `no route ${request.method} ${request.url.split('?')[0]}; the API is described at /openapi.json and /docs`)),
    );
  },
  { name: 'clip-iqa-errors' },
);

/**
 * Fastify's clientErrorHandler: what Node answers itself, before any route (malformed HTTP, a request not received
 * in time, headers over Node's 16 KiB), in the API's error shape instead of fastify's own.
 */
export function clientError(e: Error & { code?: string }, socket: Socket): void {
  if (e.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message] =
    e.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'E_TIMEOUT', 'the request did not arrive in time; send it faster']
      : e.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'E_TOO_LARGE', 'the request headers are larger than the server takes (16 KiB)']
        : [400, 'E_BAD_REQUEST', 'the request is not well-formed HTTP'];
  const body = JSON.stringify(errorBody(code, message));
  // A response already under way cannot be replaced (Node's own handler checks the same).
  const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (socket.writable && !started) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(e);
}
