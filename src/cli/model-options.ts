/** The options every command that loads a model shares (score, embed, serve), and their translation to the library's. */
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { ClipIqaOptions } from '../api.js';
import { createProgressBar } from '../hub/progress.js';
import type { HubOptions } from '../hub/settings.js';
import { ALPHA_MODES, type DecodeOptions, ICC_MODES, ORIENTATION_MODES, type ResizePolicy } from '../image/decode.js';
import type { NoisinessPolarity } from '../iqa/prompts.js';
import { POSITIONAL_MODES, type PositionalMode } from '../model/types.js';
import { DEVICES, type Device, PRECISIONS, type Precision } from '../runtime/options.js';
import { isImageName } from './inputs.js';

export interface ModelFlags {
  model?: string;
  vocab?: string;
  plus?: string | boolean;
  positional?: PositionalMode;
  noisiness?: NoisinessPolarity;
  threads?: number;
  device?: Device;
  precision?: Precision;
  resize?: ResizePolicy;
  orientation?: DecodeOptions['orientation'];
  alpha?: DecodeOptions['alpha'];
  background?: string;
  icc?: DecodeOptions['icc'];
  referenceDecode?: boolean;
  maxPixels?: number;
  cacheDir?: string;
  offline?: boolean;
  mirror?: string;
  quiet?: boolean;
}

export function positiveInt(what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a positive integer.`);
    return n;
  };
}

/** `short:512` → shorter side 512; `max:1024` → longer side at most 1024; a bare number means `max:`. */
export function parseResize(value: string): ResizePolicy {
  const m = /^(?:(short|shorter|max|long|longer):)?(\d+)(\+)?$/i.exec(value.trim());
  const n = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError('use short:N (shorter side to N, as the official SPAQ protocol), max:N (longer side at most N) or N (= max:N); add + to also enlarge.');
  }
  const upscale = m[3] === '+';
  return m[1] && /^short/i.test(m[1]) ? { shorterSide: n, upscale } : { maxSide: n, upscale };
}

/**
 * `--plus photo.jpg`: commander gives an optional value the next argument, so the first image would be read as a
 * context file. Contexts are never images: an image-named value goes back in front of the command's arguments
 * before commander counts them, so that `clip-iqa --plus photo.jpg` has its one image.
 */
function plusTakesNoImage(cmd: Command): Command {
  const parseOptions = cmd.parseOptions.bind(cmd);
  cmd.parseOptions = (argv) => {
    const parsed = parseOptions(argv);
    const plus: unknown = cmd.getOptionValue('plus');
    if (typeof plus === 'string' && isImageName(plus)) {
      cmd.setOptionValue('plus', true);
      parsed.operands.unshift(plus);
    }
    return parsed;
  };
  return cmd;
}

export function addModelOptions(cmd: Command): Command {
  return plusTakesNoImage(cmd)
    .option('-m, --model <model>', 'CLIP model: registry name (RN50, ViT-B/32, …), hf:ORG/NAME[@REVISION], model folder, file, or URL#sha256=…', 'RN50')
    .option('--vocab <vocab>', 'CLIP BPE vocabulary: file, URL or registry name (default: the copy in the package)')
    .option('--plus [context]', 'add the CLIP-IQA+ score with a learned context: registry name (default clipiqa+), file, hf:ORG/NAME/FILE or URL')
    .addOption(new Option('--positional <mode>', 'positional embedding of the image tower').choices(POSITIONAL_MODES).default('none'))
    .addOption(new Option('--noisiness <polarity>', 'noisy: higher = noisier (official); clean: higher = cleaner (torchmetrics)').choices(['noisy', 'clean']).default('noisy'))
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', positiveInt('--threads'))
    .addOption(new Option('--device <device>', 'where the model runs: cpu, or a GPU through onnxruntime (cuda on Linux x64, coreml on macOS, dml on Windows)').choices(DEVICES).default('cpu'))
    .addOption(new Option('--precision <precision>', 'image tower arithmetic: float32 (reference-exact) or int8 (faster, slightly different features)').choices(PRECISIONS).default('float32'))
    .option('--resize <policy>', 'resize before scoring: short:N, max:N (default: native resolution, as the paper)', parseResize)
    .addOption(new Option('--orientation <mode>', 'apply the EXIF orientation tag (exif) or not (ignore, as the Python references)').choices(ORIENTATION_MODES).default('exif'))
    .addOption(new Option('--alpha <mode>', 'drop transparency (drop, as the references) or composite over --background (flatten)').choices(ALPHA_MODES).default('drop'))
    .option('--background <colour>', 'colour under transparent pixels for --alpha flatten', '#ffffff')
    .addOption(new Option('--icc <mode>', 'convert embedded colour profiles to sRGB (convert) or keep stored values (ignore, as the references)').choices(ICC_MODES).default('convert'))
    .option('--reference-decode', 'decode exactly as the Python references do: --orientation ignore --icc ignore --alpha drop')
    .option('--max-pixels <n>', 'refuse images with more pixels than this, from their header (default: what the model can score in half the memory available)', positiveInt('--max-pixels'))
    .option('--cache-dir <dir>', 'model cache (default: $CLIP_IQA_HOME or the platform cache directory)')
    .option('--offline', 'never use the network; fail if a file is not cached ($CLIP_IQA_OFFLINE=1, $HF_HUB_OFFLINE=1)')
    .option('--mirror <url>', 'fetch registry files from this base URL or directory instead ($CLIP_IQA_MIRROR)')
    .option('-q, --quiet', 'no progress bars or notes on stderr');
}

export function decodeOptions(flags: ModelFlags): DecodeOptions {
  const reference = flags.referenceDecode === true;
  return {
    orientation: reference ? 'ignore' : flags.orientation,
    alpha: reference ? 'drop' : flags.alpha,
    icc: reference ? 'ignore' : flags.icc,
    background: flags.background,
    ...(flags.resize ? { resize: flags.resize } : {}),
    ...(flags.maxPixels ? { limitInputPixels: flags.maxPixels } : {}),
  };
}

/** Where and how files are fetched, with a progress bar on a terminal (every command that may download). */
export function hubOptions(flags: Pick<ModelFlags, 'cacheDir' | 'offline' | 'mirror' | 'quiet'>): HubOptions {
  const bar = createProgressBar({ quiet: flags.quiet });
  return { cacheDir: flags.cacheDir, offline: flags.offline, mirror: flags.mirror, quiet: flags.quiet, onProgress: bar.active ? bar.update : undefined };
}

export function clipIqaOptions(flags: ModelFlags): ClipIqaOptions {
  return {
    model: flags.model,
    vocab: flags.vocab,
    plus: flags.plus,
    positional: flags.positional,
    noisiness: flags.noisiness,
    decode: decodeOptions(flags),
    precision: flags.precision,
    runtime: { ...(flags.threads ? { threads: flags.threads } : {}), ...(flags.device ? { device: flags.device } : {}) },
    hub: hubOptions(flags),
  };
}
