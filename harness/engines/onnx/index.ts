import type { TensorMap } from '../../../workloads/safetensors.js';
import type { FamilyName, Params } from '../../../workloads/types.js';
import { cnnGraph } from './cnn.js';
import type { GraphBuilder } from './graph.js';
import { rnnGraph } from './rnn.js';
import { transformerGraph } from './transformer.js';

const BUILDERS: Record<FamilyName, (params: Params, weights: TensorMap) => GraphBuilder> = {
  cnn: cnnGraph,
  rnn: rnnGraph,
  transformer: transformerGraph,
};

/** The ONNX model (opset 17, IR 8, symbolic batch) of a workload instance, built from canonical weights. */
export function buildOnnxModel(family: FamilyName, params: Params, weights: TensorMap): Uint8Array {
  return BUILDERS[family](params, weights).toModel();
}
