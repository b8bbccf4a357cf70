import { describe, expect, test } from 'vitest';
import { GraphBuilder, float } from '../src/graph/builder.js';
import { minimumSide, resnetGrid, vitGrid } from '../src/graph/geometry.js';
import { sessionOptions } from '../src/runtime/options.js';
import { OrtSession } from '../src/runtime/session.js';
import { float32Data, float32Tensor } from '../src/runtime/tensors.js';
import type { ResNetVision } from '../src/weights/architecture.js';

/** y = x @ w + 1, with a named dynamic batch. */
function affine(w: Float32Array): GraphBuilder {
  const b = new GraphBuilder('affine');
  const x = b.input('x', 'float32', ['batch', 4]);
  const y = b.node('Add', [b.node('MatMul', [x, b.initializer(w, [4, 4], 'w')]), b.floats([1], [])]);
  b.output(b.named(y, 'y'), 'float32', ['batch', 4]);
  return b;
}

describe('GraphBuilder', () => {
  const w = Float32Array.from({ length: 16 }, (_, i) => (i % 5) - 2);
  const x = Float32Array.from({ length: 8 }, (_, i) => i / 3);
  const expected = Float32Array.from({ length: 8 }, (_, i) => {
    const [r, c] = [Math.floor(i / 4), i % 4];
    let s = 0;
    for (let k = 0; k < 4; k++) s += x[r * 4 + k]! * w[k * 4 + c]!;
    return s + 1;
  });

  test.each([
    ['inline', Infinity],
    ['external', 16],
  ])('weights %s give the same result', async (_, externalMinBytes) => {
    const model = affine(w).serialize({ externalMinBytes });
    expect(model.external.length).toBe(externalMinBytes === Infinity ? 0 : 1);
    const session = await OrtSession.create('affine', model, { threads: 1 });
    const y = float32Data((await session.run({ x: float32Tensor(x, [2, 4]) })).y, 'y', [2, 4]);
    for (let i = 0; i < 8; i++) expect(y[i]).toBeCloseTo(expected[i]!, 5);
    await session.dispose();
  });

  test('names are unique and attributes typed', () => {
    const b = new GraphBuilder('g');
    b.input('x', 'float32', [1]);
    expect(() => b.input('x', 'float32', [1])).toThrow(/used twice/);
    expect(() => b.node('LayerNormalization', ['x'], { epsilon: 1e-5 })).toThrow(/float\(\)/);
    expect(() => b.node('LayerNormalization', ['x'], { epsilon: float(1e-5) })).not.toThrow();
    expect(() => b.initializer(new Float32Array(3), [2, 2])).toThrow(/needs 4 values/);
  });

  test('onnxruntime failures surface as E_RUNTIME naming the graph', async () => {
    const b = new GraphBuilder('broken');
    const x = b.input('x', 'float32', [2]);
    b.output(b.named(b.node('NoSuchOp', [x]), 'y'), 'float32', [2]);
    await expect(OrtSession.create('broken', b.serialize(), { threads: 1 })).rejects.toMatchObject({ code: 'E_RUNTIME' });
    const ok = await OrtSession.create('affine', affine(w).serialize(), { threads: 1 });
    await expect(ok.run({ x: float32Tensor(new Float32Array(3), [1, 3]) })).rejects.toMatchObject({
      code: 'E_RUNTIME',
      message: expect.stringContaining('affine'),
    });
  });
});

describe('runtime options', () => {
  test('defaults and checks', () => {
    const o = sessionOptions({});
    expect(o).toMatchObject({ interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential', enableCpuMemArena: true });
    expect(o.intraOpNumThreads).toBeGreaterThanOrEqual(1);
    expect(() => sessionOptions({ threads: 0 })).toThrow(/positive integer/);
    // Worker threads do not spin by default; configEntries override the defaults key by key.
    expect(o.extra).toEqual({ session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } });
    expect(sessionOptions({ configEntries: { 'session.intra_op.allow_spinning': '1', 'session.set_denormal_as_zero': '1' } }).extra).toEqual({
      session: { intra_op: { allow_spinning: '1' }, inter_op: { allow_spinning: '0' }, set_denormal_as_zero: '1' },
    });
  });
});

describe('geometry', () => {
  test('ResNet grid follows PyTorch floor arithmetic', () => {
    expect(resnetGrid(224, 224)).toEqual({ height: 7, width: 7 });
    expect(resnetGrid(768, 1024)).toEqual({ height: 24, width: 32 });
    expect(resnetGrid(37, 53)).toEqual({ height: 1, width: 1 });
    expect(resnetGrid(30, 31)).toEqual({ height: 0, width: 1 });
    expect(minimumSide({ family: 'resnet' } as ResNetVision)).toBe(31);
  });
  test('ViT grid is floor(side / patch)', () => {
    expect(vitGrid(80, 96, 16)).toEqual({ height: 5, width: 6 });
    expect(vitGrid(15, 224, 32)).toEqual({ height: 0, width: 7 });
  });
});
