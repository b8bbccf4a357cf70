/**
 * The browser build's `calibration.ts`. The browser build runs float32 only (its API refuses `precision: 'int8'`:
 * WASM has no VNNI kernels to gain from, and calibrating needs sharp's decoding of the embedded photographs), so
 * nothing here is reached; the exports keep the encoder's imports whole.
 */
import { ClipIqaError } from '../errors.js';
import type { ActivationRange } from '../graph/quantize.js';

export const CALIBRATION_ID = 'int8-ranges-browser';

export interface CalibrationOptions {
  readonly clip?: number;
  readonly combine?: 'mean' | 'max';
  readonly pixels?: readonly import('./types.js').PixelBatch[];
}

const refused = (): never => {
  throw new ClipIqaError('E_OPTION', "precision 'int8' is not available in the browser build; use float32");
};

export const calibrationPhotographs = async (): Promise<never> => refused();
export const calibrateResNet = async (): Promise<Map<string, ActivationRange>> => refused();
