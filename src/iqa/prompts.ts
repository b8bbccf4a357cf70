import { ClipIqaError } from '../errors.js';

/** An antonym pair: the score is the probability CLIP gives the positive prompt over the negative. */
export interface PromptPair {
  readonly name: string;
  readonly positive: string;
  readonly negative: string;
}

export type AttributeGroup = 'look' | 'feel' | 'extra';

export interface Attribute extends PromptPair {
  readonly group: AttributeGroup;
  /** What a score near 1 means, for help texts and reports. */
  readonly high: string;
  readonly low: string;
}

const pair = (group: AttributeGroup, name: string, positive: string, negative: string): Attribute => ({
  group,
  name,
  positive,
  negative,
  high: positive.replace(/ photo\.$/, '').toLowerCase(),
  low: negative.replace(/ photo\.$/, '').toLowerCase(),
});

/**
 * The paper's twelve attributes, prompts verbatim from the official config
 * (`configs/clipiqa/clipiqa_attribute_test.py`), positive prompt first, then the five further pairs
 * the paper's appendix and torchmetrics use. Names follow the parity fixtures.
 */
export const ATTRIBUTES: readonly Attribute[] = [
  pair('look', 'quality', 'Good photo.', 'Bad photo.'),
  pair('look', 'brightness', 'Bright photo.', 'Dark photo.'),
  pair('look', 'sharpness', 'Sharp photo.', 'Blurry photo.'),
  // The official config scores "Noisy" first (higher = noisier); torchmetrics flips it. See NoisinessPolarity.
  pair('look', 'noisiness', 'Noisy photo.', 'Clean photo.'),
  pair('look', 'colorfulness', 'Colorful photo.', 'Dull photo.'),
  pair('look', 'contrast', 'High contrast photo.', 'Low contrast photo.'),
  pair('feel', 'aesthetic', 'Aesthetic photo.', 'Not aesthetic photo.'),
  pair('feel', 'happy', 'Happy photo.', 'Sad photo.'),
  pair('feel', 'natural', 'Natural photo.', 'Synthetic photo.'),
  pair('feel', 'new', 'New photo.', 'Old photo.'),
  pair('feel', 'scary', 'Scary photo.', 'Peaceful photo.'),
  pair('feel', 'complex', 'Complex photo.', 'Simple photo.'),
  pair('extra', 'warm', 'Warm photo.', 'Cold photo.'),
  pair('extra', 'real', 'Real photo.', 'Abstract photo.'),
  pair('extra', 'beautiful', 'Beautiful photo.', 'Ugly photo.'),
  pair('extra', 'lonely', 'Lonely photo.', 'Sociable photo.'),
  pair('extra', 'relaxing', 'Relaxing photo.', 'Stressful photo.'),
];

/**
 * pyiqa's `clipiqa` quality ensemble: five pairs whose per-image mean is reported as `ensemble`.
 * Casing is verbatim from pyiqa (`clipiqa_arch.py`).
 */
export const ENSEMBLE_PAIRS: readonly PromptPair[] = [
  { name: 'ensemble.good', positive: 'Good image', negative: 'bad image' },
  { name: 'ensemble.sharp', positive: 'Sharp image', negative: 'blurry image' },
  { name: 'ensemble.edges', positive: 'sharp edges', negative: 'blurry edges' },
  { name: 'ensemble.resolution', positive: 'High resolution image', negative: 'low resolution image' },
  { name: 'ensemble.noise', positive: 'Noise-free image', negative: 'noisy image' },
];

export const ENSEMBLE = 'ensemble';

/** Positive prompts that name a defect: a higher score is a worse photo. */
const DEFECTS: ReadonlySet<string> = new Set(['noisy photo.']);

/**
 * Which way a pair's score points, as pyiqa's `lower_better` the other way round: true unless the positive prompt
 * names a defect (only "Noisy photo.", i.e. `noisiness` in its official polarity). For the feel attributes
 * "better" is taste: true there means a higher score is more of what the positive prompt says.
 */
export const higherBetter = (pair: Pick<PromptPair, 'positive'>): boolean => !DEFECTS.has(pair.positive.trim().toLowerCase());

/**
 * Which way `noisiness` points. `noisy` (default) is the official config: "Noisy photo." first, so a
 * higher score means a noisier image. `clean` is torchmetrics' order: a higher score means cleaner.
 */
export type NoisinessPolarity = 'noisy' | 'clean';

/** Names other implementations use for our attributes (torchmetrics' keys, including its spelling). */
const ALIASES: Readonly<Record<string, string>> = {
  colorfullness: 'colorfulness',
  colourfulness: 'colorfulness',
  complexity: 'complex',
  noise: 'noisiness',
  aesthetics: 'aesthetic',
};

export const ATTRIBUTE_SETS: Readonly<Record<string, readonly string[]>> = {
  look: ATTRIBUTES.filter((a) => a.group === 'look').map((a) => a.name),
  feel: ATTRIBUTES.filter((a) => a.group === 'feel').map((a) => a.name),
  paper: ATTRIBUTES.filter((a) => a.group !== 'extra').map((a) => a.name),
  extra: ATTRIBUTES.filter((a) => a.group === 'extra').map((a) => a.name),
  all: ATTRIBUTES.map((a) => a.name),
};

/** The default when nothing is asked: the paper's twelve, look and feel. */
export const DEFAULT_ATTRIBUTES: readonly string[] = ATTRIBUTE_SETS.paper!;

export function findAttribute(name: string, noisiness: NoisinessPolarity = 'noisy'): Attribute | undefined {
  const key = name.trim().toLowerCase();
  const a = ATTRIBUTES.find((x) => x.name === (ALIASES[key] ?? key));
  if (a && a.name === 'noisiness' && noisiness === 'clean') {
    return { ...a, positive: a.negative, negative: a.positive, high: a.low, low: a.high };
  }
  return a;
}

/**
 * Expands a list of attribute names and set names (`look`, `feel`, `paper`, `extra`, `all`; also `ensemble`)
 * into attributes, in order, without duplicates. Returns whether the ensemble was asked for.
 */
export function resolveAttributes(
  names: readonly string[],
  noisiness: NoisinessPolarity = 'noisy',
): { attributes: Attribute[]; ensemble: boolean } {
  const out: Attribute[] = [];
  let ensemble = false;
  const add = (a: Attribute) => {
    if (!out.some((x) => x.name === a.name)) out.push(a);
  };
  for (const raw of names) {
    const name = raw.trim().toLowerCase();
    if (!name) continue;
    if (name === ENSEMBLE) {
      ensemble = true;
      continue;
    }
    const set = ATTRIBUTE_SETS[name];
    if (set) {
      for (const n of set) add(findAttribute(n, noisiness)!);
      continue;
    }
    const a = findAttribute(name, noisiness);
    if (!a) {
      throw new ClipIqaError(
        'E_PROMPT',
        `unknown attribute "${raw}". Known: ${ATTRIBUTES.map((x) => x.name).join(', ')}; sets: ${Object.keys(ATTRIBUTE_SETS).join(', ')}, ensemble. ` +
          'For your own antonyms use a prompt pair "name=positive|negative".',
      );
    }
    add(a);
  }
  return { attributes: out, ensemble };
}

/**
 * Parses a user pair: `positive|negative` or `name=positive|negative`. An unnamed pair is keyed by its
 * own text, so results stay self-describing.
 */
export function parsePromptPair(spec: string): PromptPair {
  const eq = spec.indexOf('=');
  const bar = spec.indexOf('|');
  const hasName = eq > 0 && (bar < 0 || eq < bar);
  const name = hasName ? spec.slice(0, eq).trim() : '';
  const body = hasName ? spec.slice(eq + 1) : spec;
  const parts = body.split('|');
  if (parts.length !== 2 || !parts[0]!.trim() || !parts[1]!.trim()) {
    throw new ClipIqaError(
      'E_PROMPT',
      `prompt pair "${spec}" is not "positive|negative" (optionally "name=positive|negative"), e.g. "vivid=Vivid photo.|Dull photo."`,
    );
  }
  const positive = parts[0]!.trim();
  const negative = parts[1]!.trim();
  return { name: name || `${positive}|${negative}`, positive, negative };
}
