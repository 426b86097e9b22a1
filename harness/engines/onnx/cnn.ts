import { resnetLayout, type ConvLayer } from '../../../workloads/cnn.js';
import type { TensorMap } from '../../../workloads/safetensors.js';
import type { Params } from '../../../workloads/types.js';
import { float, GraphBuilder, weight } from './graph.js';

/** BatchNorm epsilon shared by every engine (PyTorch's default). */
const BN_EPS = 1e-5;

/**
 * ResNet as ONNX: Conv + BatchNormalization (+ Relu) per convolution, exactly as a framework export
 * looks before optimization, so ORT's own Conv/BN/ReLU fusions are what the optimization levels
 * measure. Input `images` [batch, C, H, W], output `logits` [batch, classes].
 */
export function cnnGraph(params: Params, weights: TensorMap): GraphBuilder {
  const l = resnetLayout(params);
  const g = new GraphBuilder('fwbench-cnn');

  const convBn = (x: string, c: ConvLayer, relu: boolean): string => {
    const kernel = g.initializer(c.weight, weight(weights, c.weight, [c.cout, c.cin, c.k, c.k]));
    const conv = g.op('Conv', [x, kernel], { kernel_shape: [c.k, c.k], strides: [c.stride, c.stride], pads: [c.pad, c.pad, c.pad, c.pad] });
    const bn = ['weight', 'bias', 'running_mean', 'running_var'].map((p) => g.initializer(`${c.bn}.${p}`, weight(weights, `${c.bn}.${p}`, [c.cout])));
    const y = g.op('BatchNormalization', [conv, ...bn], { epsilon: float(BN_EPS) });
    return relu ? g.op('Relu', [y]) : y;
  };

  let x = g.input('images', 'float32', ['batch', l.channels, l.image, l.image]);
  x = convBn(x, l.stem, true);
  x = g.op('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  for (const b of l.blocks) {
    let y = x;
    b.convs.forEach((c, i) => (y = convBn(y, c, i < b.convs.length - 1)));
    const shortcut = b.downsample ? convBn(x, b.downsample, false) : x;
    x = g.op('Relu', [g.op('Add', [y, shortcut])]);
  }
  const features = g.op('Flatten', [g.op('GlobalAveragePool', [x])], { axis: 1 });
  const fcW = g.initializer('fc.weight', weight(weights, 'fc.weight', [l.classes, l.features]));
  const fcB = g.initializer('fc.bias', weight(weights, 'fc.bias', [l.classes]));
  g.node('Gemm', [features, fcW, fcB], ['logits'], { transB: 1 });
  g.output('logits', 'float32', ['batch', l.classes]);
  return g;
}
