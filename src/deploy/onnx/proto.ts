// The part of onnx.proto (github.com/onnx/onnx, onnx/onnx.proto, proto2) that a decoder export needs,
// defined with protobufjs' reflection API from the field numbers of that file: ModelProto, GraphProto,
// NodeProto, AttributeProto, TensorProto (raw_data or external data), ValueInfoProto with TypeProto.Tensor
// and TensorShapeProto, OperatorSetIdProto, StringStringEntryProto. Field names are onnx.proto's
// (snake_case, kept as written: `keepCase`). Encoding and decoding go through the same definitions, so the
// tests read back what the exporter writes; onnxruntime is the real reader.
import protobuf from 'protobufjs';

/** TensorProto.DataType values used here */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9 } as const;
export type DataTypeName = keyof typeof DataType;

/** AttributeProto.AttributeType values used here */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** TensorProto.DataLocation */
export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

export interface StringStringEntry {
  key: string;
  value: string;
}

export interface TensorProto {
  name: string;
  dims: number[];
  data_type: number;
  raw_data?: Uint8Array;
  /** data_location EXTERNAL with external_data location / offset / length */
  data_location?: number;
  external_data?: StringStringEntry[];
}

export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  floats?: number[];
  ints?: number[];
}

export interface NodeProto {
  input: string[];
  output: string[];
  name: string;
  op_type: string;
  domain?: string;
  attribute: AttributeProto[];
}

/** a dimension: a fixed size (dim_value) or a named symbolic one (dim_param) */
export interface Dimension {
  dim_value?: number;
  dim_param?: string;
}

export interface ValueInfoProto {
  name: string;
  type: { tensor_type: { elem_type: number; shape: { dim: Dimension[] } } };
}

export interface GraphProto {
  name: string;
  node: NodeProto[];
  initializer: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  doc_string?: string;
}

export interface ModelProto {
  ir_version: number;
  opset_import: { domain: string; version: number }[];
  producer_name: string;
  producer_version: string;
  doc_string?: string;
  graph: GraphProto;
  metadata_props?: StringStringEntry[];
}

const { Type, Field, Enum, OneOf, Root } = protobuf;

function message(name: string, fields: [name: string, id: number, type: string, rule?: 'repeated'][]): protobuf.Type {
  const t = new Type(name);
  for (const [n, id, type, rule] of fields) t.add(new Field(n, id, type, rule));
  return t;
}

function buildRoot(): protobuf.Root {
  const dimension = message('Dimension', [
    ['dim_value', 1, 'int64'],
    ['dim_param', 2, 'string'],
    ['denotation', 3, 'string'],
  ]);
  dimension.add(new OneOf('value', ['dim_value', 'dim_param']));
  const shape = message('TensorShapeProto', [['dim', 1, 'TensorShapeProto.Dimension', 'repeated']]).add(dimension);
  const tensorType = message('Tensor', [
    ['elem_type', 1, 'int32'],
    ['shape', 2, 'TensorShapeProto'],
  ]);
  const typeProto = message('TypeProto', [
    ['tensor_type', 1, 'TypeProto.Tensor'],
    ['denotation', 6, 'string'],
  ]).add(tensorType);
  const onnx = Root.fromJSON({}).define('onnx');
  onnx
    .add(shape)
    .add(typeProto)
    .add(message('StringStringEntryProto', [
      ['key', 1, 'string'],
      ['value', 2, 'string'],
    ]))
    .add(message('OperatorSetIdProto', [
      ['domain', 1, 'string'],
      ['version', 2, 'int64'],
    ]))
    .add(message('TensorProto', [
      ['dims', 1, 'int64', 'repeated'],
      ['data_type', 2, 'int32'],
      ['float_data', 4, 'float', 'repeated'],
      ['int32_data', 5, 'int32', 'repeated'],
      ['int64_data', 7, 'int64', 'repeated'],
      ['name', 8, 'string'],
      ['raw_data', 9, 'bytes'],
      ['doc_string', 12, 'string'],
      ['external_data', 13, 'StringStringEntryProto', 'repeated'],
      ['data_location', 14, 'DataLocation'],
    ]).add(new Enum('DataLocation', { ...DataLocation })))
    .add(message('AttributeProto', [
      ['name', 1, 'string'],
      ['f', 2, 'float'],
      ['i', 3, 'int64'],
      ['s', 4, 'bytes'],
      ['t', 5, 'TensorProto'],
      ['floats', 7, 'float', 'repeated'],
      ['ints', 8, 'int64', 'repeated'],
      ['doc_string', 13, 'string'],
      ['type', 20, 'int32'],
    ]))
    .add(message('ValueInfoProto', [
      ['name', 1, 'string'],
      ['type', 2, 'TypeProto'],
      ['doc_string', 3, 'string'],
    ]))
    .add(message('NodeProto', [
      ['input', 1, 'string', 'repeated'],
      ['output', 2, 'string', 'repeated'],
      ['name', 3, 'string'],
      ['op_type', 4, 'string'],
      ['attribute', 5, 'AttributeProto', 'repeated'],
      ['doc_string', 6, 'string'],
      ['domain', 7, 'string'],
    ]))
    .add(message('GraphProto', [
      ['node', 1, 'NodeProto', 'repeated'],
      ['name', 2, 'string'],
      ['initializer', 5, 'TensorProto', 'repeated'],
      ['doc_string', 10, 'string'],
      ['input', 11, 'ValueInfoProto', 'repeated'],
      ['output', 12, 'ValueInfoProto', 'repeated'],
    ]))
    .add(message('ModelProto', [
      ['ir_version', 1, 'int64'],
      ['producer_name', 2, 'string'],
      ['producer_version', 3, 'string'],
      ['domain', 4, 'string'],
      ['model_version', 5, 'int64'],
      ['doc_string', 6, 'string'],
      ['graph', 7, 'GraphProto'],
      ['opset_import', 8, 'OperatorSetIdProto', 'repeated'],
      ['metadata_props', 14, 'StringStringEntryProto', 'repeated'],
    ]));
  return onnx.root.resolveAll() as protobuf.Root;
}

let root: protobuf.Root | undefined;
function modelType(): protobuf.Type {
  root ??= buildRoot();
  return root.lookupType('onnx.ModelProto');
}

/** Serializes a ModelProto (the bytes of a .onnx file). */
export function encodeModel(model: ModelProto): Uint8Array {
  const T = modelType();
  const err = T.verify(model);
  if (err) throw new Error(`ONNX ModelProto is malformed: ${err}`);
  return T.encode(model).finish();
}

/** Parses the bytes of a .onnx file (int64 fields as numbers; bytes as Uint8Array). */
export function decodeModel(bytes: Uint8Array): ModelProto {
  const T = modelType();
  // bytes stay Uint8Array (protobufjs converts them only when asked for String or Array)
  return T.toObject(T.decode(bytes), { longs: Number, arrays: true }) as ModelProto;
}
