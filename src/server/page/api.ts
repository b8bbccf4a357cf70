/**
 * The web page's HTTP client (runs in the browser). Requests carry the bearer token when the user gave one; a 401
 * asks for it and retries; a 429 waits for its Retry-After and retries, so dropping fifty photos on a busy
 * server fills the queue politely instead of failing. Errors come back as ApiError with the server's code.
 */

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export interface ApiClient {
  getJson<T>(path: string): Promise<T>;
  post<T>(path: string, body: FormData): Promise<T>;
}

const TOKEN_KEY = 'clip-iqa-token';
const MAX_RETRIES = 6;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `askToken` shows the token dialog; it resolves to the token, or undefined when the user cancels. */
export function createClient(askToken: () => Promise<string | undefined>): ApiClient {
  let token = sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  // Several requests may get 401 at once; they all wait for the one dialog.
  let asking: Promise<string | undefined> | undefined;

  async function request<T>(path: string, init: RequestInit): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const headers = new Headers(init.headers);
      if (token) headers.set('authorization', `Bearer ${token}`);
      let response: Response;
      try {
        response = await fetch(path, { ...init, headers });
      } catch {
        throw new ApiError(0, 'E_NETWORK', 'the server cannot be reached');
      }
      if (response.ok) return (await response.json()) as T;
      let code = `HTTP_${response.status}`;
      let message = response.statusText || `HTTP ${response.status}`;
      try {
        const body = (await response.json()) as { error?: { code?: string; message?: string } };
        code = body.error?.code ?? code;
        message = body.error?.message ?? message;
      } catch {
        // Not JSON (a proxy's page): keep the status line.
      }
      if (response.status === 401 && attempt < MAX_RETRIES) {
        asking ??= askToken().finally(() => (asking = undefined));
        const given = await asking;
        if (given) {
          token = given;
          sessionStorage.setItem(TOKEN_KEY, given);
          continue;
        }
      }
      if ((response.status === 429 || (response.status === 503 && code === 'E_NOT_READY')) && attempt < MAX_RETRIES) {
        const seconds = Number(response.headers.get('retry-after'));
        await sleep((Number.isFinite(seconds) && seconds > 0 ? seconds : 2) * 1000 * (1 + Math.random() * 0.25));
        continue;
      }
      throw new ApiError(response.status, code, message);
    }
  }

  return {
    getJson: (path) => request(path, { method: 'GET' }),
    post: (path, body) => request(path, { method: 'POST', body }),
  };
}

/** Runs `tasks` at most `limit` at a time (the server queues anyway; this keeps its queue for other users too). */
export function limiter(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await task();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}
