// ONNX export of a (merged) Llama-family model with a KV cache, and running it with onnxruntime-node.
export { exportOnnx, buildOnnxModel } from './export.js';
export type { ExportOnnxOptions } from './export.js';
export { ONNX_MODEL_FILE, ONNX_DATA_FILE, ONNX_MANIFEST_FILE, ioSpec } from './manifest.js';
export type { OnnxExportManifest, OnnxTensorSpec } from './manifest.js';
export { buildDecoderGraph, OPSET as ONNX_OPSET, OPSETS as ONNX_OPSETS, DIM as ONNX_DIMS } from './decoder-graph.js';
export type { Precision as OnnxPrecision, Opset as OnnxOpset } from './decoder-graph.js';
export { OnnxCausalLM, loadOrt } from './runtime.js';
export type { KvCache, ForwardInput, ForwardOutput, OnnxSessionOptions, OnnxModelShape } from './runtime.js';
export { measureInt8Accuracy, HELD_OUT_TEXT } from './accuracy.js';
export type { Int8Accuracy } from './accuracy.js';
export { encodeModel as encodeOnnxModel, decodeModel as decodeOnnxModel } from './proto.js';
