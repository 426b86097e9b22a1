import protobuf from 'protobufjs';

/**
 * The subset of the ONNX protobuf schema (onnx/onnx.proto, proto2) that fwbench writes, declared
 * with protobufjs reflection so no .proto file or code generator is needed at run time. Field names
 * and numbers are the official ones. Fields fwbench never writes are left out: every ONNX field is
 * optional on the wire, so readers see them as unset and files stay fully valid ONNX.
 */

/** `TensorProto.DataType` values fwbench uses. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10, BFLOAT16: 16 } as const;
/** An element type code from {@link DataType}. */
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** `AttributeProto.AttributeType` values fwbench uses. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;
/** An attribute type code from {@link AttributeType}. */
export type AttributeTypeCode = (typeof AttributeType)[keyof typeof AttributeType];

/** A serialized tensor (initializers only ever use raw little-endian bytes). */
export interface TensorLike {
  name: string;
  dims: number[];
  data_type: DataTypeCode;
  raw_data: Uint8Array;
}

/** One node attribute; exactly one value field matches `type`. */
export interface AttributeLike {
  name: string;
  type: AttributeTypeCode;
  f?: number;
  i?: number;
  s?: Uint8Array;
  floats?: number[];
  ints?: number[];
}

/** One operator application. An empty input or output name marks an omitted optional one. */
export interface NodeLike {
  name: string;
  op_type: string;
  /** The operator set's domain: absent or '' for ONNX's own, `com.microsoft` for ONNX Runtime's contrib operators. */
  domain?: string;
  input: string[];
  output: string[];
  attribute: AttributeLike[];
}

/** One dimension: a fixed size or a symbolic name such as `batch`. */
export type DimensionLike = { dim_value: number } | { dim_param: string };

/** A typed graph input or output. */
export interface ValueInfoLike {
  name: string;
  type: { tensor_type: { elem_type: DataTypeCode; shape: { dim: DimensionLike[] } } };
}

/** A computation graph. */
export interface GraphLike {
  name: string;
  node: NodeLike[];
  initializer: TensorLike[];
  input: ValueInfoLike[];
  output: ValueInfoLike[];
}

/** A whole model file. */
export interface ModelLike {
  ir_version: number;
  opset_import: Array<{ domain: string; version: number }>;
  producer_name: string;
  producer_version: string;
  graph: GraphLike;
}

type Rule = 'optional' | 'repeated';
const message = (name: string, fields: Array<[string, number, string, Rule?]>): protobuf.Type => {
  const t = new protobuf.Type(name);
  for (const [fieldName, id, type, rule] of fields) t.add(new protobuf.Field(fieldName, id, type, rule ?? 'optional'));
  return t;
};

function buildRoot(): protobuf.Root {
  const dimension = message('Dimension', [
    ['dim_value', 1, 'int64'],
    ['dim_param', 2, 'string'],
    ['denotation', 3, 'string'],
  ]);
  dimension.add(new protobuf.OneOf('value', ['dim_value', 'dim_param']));
  const shape = message('TensorShapeProto', [['dim', 1, 'Dimension', 'repeated']]).add(dimension);

  const tensorType = message('Tensor', [
    ['elem_type', 1, 'int32'],
    ['shape', 2, 'TensorShapeProto'],
  ]);
  const typeProto = message('TypeProto', [
    ['tensor_type', 1, 'Tensor'],
    ['denotation', 6, 'string'],
  ]).add(tensorType);
  typeProto.add(new protobuf.OneOf('value', ['tensor_type']));

  const dataType = new protobuf.Enum('DataType', { UNDEFINED: 0, ...DataType });
  const tensor = message('TensorProto', [
    ['dims', 1, 'int64', 'repeated'],
    ['data_type', 2, 'int32'],
    ['name', 8, 'string'],
    ['raw_data', 9, 'bytes'],
    ['doc_string', 12, 'string'],
  ]).add(dataType);

  const attributeType = new protobuf.Enum('AttributeType', { UNDEFINED: 0, ...AttributeType });
  const attribute = message('AttributeProto', [
    ['name', 1, 'string'],
    ['f', 2, 'float'],
    ['i', 3, 'int64'],
    ['s', 4, 'bytes'],
    ['floats', 7, 'float', 'repeated'],
    ['ints', 8, 'int64', 'repeated'],
    ['doc_string', 13, 'string'],
    ['type', 20, 'AttributeType'],
  ]).add(attributeType);

  const node = message('NodeProto', [
    ['input', 1, 'string', 'repeated'],
    ['output', 2, 'string', 'repeated'],
    ['name', 3, 'string'],
    ['op_type', 4, 'string'],
    ['attribute', 5, 'AttributeProto', 'repeated'],
    ['doc_string', 6, 'string'],
    ['domain', 7, 'string'],
  ]);

  const valueInfo = message('ValueInfoProto', [
    ['name', 1, 'string'],
    ['type', 2, 'TypeProto'],
    ['doc_string', 3, 'string'],
  ]);

  const graph = message('GraphProto', [
    ['node', 1, 'NodeProto', 'repeated'],
    ['name', 2, 'string'],
    ['initializer', 5, 'TensorProto', 'repeated'],
    ['doc_string', 10, 'string'],
    ['input', 11, 'ValueInfoProto', 'repeated'],
    ['output', 12, 'ValueInfoProto', 'repeated'],
    ['value_info', 13, 'ValueInfoProto', 'repeated'],
  ]);

  const opset = message('OperatorSetIdProto', [
    ['domain', 1, 'string'],
    ['version', 2, 'int64'],
  ]);

  const model = message('ModelProto', [
    ['ir_version', 1, 'int64'],
    ['producer_name', 2, 'string'],
    ['producer_version', 3, 'string'],
    ['domain', 4, 'string'],
    ['model_version', 5, 'int64'],
    ['doc_string', 6, 'string'],
    ['graph', 7, 'GraphProto'],
    ['opset_import', 8, 'OperatorSetIdProto', 'repeated'],
  ]);

  const onnx = new protobuf.Namespace('onnx');
  for (const t of [shape, typeProto, tensor, attribute, node, valueInfo, graph, opset, model]) onnx.add(t);
  const root = new protobuf.Root();
  root.add(onnx);
  root.resolveAll();
  return root;
}

const modelType = buildRoot().lookupType('onnx.ModelProto');

/** Serializes a model to ONNX protobuf bytes (the `.onnx` file format). */
export function encodeModel(model: ModelLike): Uint8Array {
  const problem = modelType.verify(model);
  if (problem) throw new Error(`invalid ONNX model: ${problem}`);
  return modelType.encode(modelType.fromObject(model)).finish();
}

/** Parses ONNX protobuf bytes into a plain object of the fields present (int64 as numbers, bytes as Uint8Array). */
export function decodeModel(bytes: Uint8Array): Record<string, unknown> {
  return modelType.toObject(modelType.decode(bytes), { longs: Number });
}
