import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, availableParallelism, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { type InferenceSession, listSupportedBackends } from 'onnxruntime-node';
import { ClipIqaError } from '../errors.js';

export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'layout' | 'all';

/**
 * Arithmetic of the image tower. `float32` matches the PyTorch reference to float rounding. `int8` quantises
 * the image tower's weights (per output channel) and activations (ResNet: per tensor, ranges calibrated on four
 * fixed photographs, see model/calibration.ts; ViT: per tensor, on the fly) and runs onnxruntime's integer
 * kernels (AVX-512 VNNI where the CPU has it): faster, with features that differ slightly from float32 (see the
 * README). The text tower always runs in float32.
 */
export type Precision = 'float32' | 'int8';
export const PRECISIONS: readonly Precision[] = ['float32', 'int8'];

/**
 * Where the graphs run: onnxruntime's execution provider. `cpu` everywhere; `cuda` on Linux x64 (NVIDIA, CUDA 12,
 * with onnxruntime-node's CUDA binaries installed); `coreml` on macOS; `dml` (DirectML) on Windows. Operators a
 * provider lacks fall back to the CPU.
 */
export type Device = 'cpu' | 'cuda' | 'coreml' | 'dml';
export const DEVICES: readonly Device[] = ['cpu', 'cuda', 'coreml', 'dml'];

/** The platforms (`os.platform()/os.arch()`) whose onnxruntime-node 1.30 binaries carry each provider (its README). */
const DEVICE_PLATFORMS: Readonly<Record<Device, readonly string[]>> = {
  cpu: ['linux/x64', 'linux/arm64', 'darwin/x64', 'darwin/arm64', 'win32/x64', 'win32/arm64'],
  cuda: ['linux/x64'],
  coreml: ['darwin/x64', 'darwin/arm64'],
  dml: ['win32/x64', 'win32/arm64'],
};

const DEVICE_NAMES: Readonly<Record<Device, string>> = { cpu: 'CPU', cuda: 'CUDA', coreml: 'CoreML', dml: 'DirectML' };

/** Where onnxruntime-node keeps its native libraries for this platform (the CUDA provider's are installed there). */
function ortBinaryDir(plat: string): string {
  const main = createRequire(import.meta.url).resolve('onnxruntime-node');
  return join(dirname(main), '..', 'bin', 'napi-v6', plat);
}

/** What onnxruntime-node says it can run here: provider name → whether its binaries ship in the npm package. */
function supportedBackends(): ReadonlyMap<string, boolean> {
  return new Map(listSupportedBackends().map((b) => [b.name, b.bundled]));
}

export interface DeviceProbe {
  readonly platform?: string;
  readonly backends?: ReadonlyMap<string, boolean>;
  readonly fileExists?: (path: string) => boolean;
}

/**
 * Throws E_DEVICE unless this machine's onnxruntime-node can use `device`, saying what to install; E_OPTION for a
 * name that is no device. `probe` replaces the platform and the installed binaries (tests).
 */
export function checkDevice(device: Device | undefined, probe: DeviceProbe = {}): Device {
  const d = device ?? 'cpu';
  if (!DEVICES.includes(d)) {
    throw new ClipIqaError('E_OPTION', `device must be one of ${DEVICES.join(', ')}, got "${String(device)}"`);
  }
  if (d === 'cpu') return d;
  const plat = probe.platform ?? `${platform()}/${arch()}`;
  const name = DEVICE_NAMES[d];
  const where = DEVICE_PLATFORMS[d];
  if (!where.includes(plat)) {
    throw new ClipIqaError(
      'E_DEVICE',
      `the ${name} execution provider is not available on ${plat}: onnxruntime-node ships it for ${where.join(', ')} only; use --device cpu (runtime.device 'cpu')`,
    );
  }
  const backends = probe.backends ?? supportedBackends();
  if (!backends.has(d)) {
    throw new ClipIqaError('E_DEVICE', `the ${name} execution provider is not in this build of onnxruntime-node (it offers ${[...backends.keys()].join(', ')}); use --device cpu`);
  }
  if (d === 'cuda') {
    // Not in the npm package: onnxruntime-node's install script fetches them, unless skipped (as this project's
    // install does: ONNXRUNTIME_NODE_INSTALL=skip, or npm 11's allowScripts).
    const dir = ortBinaryDir(plat);
    const missing = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'].filter((f) => !(probe.fileExists ?? existsSync)(join(dir, f)));
    if (missing.length > 0) {
      const script = join(dirname(dirname(dir)), '..', '..', 'script', 'install.js');
      throw new ClipIqaError(
        'E_DEVICE',
        `the CUDA execution provider is not installed: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing from ${dir}. ` +
          `onnxruntime-node's install script downloads them (NuGet package Microsoft.ML.OnnxRuntime.Gpu.Linux) unless the install skipped it; ` +
          `run \`ONNXRUNTIME_NODE_INSTALL=cuda12 node ${script}\` with network access, and have the CUDA 12 runtime and cuDNN 9 libraries on the library path; or use --device cpu`,
      );
    }
  }
  return d;
}

/** onnxruntime's provider list for a device: the device first, the CPU for whatever it cannot run. */
function executionProviders(device: Device): string[] {
  return device === 'cpu' ? ['cpu'] : [device, 'cpu'];
}

/** How onnxruntime sessions are created. Every field has a default tuned for CPU inference of one model at a time. */
export interface RuntimeOptions {
  /** Execution provider; default 'cpu'. Checked when the model loads: E_DEVICE says what is missing. */
  readonly device?: Device;
  /** Arithmetic of the image tower; default 'float32'. */
  readonly precision?: Precision;
  /** Intra-op threads (the threads one convolution or matrix product is split over); default `os.availableParallelism()`. */
  readonly threads?: number;
  /** Inter-op threads; default 1, since the towers are chains with no independent branches worth running side by side. */
  readonly interOpThreads?: number;
  /** Default 'all': includes the NCHWc layout transforms that let MLAS use AVX-512 convolution kernels. */
  readonly graphOptimizationLevel?: GraphOptimizationLevel;
  /** Default 'sequential' (see interOpThreads). */
  readonly executionMode?: 'sequential' | 'parallel';
  /** Default true: the arena keeps activation buffers between runs instead of returning them to the system. */
  readonly enableCpuMemArena?: boolean;
  /** Default true: reuses the allocation plan of the previous run when input shapes repeat. */
  readonly enableMemPattern?: boolean;
  /**
   * Raw session configuration entries (onnxruntime's `onnxruntime_session_options_config_keys.h`), over the
   * defaults (`session.intra_op.allow_spinning` and `session.inter_op.allow_spinning` '0'; set them to '1' to let
   * worker threads spin-wait, which may pay on a machine with nothing else running).
   */
  readonly configEntries?: Readonly<Record<string, string>>;
  /**
   * Initializers of at least this many bytes travel to onnxruntime as in-memory external data rather than
   * inside the protobuf (default 1 MiB). Needed for towers over 2 GiB of float32 weights (RN50x64, ViT-L/14).
   */
  readonly externalMinBytes?: number;
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) {
    throw new ClipIqaError('E_OPTION', `${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/** Nested `{ session: { key: value } }` form that onnxruntime-node's binding flattens back into dotted config keys. */
function nestConfigEntries(entries: Readonly<Record<string, string>>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(entries)) {
    const parts = key.split('.');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      const next = node[part];
      if (typeof next === 'string') throw new ClipIqaError('E_OPTION', `session config key "${key}" clashes with another key`);
      node = (next as Record<string, unknown> | undefined) ?? (node[part] = {});
    }
    node[parts[parts.length - 1]!] = value;
  }
  return root;
}

/**
 * Session configuration entries set unless `configEntries` overrides them.
 *
 * Worker threads do not spin-wait for work (`allow_spinning` 0). Spinning saves a few microseconds per operator
 * when the cores are otherwise idle, and measured nothing here (RN50 at 224² and 1024×768 the same within noise);
 * but when anything else wants a core (image decoding running ahead in `scoreMany`, another process) a spinning
 * worker burns the time slice of the thread that has the work: with one busy competing process on two cores RN50
 * took 120–150 ms at 224² spinning against 82–97 ms not, and 1.7–2.7 s against 1.6–1.8 s at 1024×768.
 */
const DEFAULT_CONFIG_ENTRIES: Readonly<Record<string, string>> = {
  'session.intra_op.allow_spinning': '0',
  'session.inter_op.allow_spinning': '0',
};

/** onnxruntime session options for `options`, defaults filled in and values checked. */
export function sessionOptions(options: RuntimeOptions = {}): InferenceSession.SessionOptions {
  return {
    executionProviders: executionProviders(checkDevice(options.device)),
    intraOpNumThreads: positiveInteger('threads', options.threads, availableParallelism()),
    interOpNumThreads: positiveInteger('interOpThreads', options.interOpThreads, 1),
    graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
    executionMode: options.executionMode ?? 'sequential',
    enableCpuMemArena: options.enableCpuMemArena ?? true,
    enableMemPattern: options.enableMemPattern ?? true,
    extra: nestConfigEntries({ ...DEFAULT_CONFIG_ENTRIES, ...options.configEntries }),
  };
}
