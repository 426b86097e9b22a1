import { int, ints, str, type Params, type WeightSpec, type WorkloadFamily } from './types.js';

/**
 * ResNet family. Canonical layout: images NCHW, conv kernels OIHW ([out, in, kh, kw]),
 * linear weights [out, in]; BatchNorm in inference form (weight, bias, running_mean, running_var).
 * Stem: 7x7/2 conv (pad 3), BN, ReLU, 3x3/2 max-pool (pad 1); four stages of Basic or Bottleneck
 * blocks (stride on the 3x3 conv, 1x1 projection shortcut when shape changes); global average pool;
 * linear classifier. Padding is symmetric everywhere.
 */

/** Output side of a convolution or pooling window. */
export const convOut = (size: number, k: number, stride: number, pad: number): number => Math.floor((size + 2 * pad - k) / stride) + 1;

/** One convolution of the network, in execution order, with its geometry. */
export interface ConvLayer {
  /** Canonical prefix: `<prefix>.weight` is the kernel, `<bnPrefix>.*` its BatchNorm. */
  weight: string;
  /** BatchNorm prefix following this convolution. */
  bn: string;
  cin: number;
  cout: number;
  k: number;
  stride: number;
  pad: number;
  /** Input side (square). */
  inSize: number;
  /** Output side (square). */
  outSize: number;
}

/** One residual block. */
export interface BlockLayout {
  /** Canonical prefix, e.g. `layer2.0`. */
  prefix: string;
  /** Main-path convolutions (2 for basic, 3 for bottleneck). */
  convs: ConvLayer[];
  /** Projection shortcut, when the shape changes. */
  downsample?: ConvLayer;
}

/** The whole network's geometry, shared by weights, FLOPs and every engine's model builder. */
export interface ResNetLayout {
  channels: number;
  image: number;
  stem: ConvLayer;
  /** Side after the stem's max-pool. */
  poolOut: number;
  blocks: BlockLayout[];
  /** Features entering the classifier. */
  features: number;
  classes: number;
}

const EXPANSION: Record<string, number> = { basic: 1, bottleneck: 4 };

/** Computes the layer-by-layer geometry of a ResNet from its parameters. */
export function resnetLayout(p: Params): ResNetLayout {
  const width = int(p, 'width');
  const image = int(p, 'image');
  const channels = int(p, 'channels');
  const block = str(p, 'block');
  const expansion = EXPANSION[block] ?? 1;
  const conv = (weight: string, bn: string, cin: number, cout: number, k: number, stride: number, inSize: number): ConvLayer => {
    const pad = Math.floor(k / 2);
    return { weight, bn, cin, cout, k, stride, pad, inSize, outSize: convOut(inSize, k, stride, pad) };
  };
  const stem = conv('conv1.weight', 'bn1', channels, width, 7, 2, image);
  const poolOut = convOut(stem.outSize, 3, 2, 1);
  let size = poolOut;
  let inPlanes = width;
  const blocks: BlockLayout[] = [];
  ints(p, 'depths').forEach((depth, stage) => {
    const planes = width * 2 ** stage;
    for (let b = 0; b < depth; b++) {
      const stride = b === 0 && stage > 0 ? 2 : 1;
      const prefix = `layer${stage + 1}.${b}`;
      const outPlanes = planes * expansion;
      const convs: ConvLayer[] = [];
      if (block === 'basic') {
        convs.push(conv(`${prefix}.conv1.weight`, `${prefix}.bn1`, inPlanes, planes, 3, stride, size));
        convs.push(conv(`${prefix}.conv2.weight`, `${prefix}.bn2`, planes, planes, 3, 1, convs[0]!.outSize));
      } else {
        convs.push(conv(`${prefix}.conv1.weight`, `${prefix}.bn1`, inPlanes, planes, 1, 1, size));
        convs.push(conv(`${prefix}.conv2.weight`, `${prefix}.bn2`, planes, planes, 3, stride, size));
        convs.push(conv(`${prefix}.conv3.weight`, `${prefix}.bn3`, planes, outPlanes, 1, 1, convs[1]!.outSize));
      }
      const downsample =
        stride !== 1 || inPlanes !== outPlanes
          ? conv(`${prefix}.downsample.conv.weight`, `${prefix}.downsample.bn`, inPlanes, outPlanes, 1, stride, size)
          : undefined;
      blocks.push(downsample ? { prefix, convs, downsample } : { prefix, convs });
      size = convs[convs.length - 1]!.outSize;
      inPlanes = outPlanes;
    }
  });
  return { channels, image, stem, poolOut, blocks, features: inPlanes, classes: int(p, 'classes') };
}

/** Every convolution in execution order (stem, then per block main path and shortcut). */
export function allConvs(l: ResNetLayout): ConvLayer[] {
  return [l.stem, ...l.blocks.flatMap((b) => (b.downsample ? [...b.convs, b.downsample] : b.convs))];
}

function bnWeights(prefix: string, c: number, residualEnd: boolean): WeightSpec[] {
  // A small gamma on the last BN of each residual branch keeps activations O(1) through deep
  // stacks of residual adds (the variance otherwise doubles per block).
  const gamma = residualEnd ? { low: 0.2, high: 0.4 } : { low: 0.8, high: 1.2 };
  return [
    { name: `${prefix}.weight`, shape: [c], init: { kind: 'uniform', ...gamma } },
    { name: `${prefix}.bias`, shape: [c], init: { kind: 'uniform', low: -0.1, high: 0.1 } },
    { name: `${prefix}.running_mean`, shape: [c], init: { kind: 'uniform', low: -0.1, high: 0.1 } },
    { name: `${prefix}.running_var`, shape: [c], init: { kind: 'uniform', low: 0.8, high: 1.2 } },
  ];
}

function convWeights(c: ConvLayer, residualEnd: boolean): WeightSpec[] {
  // He initialisation keeps the second moment of ReLU activations near 1 from layer to layer.
  const fanIn = c.cin * c.k * c.k;
  return [{ name: c.weight, shape: [c.cout, c.cin, c.k, c.k], init: { kind: 'normal', std: Math.sqrt(2 / fanIn) } }, ...bnWeights(c.bn, c.cout, residualEnd)];
}

export const cnn: WorkloadFamily = {
  name: 'cnn',
  description: 'ResNet image classifier (Basic/Bottleneck blocks, BatchNorm, ReLU, residual add, max-pool, global average pool, linear)',
  params: [
    { name: 'block', kind: 'enum', choices: ['basic', 'bottleneck'], doc: 'residual block type' },
    { name: 'depths', kind: 'int-list', min: 1, doc: 'blocks per stage, e.g. 2,2,2,2' },
    { name: 'width', kind: 'int', min: 1, doc: 'channels of the stem and first stage (doubles per stage)' },
    { name: 'image', kind: 'int', min: 8, doc: 'input side in pixels (square images)' },
    { name: 'channels', kind: 'int', min: 1, doc: 'input image channels' },
    { name: 'classes', kind: 'int', min: 1, doc: 'classifier outputs' },
  ],
  presets: {
    tiny: { block: 'basic', depths: [1, 1, 1, 1], width: 8, image: 32, channels: 3, classes: 10 },
    resnet18: { block: 'basic', depths: [2, 2, 2, 2], width: 64, image: 224, channels: 3, classes: 1000 },
    resnet50: { block: 'bottleneck', depths: [3, 4, 6, 3], width: 64, image: 224, channels: 3, classes: 1000 },
  },
  sizes: { tiny: 'tiny', small: 'resnet18', base: 'resnet50' },
  trainingProblem(p, batch) {
    const l = resnetLayout(p);
    const last = Math.min(...allConvs(l).map((c) => c.outSize));
    if (batch * last * last > 1) return undefined;
    return {
      reason: `BatchNorm in training mode normalizes each channel over batch x height x width values, and at batch ${batch} the last stage's ${last}x${last} map leaves one value per channel: its variance is undefined (PyTorch refuses it)`,
      fix: 'train with a batch of 2 or more (--batch-sizes 8)',
    };
  },
  check(p) {
    if (ints(p, 'depths').length !== 4) return `depths must list 4 stages (got ${ints(p, 'depths').length})`;
    return undefined;
  },
  weights(p) {
    const l = resnetLayout(p);
    const out: WeightSpec[] = convWeights(l.stem, false);
    for (const b of l.blocks) {
      b.convs.forEach((c, i) => out.push(...convWeights(c, i === b.convs.length - 1)));
      if (b.downsample) out.push(...convWeights(b.downsample, false));
    }
    out.push(
      { name: 'fc.weight', shape: [l.classes, l.features], init: { kind: 'normal', std: 1 / Math.sqrt(l.features) } },
      { name: 'fc.bias', shape: [l.classes], init: { kind: 'uniform', low: -0.1, high: 0.1 } },
    );
    return out;
  },
  inputs(p, batch) {
    return [{ name: 'images', shape: [batch, int(p, 'channels'), int(p, 'image'), int(p, 'image')], dtype: 'F32', init: { kind: 'normal', std: 1 } }];
  },
  outputShape: (p, batch) => [batch, int(p, 'classes')],
  flopsPerSample(p) {
    const l = resnetLayout(p);
    const convFlops = allConvs(l).reduce((s, c) => s + 2 * c.cout * c.outSize * c.outSize * c.cin * c.k * c.k, 0);
    return convFlops + 2 * l.features * l.classes;
  },
};
