/**
 * Every failure a user can cause surfaces as a ClipIqaError: a stable `code` for programs,
 * and a message that says which input, what is wrong and what to do about it.
 */
export type ErrorCode =
  | 'E_WEIGHTS_FORMAT' // a checkpoint file that is not what it claims to be, truncated or corrupt
  | 'E_WEIGHTS_MISSING' // a state dict without a tensor the architecture needs
  | 'E_PICKLE_REFUSED' // a pickle naming a global outside the allow-list
  | 'E_ARCHITECTURE' // a state dict whose shapes do not describe a CLIP model
  | 'E_TOKENIZER' // text that cannot be tokenized (too long, bad vocabulary file)
  | 'E_IMAGE' // an image that cannot be decoded or is unusable
  | 'E_IMAGE_TOO_SMALL' // an image too small to give a feature map
  | 'E_OPTION' // an option with a bad value
  | 'E_PROMPT' // an unknown attribute or malformed prompt pair
  | 'E_CONTEXT' // a CLIP-IQA+ context that is missing or does not fit the model
  | 'E_RUNTIME' // onnxruntime failed
  | 'E_DEVICE' // an execution provider (--device) that this machine's onnxruntime-node cannot use
  | 'E_DOWNLOAD' // fetching a model failed
  | 'E_CHECKSUM' // a downloaded file does not have the expected SHA-256
  | 'E_OFFLINE' // a file is needed but offline mode forbids fetching it
  | 'E_CACHE' // the model cache cannot be written
  | 'E_OUTPUT' // a results file or report cannot be written
  | 'E_RESULTS' // a saved results file that is not results (clip-iqa report)
  | 'E_URL' // a URL that may not be fetched (fetching off, not http(s), host not allowed, credentials)
  | 'E_FETCH' // fetching an image URL failed (status, network, redirects, timeout)
  | 'E_TOO_LARGE' // an image from a URL or standard input over the byte limit
  | 'E_NOT_FOUND' // a file or model name that does not exist
  | 'E_REDIS' // Redis cannot be reached or refused a command (clip-iqa queue, worker)
  | 'E_QUEUE'; // a queued image that the queue gave up on (its workers died too often while scoring it)

export class ClipIqaError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClipIqaError';
    this.code = code;
  }
}

export function isClipIqaError(e: unknown): e is ClipIqaError {
  return e instanceof ClipIqaError;
}

/** The message of anything thrown, for reports that must go on past a failure. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The `code` of a Node system error (`ENOENT`, `EACCES`, …), undefined for anything else. */
export function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

export function isErrno(e: unknown, ...codes: string[]): boolean {
  const code = errCode(e);
  return code !== undefined && codes.includes(code);
}
