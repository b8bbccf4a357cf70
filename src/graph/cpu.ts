/** What the CPU's integer kernels allow; `cpu.browser.ts` answers for onnxruntime-web's WASM kernels. */
import { readFileSync } from 'node:fs';

/** 127 with AVX-512 VNNI / AVX-VNNI or off x86-64, else 63 (see WEIGHT_LIMIT in quantize.ts). */
export function int8WeightLimit(): number {
  if (process.arch !== 'x64') return 127;
  try {
    return /\b(avx512_vnni|avx_vnni)\b/.test(readFileSync('/proc/cpuinfo', 'utf8')) ? 127 : 63;
  } catch {
    return 63; // not Linux: assume no VNNI, which is always safe
  }
}
