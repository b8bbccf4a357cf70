import { expect } from 'vitest';
import { ClipIqaError } from '../../src/errors.js';

/** The ClipIqaError a promise rejects with; fails the test if it resolves or rejects with anything else. */
export async function rejects(p: Promise<unknown>): Promise<ClipIqaError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ClipIqaError);
    return e as ClipIqaError;
  }
  throw new Error('expected the promise to reject');
}
