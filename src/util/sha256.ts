/** SHA-256 of bytes, synchronously: Node's crypto here, a small JavaScript implementation in `sha256.browser.ts`. */
import { createHash } from 'node:crypto';

export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
