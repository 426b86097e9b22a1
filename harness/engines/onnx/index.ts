import type { TensorMap } from '../../../workloads/safetensors.js';
import { cnn } from '../../../workloads/cnn.js';
import { streamProblem } from '../../../workloads/shapes.js';
import type { FamilyName, Params } from '../../../workloads/types.js';
import { cnnGraph } from './cnn.js';
import type { GraphBuilder, GraphOptions } from './graph.js';
import { rnnGraph } from './rnn.js';
import { transformerGraph } from './transformer.js';

const BUILDERS: Record<FamilyName, (params: Params, weights: TensorMap, options?: GraphOptions) => GraphBuilder> = {
  cnn: (params, weights, options) => {
    if (options?.stream) throw new Error(streamProblem(cnn));
    return cnnGraph(params, weights);
  },
  rnn: rnnGraph,
  transformer: transformerGraph,
};

/** The ONNX model (opset 17, IR 8, symbolic batch; with `stream` symbolic length and a `lengths` input too) of a workload instance, built from canonical weights. */
export function buildOnnxModel(family: FamilyName, params: Params, weights: TensorMap, options: GraphOptions = {}): Uint8Array {
  return BUILDERS[family](params, weights, options).toModel();
}
