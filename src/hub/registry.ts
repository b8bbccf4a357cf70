/**
 * The files clip-iqa knows how to fetch by name: OpenAI's nine CLIP checkpoints, OpenCLIP's LAION-2B and
 * DataComp-XL models, the BPE vocabulary and the CLIP-IQA+ learned contexts. Facts (URLs, checksums, shapes,
 * repositories, revisions) come from CLIPIQA-SPEC.md Appendix A and MODEL-SOURCES.md.
 *
 * Each entry lists its sources in the order they are tried: copies on the Hugging Face hub first (`hub`: a
 * repository, a revision, a file; OpenAI's CDN has answered 404 since late 2025), then the publisher's URLs
 * (`urls`), whose file is `fileName` with `sha256` / `sha256Prefix` / `sizeBytes`.
 *
 * Integrity is explicit per entry because the upstreams publish different amounts of it:
 * - OpenAI checkpoints and the vocabulary: a full SHA-256 (`sha256`), OpenAI's in its URL.
 * - Hub copies: the SHA-256 the hub publishes for each LFS file, checked before the file enters the cache and
 *   recorded with the commit; pinned here (`hub[].sha256`, a revision) where it is known.
 * - pyiqa's contexts: only an 8-hex-digit SHA-256 prefix embedded in the file name (`sha256Prefix`).
 * - The official `iter_80000.pth`: nothing at all (`sha256: null`, `sha256Prefix: null`). Such a file is
 *   accepted on first download, its hash recorded in the cache manifest and later verified against that
 *   record (trust on first use); every message about it says that it was not checked against a publisher.
 */
import { ClipIqaError } from '../errors.js';
import type { PositionalMode } from '../model/types.js';
import type { Activation, ClipArchitecture, ResNetVision, TextTower, VitVision } from '../weights/architecture.js';

/** A copy of an entry's file in a Hugging Face repository. */
export interface HubRef {
  /** `ORG/NAME`. */
  readonly repo: string;
  /** A commit, when one is pinned; default `main`. */
  readonly revision?: string;
  readonly file: string;
  /** The file's SHA-256 when it is known (checked against what the hub publishes before downloading). */
  readonly sha256?: string | null;
}

export type FileKind = 'model' | 'vocab' | 'context';
export const FILE_KINDS: readonly FileKind[] = ['model', 'vocab', 'context'];

interface EntryBase {
  /** Canonical name as users write it (`ViT-B/32`, `clipiqa+`). */
  readonly name: string;
  /** Other spellings accepted besides the forgiving normalisation of `name`. */
  readonly aliases?: readonly string[];
  readonly kind: FileKind;
  /** File name in the cache and on a mirror (`<mirror>/<fileName>`); unique across the registry. */
  readonly fileName: string;
  /** Copies on the Hugging Face hub, tried first, in order. */
  readonly hub?: readonly HubRef[];
  /** Download locations of `fileName`, tried in order after the hub: the publisher's first, then its own mirrors. */
  readonly urls: readonly string[];
  /** Full SHA-256 (lower-case hex) when the publisher states one; null when it does not. */
  readonly sha256: string | null;
  /** A published SHA-256 prefix (lower-case hex) when only that is known; null otherwise. */
  readonly sha256Prefix: string | null;
  /** Size in bytes; null when unknown. */
  readonly sizeBytes: number | null;
  /** True when `sizeBytes` is an estimate (used for display and disk-space hints, never for verification). */
  readonly sizeApproximate: boolean;
  readonly license: string;
  /** Who publishes the file and where it is documented. */
  readonly source: string;
  readonly description: string;
}

export interface ModelEntry extends EntryBase {
  readonly kind: 'model';
  /** What `inferArchitecture` reports for this checkpoint. */
  readonly architecture: ClipArchitecture;
  /** Approximate parameter count, millions. */
  readonly parametersMillions: number;
}

export interface VocabEntry extends EntryBase {
  readonly kind: 'vocab';
}

export interface ContextEntry extends EntryBase {
  readonly kind: 'context';
  /** Registry name of the CLIP checkpoint the context was trained on. */
  readonly baseModel: string;
  /** The image-tower positional mode the context was trained with; scoring must use the same. */
  readonly positional: Exclude<PositionalMode, 'fixed'>;
  /**
   * - `bare-tensor`: one tensor (16, W) shared by both classes (pyiqa's extraction of the official context);
   * - `pyiqa-params`: `{params: {prompt_learner.ctx (2, 16, W), token_prefix, token_suffix}}`;
   * - `mmedit`: an MMEditing checkpoint, context at `state_dict['generator.clipmodel_0.prompt_learner.ctx']`.
   */
  readonly format: 'bare-tensor' | 'pyiqa-params' | 'mmedit';
  /** Shape of the context tensor. */
  readonly ctxShape: readonly number[];
  /** The pyiqa metric name this context reproduces, when there is one. */
  readonly pyiqaName: string | null;
}

export type RegistryEntry = ModelEntry | VocabEntry | ContextEntry;
export type EntryOfKind<K extends FileKind> = Extract<RegistryEntry, { kind: K }>;

export interface Registry {
  readonly entries: readonly RegistryEntry[];
  /** The entry used when a caller names none. */
  readonly defaults: { readonly model: string; readonly vocab: string; readonly context: string };
}

/** The paper's backbone. */
export const DEFAULT_MODEL = 'RN50';
export const DEFAULT_VOCAB = 'bpe_simple_vocab_16e6';
/** pyiqa's `clipiqa+`: the official context, small and verifiable by its hash prefix. */
export const DEFAULT_CONTEXT = 'clipiqa+';

/** OpenAI's CDN (reported 404 since late 2025) and the storage account behind it; the path's SHA-256 verifies either. */
const OPENAI_BASES = ['https://openaipublic.azureedge.net/clip/models', 'https://openaipublic.blob.core.windows.net/clip/models'];
const OPENAI_LICENSE = 'MIT (OpenAI CLIP)';
const OPENAI_SOURCE = 'OpenAI CLIP (https://github.com/openai/CLIP, clip/clip.py _MODELS); hub copies by timm/open_clip';
const MiB = 1024 * 1024;
const TEXT = (width: number, layers = 12, activation: Activation = 'quick_gelu'): TextTower => ({
  width,
  heads: width / 64,
  layers,
  contextLength: 77,
  vocabSize: 49408,
  activation,
});

function resnet(layers: [number, number, number, number], width: number, resolution: number): ResNetVision {
  return { family: 'resnet', layers, width, heads: (width * 32) / 64, poolWidth: width * 32, resolution, grid: resolution / 32 };
}

function vit(width: number, layers: number, patch: number, resolution: number, activation: Activation = 'quick_gelu', headWidth = 64): VitVision {
  return { family: 'vit', width, layers, heads: width / headWidth, patch, resolution, grid: resolution / patch, activation };
}

/** open_clip's copy of an OpenAI model in timm's repository: safetensors, float32, OpenAI's keys. */
interface TimmCopy {
  readonly repo: string;
  readonly revision?: string;
  readonly sha256?: string;
  /** Other files to try after open_clip_model.safetensors (ViT-L/14@336px's safetensors is unconfirmed). */
  readonly also?: readonly string[];
}

function openai(
  name: string,
  file: string,
  sha256: string,
  vision: ResNetVision | VitVision,
  textWidth: number,
  embedDim: number,
  mib: number,
  parametersMillions: number,
  copy: TimmCopy,
  aliases: readonly string[] = [],
): ModelEntry {
  const family = vision.family === 'resnet' ? 'modified ResNet' : 'ViT';
  const at = copy.revision ? { revision: copy.revision } : {};
  return {
    name,
    aliases,
    kind: 'model',
    fileName: file,
    hub: [
      { repo: copy.repo, ...at, file: 'open_clip_model.safetensors', sha256: copy.sha256 ?? null },
      ...(copy.also ?? []).map((f) => ({ repo: copy.repo, ...at, file: f })),
    ],
    urls: OPENAI_BASES.map((base) => `${base}/${sha256}/${file}`),
    sha256,
    sha256Prefix: null,
    // Sizes as `ls -h` shows OpenAI's files (MiB granularity): good for "how much will this download", not exact.
    sizeBytes: mib * MiB,
    sizeApproximate: true,
    license: OPENAI_LICENSE,
    source: OPENAI_SOURCE,
    description: `CLIP ${name}: ${family} image tower at ${vision.resolution}px, embedding ${embedDim}, ~${parametersMillions}M parameters`,
    architecture: { vision, text: TEXT(textWidth), embedDim },
    parametersMillions,
  };
}

const OPENCLIP_LICENSE = 'MIT (OpenCLIP weights by LAION)';

/** An OpenCLIP model trained by LAION (LAION-2B, DataComp-XL): exact GELU, on the hub only. */
function openclip(
  name: string,
  repo: string,
  vision: VitVision,
  text: { width: number; layers: number },
  embedDim: number,
  parametersMillions: number,
  aliases: readonly string[],
  normalization?: ClipArchitecture['normalization'],
): ModelEntry {
  return {
    name,
    aliases,
    kind: 'model',
    // The name on a mirror (CLIP_IQA_MIRROR), which serves files flat.
    fileName: `${repo.split('/')[1]}.safetensors`,
    hub: [
      { repo, file: 'open_clip_model.safetensors' },
      { repo, file: 'open_clip_pytorch_model.bin' },
    ],
    urls: [],
    sha256: null,
    sha256Prefix: null,
    // float32: four bytes a parameter.
    sizeBytes: parametersMillions * 4e6,
    sizeApproximate: true,
    license: OPENCLIP_LICENSE,
    source: `OpenCLIP (https://github.com/mlfoundations/open_clip), Hugging Face ${repo}`,
    description: `OpenCLIP ${name}: ViT image tower at ${vision.resolution}px, embedding ${embedDim}, GELU, ~${parametersMillions}M parameters`,
    architecture: { vision, text: TEXT(text.width, text.layers, 'gelu'), embedDim, ...(normalization ? { normalization } : {}) },
    parametersMillions,
  };
}

const PYIQA_REPO = 'chaofengc/IQA-PyTorch-Weights';
const PYIQA_GH = 'https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights';
const CONTEXT_LICENSE =
  'Research weights from IceClear/CLIP-IQA (official) redistributed by chaofengc/IQA-PyTorch; the upstream terms are ' +
  'not restated here: check both repositories before any commercial use';

function pyiqa(
  name: string,
  file: string,
  prefix: string,
  rest: Pick<ContextEntry, 'baseModel' | 'positional' | 'format' | 'ctxShape' | 'description'> & {
    sizeBytes: number | null;
    aliases?: readonly string[];
  },
): ContextEntry {
  return {
    name,
    aliases: rest.aliases ?? [],
    kind: 'context',
    fileName: file,
    hub: [{ repo: PYIQA_REPO, file }],
    urls: [`${PYIQA_GH}/${file}`],
    sha256: null,
    sha256Prefix: prefix,
    sizeBytes: rest.sizeBytes,
    sizeApproximate: true,
    license: CONTEXT_LICENSE,
    source: 'pyiqa (https://github.com/chaofengc/IQA-PyTorch), Hugging Face chaofengc/IQA-PyTorch-Weights',
    description: rest.description,
    baseModel: rest.baseModel,
    positional: rest.positional,
    format: rest.format,
    ctxShape: rest.ctxShape,
    // Registry names of pyiqa's contexts are pyiqa's metric names.
    pyiqaName: name,
  };
}

// Hub copies of OpenAI's models: MODEL-SOURCES.md §2.1 (repositories) and §2.2 (revisions and SHA-256s, third-party
// pins). Where none is known, the hub's own SHA-256 is checked and recorded on first download (trust on first use).
const ENTRIES: readonly RegistryEntry[] = [
  openai('RN50', 'RN50.pt', 'afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762', resnet([3, 4, 6, 3], 64, 224), 512, 1024, 244, 102, {
    repo: 'timm/resnet50_clip.openai',
    revision: 'ec3d92cf63a5f9d591f0d611b736895966c73076',
    sha256: 'da0baa37fb2211eee5729ab69ed587eb10d48f5b7076ceeed01552fc3d4cb4ee',
  }),
  openai('RN101', 'RN101.pt', '8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599', resnet([3, 4, 23, 3], 64, 224), 512, 512, 278, 120, {
    repo: 'timm/resnet101_clip.openai',
  }),
  openai('RN50x4', 'RN50x4.pt', '7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd', resnet([4, 6, 10, 6], 80, 288), 640, 640, 402, 178, {
    repo: 'timm/resnet50x4_clip.openai',
  }),
  openai('RN50x16', 'RN50x16.pt', '52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa', resnet([6, 8, 18, 8], 96, 384), 768, 768, 630, 291, {
    repo: 'timm/resnet50x16_clip.openai',
  }),
  openai('RN50x64', 'RN50x64.pt', 'be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c', resnet([3, 15, 36, 10], 128, 448), 1024, 1024, 1260, 623, {
    repo: 'timm/resnet50x64_clip.openai',
  }),
  openai('ViT-B/32', 'ViT-B-32.pt', '40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af', vit(768, 12, 32, 224), 512, 512, 338, 151, {
    repo: 'timm/vit_base_patch32_clip_224.openai',
    revision: 'a6f597a30f7b82c51704746581f9a4e41421e878',
    sha256: 'e6d1bd7789aa45192b3bf90570a789b478bae1b74ebcce7eddd908e83a2b7c31',
  }),
  openai('ViT-B/16', 'ViT-B-16.pt', '5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f', vit(768, 12, 16, 224), 512, 512, 335, 150, {
    repo: 'timm/vit_base_patch16_clip_224.openai',
    revision: '977e3dd0ec55ab8da155f2fbeb6b5f54948b6e3d',
    sha256: '4b8699299b1e8997753c64b052ba32031449d5d853f55a039148560ee02b820f',
  }),
  openai('ViT-L/14', 'ViT-L-14.pt', 'b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836', vit(1024, 24, 14, 224), 768, 768, 890, 428, {
    repo: 'timm/vit_large_patch14_clip_224.openai',
    revision: '18d0535469bb561bf468d76c1d73aa35156c922b',
    sha256: '9ce2e8a8ebfff3793d7d375ad6d3c35cb9aebf3de7ace0fc7308accab7cd207e',
  }),
  openai(
    'ViT-L/14@336px',
    'ViT-L-14-336px.pt',
    '3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02',
    vit(1024, 24, 14, 336),
    768,
    768,
    891,
    428,
    { repo: 'timm/vit_large_patch14_clip_336.openai', revision: '81e38efc4637de5023b10e75a7f9bd1c6fa6b010', also: ['open_clip_pytorch_model.bin'] },
    ['ViT-L/14-336', 'ViT-L-14-336px'],
  ),
  // OpenCLIP's LAION-2B and DataComp-XL models (MODEL-SOURCES.md §3.1: all exact GELU).
  openclip('ViT-B-32-laion2B', 'laion/CLIP-ViT-B-32-laion2B-s34B-b79K', vit(768, 12, 32, 224, 'gelu'), { width: 512, layers: 12 }, 512, 151, [
    'ViT-B-32:laion2b_s34b_b79k',
  ]),
  openclip('ViT-B-16-laion2B', 'laion/CLIP-ViT-B-16-laion2B-s34B-b88K', vit(768, 12, 16, 224, 'gelu'), { width: 512, layers: 12 }, 512, 150, [
    'ViT-B-16:laion2b_s34b_b88k',
  ]),
  openclip(
    'ViT-L-14-laion2B',
    'laion/CLIP-ViT-L-14-laion2B-s32B-b82K',
    vit(1024, 24, 14, 224, 'gelu'),
    { width: 768, layers: 12 },
    768,
    428,
    ['ViT-L-14:laion2b_s32b_b82k'],
    // open_clip's _pcfg for this tag: Inception's mean and std.
    { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
  ),
  openclip('ViT-H-14-laion2B', 'laion/CLIP-ViT-H-14-laion2B-s32B-b79K', vit(1280, 32, 14, 224, 'gelu', 80), { width: 1024, layers: 24 }, 1024, 986, [
    'ViT-H-14:laion2b_s32b_b79k',
  ]),
  openclip('ViT-B-32-DataComp.XL', 'laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K', vit(768, 12, 32, 224, 'gelu'), { width: 512, layers: 12 }, 512, 151, [
    'ViT-B-32:datacomp_xl_s13b_b90k',
  ]),
  openclip('ViT-L-14-DataComp.XL', 'laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K', vit(1024, 24, 14, 224, 'gelu'), { width: 768, layers: 12 }, 768, 428, [
    'ViT-L-14:datacomp_xl_s13b_b90k',
  ]),
  {
    name: DEFAULT_VOCAB,
    aliases: ['vocab', 'bpe', 'clip-bpe'],
    kind: 'vocab',
    fileName: 'bpe_simple_vocab_16e6.txt.gz',
    urls: ['https://github.com/openai/CLIP/raw/main/clip/bpe_simple_vocab_16e6.txt.gz'],
    sha256: '924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a',
    sha256Prefix: null,
    sizeBytes: 1_356_917,
    sizeApproximate: false,
    license: OPENAI_LICENSE,
    source: 'OpenAI CLIP repository, clip/bpe_simple_vocab_16e6.txt.gz',
    description: "CLIP's byte-level BPE vocabulary (49,408 tokens), shared by every OpenAI checkpoint",
  },
  pyiqa('clipiqa+', 'CLIP-IQA+_learned_prompts-603f3273.pth', '603f3273', {
    aliases: ['clip-iqa+', 'clipiqa+_learned_prompts'],
    baseModel: 'RN50',
    positional: 'none',
    format: 'bare-tensor',
    ctxShape: [16, 512],
    // Reported as 17,144 bytes (spec §1.7, secondary source).
    sizeBytes: 17_144,
    description: "The official CLIP-IQA+ context (KonIQ-10k, 1024×768) as pyiqa extracted it: one (16, 512) float16 tensor for both classes",
  }),
  pyiqa('clipiqa+_rn50_512', 'CLIPIQA+_RN50_512-89f5d940.pth', '89f5d940', {
    aliases: ['clip-iqa+_rn50_512'],
    baseModel: 'RN50',
    positional: 'interpolate',
    format: 'pyiqa-params',
    ctxShape: [2, 16, 512],
    sizeBytes: 316_700,
    description: "pyiqa's RN50 context trained on KonIQ-10k at 512×384 with the positional embedding interpolated; one context per class",
  }),
  pyiqa('clipiqa+_vitL14_512', 'CLIPIQA+_ViTL14_512-e66488f2.pth', 'e66488f2', {
    aliases: ['clip-iqa+_vitl14_512'],
    baseModel: 'ViT-L/14',
    positional: 'interpolate',
    format: 'pyiqa-params',
    ctxShape: [2, 16, 768],
    sizeBytes: 474_400,
    description: "pyiqa's ViT-L/14 context trained on KonIQ-10k at 512×384 with the positional embedding interpolated; one context per class",
  }),
  {
    name: 'clipiqa+_official',
    aliases: ['iter_80000', 'clipiqa+-official', 'clipiqa+_mmedit'],
    kind: 'context',
    fileName: 'iter_80000.pth',
    urls: ['https://github.com/IceClear/CLIP-IQA/releases/download/Pretrained/iter_80000.pth'],
    // The release states no checksum: see the module comment for how such a file is handled.
    sha256: null,
    sha256Prefix: null,
    sizeBytes: null,
    sizeApproximate: true,
    license: 'IceClear/CLIP-IQA release asset; the upstream terms are not restated here: check the repository before any commercial use',
    source: 'IceClear/CLIP-IQA GitHub release "Pretrained"',
    description:
      'The official MMEditing checkpoint of CLIP-IQA+ (KonIQ-10k): the (16, 512) context at ' +
      'generator.clipmodel_0.prompt_learner.ctx, next to a frozen copy of CLIP; same context as clipiqa+',
    baseModel: 'RN50',
    positional: 'none',
    format: 'mmedit',
    ctxShape: [16, 512],
    pyiqaName: null,
  },
];

/** Lower-case, without separators, so `ViT-B/32`, `vit-b-32`, `ViT_B_32` and `vitb32` all meet. `+` is kept: it matters. */
export function normalizeName(name: string): string {
  return name.trim().toLowerCase().replace(/[\s/_\-.@:]+/g, '');
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX_PREFIX = /^[0-9a-f]{4,63}$/;

/** Checks an entry set for what later code relies on: unique names and file names, well-formed hashes and URLs. */
function validate(entries: readonly RegistryEntry[]): void {
  const names = new Map<string, string>();
  const files = new Map<string, string>();
  for (const e of entries) {
    const where = `registry entry "${e.name}"`;
    if (!e.name.trim()) throw new ClipIqaError('E_OPTION', 'A registry entry has an empty name');
    if (!FILE_KINDS.includes(e.kind)) throw new ClipIqaError('E_OPTION', `${where}: kind "${String(e.kind)}" is not one of ${FILE_KINDS.join(', ')}`);
    if (e.sha256 !== null && !HEX64.test(e.sha256)) throw new ClipIqaError('E_OPTION', `${where}: sha256 must be 64 lower-case hex digits`);
    if (e.sha256Prefix !== null && !HEX_PREFIX.test(e.sha256Prefix)) {
      throw new ClipIqaError('E_OPTION', `${where}: sha256Prefix must be 4 to 63 lower-case hex digits`);
    }
    if (!e.fileName || /[/\\]/.test(e.fileName) || e.fileName === '.' || e.fileName === '..') {
      throw new ClipIqaError('E_OPTION', `${where}: fileName "${e.fileName}" must be a plain file name`);
    }
    if (e.urls.length === 0 && (e.hub ?? []).length === 0) throw new ClipIqaError('E_OPTION', `${where}: no download URL and no hub copy`);
    for (const h of e.hub ?? []) {
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(h.repo)) throw new ClipIqaError('E_OPTION', `${where}: "${h.repo}" is not a hub repository id (ORG/NAME)`);
      if (!h.file || h.file.split('/').some((p) => p === '' || p === '.' || p === '..')) throw new ClipIqaError('E_OPTION', `${where}: "${h.file}" is not a file path in a repository`);
      if (h.sha256 != null && !HEX64.test(h.sha256)) throw new ClipIqaError('E_OPTION', `${where}: the hub copy's sha256 must be 64 lower-case hex digits`);
    }
    for (const u of e.urls) {
      let p: URL;
      try {
        p = new URL(u);
      } catch {
        throw new ClipIqaError('E_OPTION', `${where}: "${u}" is not a URL`);
      }
      if (!['http:', 'https:', 'file:'].includes(p.protocol)) throw new ClipIqaError('E_OPTION', `${where}: unsupported URL scheme in ${u}`);
    }
    for (const n of [e.name, ...(e.aliases ?? [])]) {
      // Names are unique per kind: `resolveFile(spec, kind)` always knows which kind it wants.
      const key = `${e.kind}:${normalizeName(n)}`;
      const other = names.get(key);
      if (other !== undefined && other !== e.name) throw new ClipIqaError('E_OPTION', `${where}: the name "${n}" is also used by "${other}"`);
      names.set(key, e.name);
    }
    // Mirrors are flat (`<mirror>/<fileName>`), so file names must not collide.
    const otherFile = files.get(e.fileName);
    if (otherFile !== undefined) throw new ClipIqaError('E_OPTION', `${where}: file name ${e.fileName} is also used by "${otherFile}"`);
    files.set(e.fileName, e.name);
  }
}

/**
 * A registry made of the built-in entries plus `extra` ones (tests, private checkpoints, an intranet's own
 * contexts). An extra entry with the same kind and name as a built-in one replaces it.
 */
export function createRegistry(
  extra: readonly RegistryEntry[] = [],
  options: { base?: Registry; defaults?: Partial<Registry['defaults']> } = {},
): Registry {
  const base = options.base ?? DEFAULT_REGISTRY;
  const replaced = new Set(extra.map((e) => `${e.kind}:${normalizeName(e.name)}`));
  const entries = [...base.entries.filter((e) => !replaced.has(`${e.kind}:${normalizeName(e.name)}`)), ...extra];
  validate(entries);
  const registry: Registry = { entries, defaults: { ...base.defaults, ...options.defaults } };
  for (const kind of FILE_KINDS) {
    const name = registry.defaults[kind];
    if (!findEntry(registry, name, kind)) throw new ClipIqaError('E_OPTION', `The default ${kind} "${name}" is not in the registry`);
  }
  return registry;
}

export const DEFAULT_REGISTRY: Registry = (() => {
  validate(ENTRIES);
  return { entries: ENTRIES, defaults: { model: DEFAULT_MODEL, vocab: DEFAULT_VOCAB, context: DEFAULT_CONTEXT } };
})();

/** The entry called `name` (forgiving spelling), of `kind` when given; undefined when none. */
export function findEntry<K extends FileKind>(registry: Registry, name: string, kind: K): EntryOfKind<K> | undefined;
export function findEntry(registry: Registry, name: string, kind?: FileKind): RegistryEntry | undefined;
export function findEntry(registry: Registry, name: string, kind?: FileKind): RegistryEntry | undefined {
  const key = normalizeName(name);
  if (!key) return undefined;
  return registry.entries.find(
    (e) => (kind === undefined || e.kind === kind) && [e.name, ...(e.aliases ?? [])].some((n) => normalizeName(n) === key),
  );
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** Registry names of `kind`, nearest spelling to `name` first when `name` is given. */
export function entryNames(registry: Registry, kind?: FileKind, near?: string): string[] {
  const names = registry.entries.filter((e) => kind === undefined || e.kind === kind).map((e) => e.name);
  if (near === undefined) return names;
  const key = normalizeName(near);
  return names
    .map((n) => ({ n, d: editDistance(key, normalizeName(n)) }))
    .sort((x, y) => x.d - y.d)
    .map((x) => x.n);
}

/** Like `findEntry`, but an unknown name is an E_NOT_FOUND error listing what exists, nearest first. */
export function getEntry<K extends FileKind>(registry: Registry, name: string, kind: K): EntryOfKind<K>;
export function getEntry(registry: Registry, name: string, kind?: FileKind): RegistryEntry;
export function getEntry(registry: Registry, name: string, kind?: FileKind): RegistryEntry {
  const entry = findEntry(registry, name, kind);
  if (entry) return entry;
  const what = kind === undefined ? 'registry entry' : kind === 'vocab' ? 'vocabulary' : kind;
  const other = kind === undefined ? undefined : findEntry(registry, name);
  const hint = other ? ` ("${other.name}" is a ${other.kind}, not a ${kind})` : '';
  throw new ClipIqaError(
    'E_NOT_FOUND',
    `Unknown ${what} "${name}"${hint}. Known: ${entryNames(registry, kind, name).join(', ')}. ` +
      'Give one of these names, a local file path, or a URL with its checksum (https://…#sha256=<64 hex digits>).',
  );
}

/** The registry names of the models a context can be used with: its base model only. */
export function contextsFor(registry: Registry, model: string): ContextEntry[] {
  const m = findEntry(registry, model, 'model');
  if (!m) return [];
  return registry.entries.filter((e): e is ContextEntry => e.kind === 'context' && normalizeName(e.baseModel) === normalizeName(m.name));
}
