/**
 * The browser build's `cpu.ts`. A page cannot see the CPU's features, and WASM SIMD's u8×i8 products may be lowered
 * to saturating int16 pairs on x86 as MLAS's vpmaddubsw path is: seven-bit weights are always safe.
 */
export const int8WeightLimit = (): number => 63;
