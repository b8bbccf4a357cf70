/**
 * Which file of a model folder (or a Hugging Face repository) holds the weights, and which config goes with it:
 * the publishers' naming conventions, with nothing read but directory entries, so that the hub can apply them
 * before anything is downloaded without loading the checkpoint readers.
 */
import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { configFileFor } from './file-names.js';

export { OPEN_CLIP_CONFIG, TRANSFORMERS_CONFIG, WEIGHT_FILES, configFileFor } from './file-names.js';

/** The config file the naming conventions put beside a weights file, if it is there. */
export async function configBeside(weightsPath: string): Promise<string | null> {
  const name = configFileFor(basename(weightsPath));
  if (!name) return null;
  const path = join(dirname(weightsPath), name);
  return stat(path).then(
    (s) => (s.isFile() ? path : null),
    () => null,
  );
}
