/**
 * Connections to Redis: one URL says everything (`redis://[:password@]host[:port][/db]`, `rediss://` for TLS), as
 * ioredis reads it. A command-line client gives up soon on a Redis that is not there (E_REDIS, saying where it
 * looked); a worker keeps trying, so that it rides out a Redis restart and goes on with the jobs Redis kept (AOF).
 */
import { Redis, type RedisOptions } from 'ioredis';
import { ClipIqaError, errorMessage } from '../errors.js';

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

function checkUrl(url: string): void {
  if (!/^rediss?:\/\//i.test(url)) {
    throw new ClipIqaError('E_OPTION', `--redis ${redactUrl(url)}: give a Redis URL, redis://[:password@]host[:port][/db] or rediss://… for TLS`);
  }
}

/** How a client lives: `client` fails soon when Redis is away; `worker` reconnects for ever (BullMQ needs no retry cap). */
export type ConnectionRole = 'client' | 'worker';

export function connect(url: string, role: ConnectionRole): Redis {
  checkUrl(url);
  const options: RedisOptions =
    role === 'worker'
      ? { maxRetriesPerRequest: null, enableReadyCheck: false, retryStrategy: (times) => Math.min(200 * times, 2000) }
      : { maxRetriesPerRequest: 2, connectTimeout: 5000, retryStrategy: (times) => (times > 3 ? null : 200 * times) };
  const redis = new Redis(url, { ...options, lazyConnect: true });
  // Errors surface where a command fails; the event alone would otherwise crash the process.
  redis.on('error', () => undefined);
  return redis;
}

export function redisError(url: string, e: unknown): ClipIqaError {
  if (e instanceof ClipIqaError) return e;
  return new ClipIqaError('E_REDIS', `Redis at ${redactUrl(url)}: ${errorMessage(e) || 'connection failed'}; is redis-server running there, and the URL (password, rediss:// for TLS) right?`, {
    cause: e,
  });
}

/** A connected client, or E_REDIS naming the server. */
export async function open(url: string, role: ConnectionRole): Promise<Redis> {
  const redis = connect(url, role);
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (e) {
    redis.disconnect();
    throw redisError(url, e);
  }
}
