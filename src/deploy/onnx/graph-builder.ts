// A small builder of ONNX graphs: nodes with generated value names, attributes by kind, initializers
// (f32 / int8 / uint8 / int64 / int32 raw data, little-endian) and graph inputs / outputs with named
// dynamic dimensions. Constant int64 vectors are shared by value so a shape used by every layer is stored once.
import { AttributeType, DataLocation, DataType } from './proto.js';
import type { AttributeProto, Dimension, GraphProto, NodeProto, TensorProto, ValueInfoProto } from './proto.js';

export const attr = {
  int: (name: string, i: number): AttributeProto => ({ name, type: AttributeType.INT, i }),
  float: (name: string, f: number): AttributeProto => ({ name, type: AttributeType.FLOAT, f }),
  ints: (name: string, ints: number[]): AttributeProto => ({ name, type: AttributeType.INTS, ints }),
  tensor: (name: string, t: TensorProto): AttributeProto => ({ name, type: AttributeType.TENSOR, t }),
};

/** a graph input or output: element type and dims, each a size or a symbolic name */
export function valueInfo(name: string, elemType: number, dims: (number | string)[]): ValueInfoProto {
  const dim: Dimension[] = dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d }));
  return { name, type: { tensor_type: { elem_type: elemType, shape: { dim } } } };
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export type InitializerData = Float32Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;

function dataTypeOf(data: InitializerData): number {
  if (data instanceof Float32Array) return DataType.FLOAT;
  if (data instanceof Int8Array) return DataType.INT8;
  if (data instanceof Uint8Array) return DataType.UINT8;
  if (data instanceof Int32Array) return DataType.INT32;
  return DataType.INT64;
}

/**
 * Where large initializers go instead of raw_data: `write` appends the bytes to the external data file and
 * returns their offset. The builder then keeps only the reference, so a graph's weights never all sit in
 * memory at once.
 */
export interface ExternalDataSink {
  /** the data file's name, relative to the .onnx file */
  location: string;
  write(bytes: Uint8Array): number;
  /** initializers smaller than this stay inline (default 1024 bytes) */
  minBytes?: number;
}

export class GraphBuilder {
  /** bytes of every initializer added, inline or external */
  dataBytes = 0;
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly inputs: ValueInfoProto[] = [];
  readonly outputs: ValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private readonly constants = new Map<string, string>();
  private counter = 0;

  constructor(private readonly external?: ExternalDataSink) {}

  /** a value name not used yet, from a readable stem */
  fresh(stem: string): string {
    let name = stem;
    while (this.names.has(name)) name = `${stem}_${++this.counter}`;
    this.names.add(name);
    return name;
  }

  /** adds a node; returns its first output (outputs: how many, or their names) */
  op(opType: string, inputs: string[], attributes: AttributeProto[] = [], opts: { name?: string; outputs?: string[]; domain?: string } = {}): string {
    return this.opN(opType, inputs, attributes, opts)[0];
  }

  opN(opType: string, inputs: string[], attributes: AttributeProto[] = [], opts: { name?: string; outputs?: string[] | number; domain?: string } = {}): string[] {
    const stem = opts.name ?? `${opType}`;
    const outputs = Array.isArray(opts.outputs)
      ? opts.outputs.map((o) => this.fresh(o))
      : Array.from({ length: opts.outputs ?? 1 }, (_, i) => this.fresh(`${stem}/out${i}`));
    this.nodes.push({ input: inputs, output: outputs, name: this.fresh(`node:${stem}`), op_type: opType, attribute: attributes, ...(opts.domain ? { domain: opts.domain } : {}) });
    return outputs;
  }

  /** a named initializer (the name is kept as given) */
  initializer(name: string, data: InitializerData, dims: number[]): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`initializer ${name}: ${data.length} values do not fill dims [${dims.join(', ')}]`);
    if (this.names.has(name)) throw new Error(`initializer ${name}: the name is already used in the graph`);
    this.names.add(name);
    const bytes = bytesOf(data);
    this.dataBytes += bytes.byteLength;
    if (this.external && bytes.byteLength >= (this.external.minBytes ?? 1024)) {
      const offset = this.external.write(bytes);
      this.initializers.push({
        name,
        dims,
        data_type: dataTypeOf(data),
        data_location: DataLocation.EXTERNAL,
        external_data: [
          { key: 'location', value: this.external.location },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(bytes.byteLength) },
        ],
      });
    } else {
      this.initializers.push({ name, dims, data_type: dataTypeOf(data), raw_data: bytes });
    }
    return name;
  }

  /** an int64 constant (a 1-D vector, or a scalar with dims []), shared by value */
  int64(values: number[], dims: number[] = [values.length]): string {
    const key = `i64:${dims.join('x')}:${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.fresh(dims.length === 0 ? `const_i64_${values[0]}` : `const_i64_[${values.join(',')}]`);
      this.names.delete(name);
      this.initializer(name, BigInt64Array.from(values.map((v) => BigInt(v))), dims);
      this.constants.set(key, name);
    }
    return name;
  }

  /** an f32 constant, shared by value */
  float(values: number[], dims: number[] = [values.length]): string {
    const key = `f32:${dims.join('x')}:${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.fresh(`const_f32_${dims.length === 0 ? values[0] : values.length}`);
      this.names.delete(name);
      this.initializer(name, Float32Array.from(values), dims);
      this.constants.set(key, name);
    }
    return name;
  }

  input(name: string, elemType: number, dims: (number | string)[]): string {
    if (this.names.has(name)) throw new Error(`graph input ${name}: the name is already used`);
    this.names.add(name);
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /** declares `value` a graph output under `name` (an Identity node renames it) */
  output(name: string, value: string, elemType: number, dims: (number | string)[]): void {
    this.op('Identity', [value], [], { outputs: [name], name });
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  build(name: string, docString?: string): GraphProto {
    return { name, node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs, ...(docString ? { doc_string: docString } : {}) };
  }
}
