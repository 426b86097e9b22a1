import type { TensorMap } from '../../../workloads/safetensors.js';
import { cnn } from '../../../workloads/cnn.js';
import { streamProblem } from '../../../workloads/shapes.js';
import type { FamilyName, Params } from '../../../workloads/types.js';
import { cnnGraph } from './cnn.js';
import { decoderGraph } from './decoder.js';
import { graphToModel, type GraphBuilder, type GraphOptions } from './graph.js';
import { censusOf, precisionFromCensus, withPrecision, type GraphPrecision } from './precision.js';
import { decodeModel } from './proto.js';
import { rnnGraph } from './rnn.js';
import { transformerGraph } from './transformer.js';

export { cacheNames } from './decoder.js';

const BUILDERS: Record<FamilyName, (params: Params, weights: TensorMap, options?: GraphOptions) => GraphBuilder> = {
  cnn: (params, weights, options) => {
    if (options?.stream) throw new Error(streamProblem(cnn));
    return cnnGraph(params, weights);
  },
  rnn: rnnGraph,
  transformer: transformerGraph,
  decoder: (params, weights, options) => {
    if (options?.stream) throw new Error('the decoder family generates text (--tasks generate): its one graph already takes any length');
    return decoderGraph(params, weights);
  },
};

/** How {@link buildOnnxModel} builds: the family's graph options and the number format to rewrite it to. */
export interface BuildOptions extends GraphOptions {
  /** fp16 or int8 rewrite the family's float32 graph (./precision.ts); absent or fp32: unchanged. */
  precision?: GraphPrecision;
  /** int8: weights in 7 bits (quantize_dynamic's reduce_range), for x86 CPUs without VNNI. */
  reduceRange?: boolean;
}

/**
 * The ONNX model (opset 17, IR 8, symbolic batch; with `stream` symbolic length and a `lengths`
 * input too) of a workload instance, built from canonical weights, in the precision asked. The
 * decoder's is its generation graph (./decoder.ts: new tokens and past key/values in; next id,
 * logits and presents out).
 */
export function buildOnnxModel(
  family: FamilyName,
  params: Params,
  weights: TensorMap,
  { precision = 'fp32', reduceRange = false, ...options }: BuildOptions = {},
): Uint8Array {
  return graphToModel(withPrecision(BUILDERS[family](params, weights, options).toGraph(), precision, reduceRange));
}

/**
 * What precision a session really computes in, read from the graph it optimized and saved
 * (SessionOptions.optimizedModelFilePath): its integer operators and 8-bit weights for int8, its
 * float16 weights for fp16. ORT rewrites what it has no kernels for (on the CPU provider a float16
 * MatMul's weights become float32), so the graph handed to it is not evidence; this one is.
 */
export function sessionPrecision(optimizedModel: Uint8Array, asked: 'int8' | 'fp16'): { used: 'int8' | 'fp16' | 'fp32'; evidence: string } {
  return precisionFromCensus(censusOf(decodeModel(optimizedModel)), asked);
}
