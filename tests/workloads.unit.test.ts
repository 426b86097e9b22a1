import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resnetLayout } from '../workloads/cnn.js';
import { FAMILIES, FAMILY_NAMES, getFamily, parseSetText, resolveParams, setsForFamily } from '../workloads/index.js';
import { InputError } from '../harness/errors.js';
import { generateInput, generateWeight, materialize, workloadKey } from '../workloads/materialize.js';
import { loadTensors } from '../workloads/safetensors.js';

describe('presets', () => {
  it('every family has tiny, and every preset passes its own checks', () => {
    for (const name of FAMILY_NAMES) {
      const f = FAMILIES[name];
      expect(Object.keys(f.presets)).toContain('tiny');
      for (const p of Object.keys(f.presets)) expect(() => resolveParams(f, p)).not.toThrow();
    }
  });
  it('names the presets the issue asks for', () => {
    expect(Object.keys(FAMILIES.cnn.presets)).toEqual(['tiny', 'resnet18', 'resnet50']);
    expect(Object.keys(FAMILIES.rnn.presets)).toEqual(['tiny', 'small', 'large']);
    expect(Object.keys(FAMILIES.transformer.presets)).toEqual(['tiny', 'bert-mini', 'bert-base']);
  });
});

describe('--set parsing', () => {
  it('splits pairs and lets list values continue after commas', () => {
    expect(parseSetText('seq=37,hidden=96,heads=3')).toEqual([
      ['seq', '37'],
      ['hidden', '96'],
      ['heads', '3'],
    ]);
    expect(parseSetText('depths=1,1,2,1,image=64')).toEqual([
      ['depths', '1,1,2,1'],
      ['image', '64'],
    ]);
  });
  it('applies overrides with types', () => {
    const p = resolveParams(getFamily('cnn'), 'tiny', parseSetText('depths=1,2,1,1,image=40,block=bottleneck'));
    expect(p).toMatchObject({ depths: [1, 2, 1, 1], image: 40, block: 'bottleneck' });
  });
  it('rejects bad values with a one-line message naming what is allowed', () => {
    const t = getFamily('transformer');
    expect(() => resolveParams(t, 'tiny', [['heads', '5']])).toThrow(/heads=5 must divide hidden=32/);
    expect(() => resolveParams(t, 'tiny', [['seq', 'x']])).toThrow(/'x' is not an integer/);
    expect(() => resolveParams(t, 'tiny', [['seq', '0']])).toThrow(/must be >= 1/);
    expect(() => resolveParams(t, 'tiny', [['depth', '3']])).toThrow(/unknown parameter 'depth'.*valid parameters: seq, hidden/);
    expect(() => resolveParams(t, 'huge')).toThrow(/unknown preset 'huge'.*valid presets: tiny, bert-mini, bert-base/);
    expect(() => resolveParams(getFamily('cnn'), 'tiny', [['block', 'wide']])).toThrow(/allowed values are basic, bottleneck/);
    expect(() => getFamily('mlp')).toThrow(InputError);
    expect(() => parseSetText('=3')).toThrow(/not key=value/);
  });
  it('routes keys to the families that know them, and rejects keys no family knows', () => {
    const fams = [getFamily('cnn'), getFamily('transformer')];
    expect(
      setsForFamily(
        fams[0]!,
        [
          ['seq', '9'],
          ['image', '40'],
        ],
        fams,
      ),
    ).toEqual([['image', '40']]);
    expect(() => setsForFamily(fams[0]!, [['bogus', '1']], fams)).toThrow(/unknown parameter 'bogus'/);
  });
});

describe('deterministic weights and inputs', () => {
  const rnn = getFamily('rnn');
  const params = resolveParams(rnn, 'tiny');
  it('the same seed gives the same bytes; another seed differs', () => {
    const spec = rnn.weights(params)[1]!;
    const a = generateWeight(spec, 0);
    expect(Buffer.from(generateWeight(spec, 0).buffer).equals(Buffer.from(a.buffer))).toBe(true);
    expect(Buffer.from(generateWeight(spec, 1).buffer).equals(Buffer.from(a.buffer))).toBe(false);
  });
  it('a tensor does not depend on which other tensors exist', () => {
    const two = resolveParams(rnn, 'tiny', [['layers', '2']]);
    const a = rnn.weights(params).find((w) => w.name === 'lstm.0.weight_hh')!;
    const b = rnn.weights(two).find((w) => w.name === 'lstm.0.weight_hh')!;
    expect(generateWeight(a, 7)).toEqual(generateWeight(b, 7));
  });
  it('follows its init: uniform within bounds, normal with about the right spread', () => {
    const u = generateWeight({ name: 'u', shape: [10000], init: { kind: 'uniform', low: -0.5, high: 0.25 } }, 3);
    expect(Math.min(...u)).toBeGreaterThanOrEqual(-0.5);
    expect(Math.max(...u)).toBeLessThan(0.25);
    const n = generateWeight({ name: 'n', shape: [20000], init: { kind: 'normal', std: 2 } }, 3);
    const mean = n.reduce((s, v) => s + v, 0) / n.length;
    const std = Math.sqrt(n.reduce((s, v) => s + (v - mean) ** 2, 0) / n.length);
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(std).toBeGreaterThan(1.95);
    expect(std).toBeLessThan(2.05);
  });
  it('the first k samples of a batch equal a batch of k; tokens are in range', () => {
    const [b4] = rnn.inputs(params, 4);
    const [b1] = rnn.inputs(params, 1);
    const x4 = generateInput(b4!, 0);
    const x1 = generateInput(b1!, 0);
    expect(Array.from(x4.slice(0, x1.length))).toEqual(Array.from(x1));
    expect(x4).toBeInstanceOf(Int32Array);
    expect(Math.max(...x4)).toBeLessThan(100);
    expect(Math.min(...x4)).toBeGreaterThanOrEqual(0);
  });
  it('materializes once, keyed by content, readable back with the same values', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fwbench-mat-'));
    const m = materialize(rnn, params, 5, 2, dir);
    const again = materialize(rnn, { ...params }, 5, 2, dir);
    expect(again).toEqual(m);
    expect(workloadKey(rnn, params, 6)).not.toEqual(m.key);
    const { tensors, metadata } = loadTensors(m.weightsPath);
    expect(metadata).toMatchObject({ family: 'rnn', seed: '5' });
    const spec = rnn.weights(params)[0]!;
    expect(tensors.get(spec.name)!.shape).toEqual(spec.shape);
    expect(tensors.get(spec.name)!.data).toEqual(generateWeight(spec, 5));
    const header = readFileSync(m.weightsPath);
    expect((8 + Number(header.readBigUInt64LE(0))) % 8).toBe(0);
  });
});

describe('FLOP counts match hand computations', () => {
  it('cnn tiny, layer by layer', () => {
    // stem 7x7/2 on 32x32x3 -> 16x16x8; pool -> 8x8; stages 8@8x8, 16@4x4, 32@2x2, 64@1x1.
    const c = (cout: number, out: number, cin: number, k: number) => 2 * cout * out * out * cin * k * k;
    const expected =
      c(8, 16, 3, 7) +
      (c(8, 8, 8, 3) + c(8, 8, 8, 3)) +
      (c(16, 4, 8, 3) + c(16, 4, 16, 3) + c(16, 4, 8, 1)) +
      (c(32, 2, 16, 3) + c(32, 2, 32, 3) + c(32, 2, 16, 1)) +
      (c(64, 1, 32, 3) + c(64, 1, 64, 3) + c(64, 1, 32, 1)) +
      2 * 64 * 10;
    expect(FAMILIES.cnn.flopsPerSample(FAMILIES.cnn.presets.tiny!)).toBe(expected);
  });
  it('resnet18 and resnet50 match their published multiply-add counts (1.81 and 4.09 GMAC; 11.7 M and 25.6 M parameters)', () => {
    expect(FAMILIES.cnn.flopsPerSample(FAMILIES.cnn.presets.resnet18!) / 2 / 1e9).toBeCloseTo(1.81, 2);
    expect(FAMILIES.cnn.flopsPerSample(FAMILIES.cnn.presets.resnet50!) / 2 / 1e9).toBeCloseTo(4.09, 2);
    const params = (p: string) =>
      FAMILIES.cnn
        .weights(FAMILIES.cnn.presets[p]!)
        .filter((w) => !w.name.includes('running_'))
        .reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1), 0);
    expect(params('resnet18') / 1e6).toBeCloseTo(11.69, 2);
    expect(params('resnet50') / 1e6).toBeCloseTo(25.56, 2);
  });
  it('resnet50 geometry: 2048 features, 7x7 last stage, 53 convolutions', () => {
    const l = resnetLayout(FAMILIES.cnn.presets.resnet50!);
    expect(l.features).toBe(2048);
    expect(l.blocks.at(-1)!.convs.at(-1)!.outSize).toBe(7);
    expect(l.blocks.reduce((s, b) => s + b.convs.length + (b.downsample ? 1 : 0), 1)).toBe(53);
  });
  it('rnn: 8*H*(I+H) per step and layer plus the classifier', () => {
    // small: 2 layers, H 256, embed 128, seq 64, 2 classes.
    expect(FAMILIES.rnn.flopsPerSample(FAMILIES.rnn.presets.small!)).toBe(64 * 8 * 256 * (128 + 256) + 64 * 8 * 256 * 512 + 2 * 256 * 2);
  });
  it('transformer: projections, attention and FFN per layer plus pooler and classifier', () => {
    const [S, H, F, L, C] = [128, 768, 3072, 12, 2];
    const expected = L * (8 * S * H * H + 4 * S * S * H + 4 * S * H * F) + 2 * H * H + 2 * H * C;
    expect(FAMILIES.transformer.flopsPerSample(FAMILIES.transformer.presets['bert-base']!)).toBe(expected);
    // about 22.3 GFLOP per 128-token sequence for BERT-base's encoder.
    expect(expected / 1e9).toBeCloseTo(22.36, 1);
  });
});
