// starweave-finetune: the library entry point. The compute core (tensors, ops, runtime controls) is
// re-exported from bindings/; the data, model, training, evaluation and deployment layers join it as
// they land.
export * from '../bindings/index.js';
export { fitLoraDemo, type DemoOptions, type DemoResult } from './demo/lora-fit.js';
export * from './data/index.js';
export { runDataCommand, DATA_USAGE } from './cli/data.js';
export { loadModelFiles, type ModelFiles, type LoadModelOptions, type GenerationConfig } from './model/files.js';
export {
  loadModelConfig, normalizeModelConfig, toHfConfig, maxSequenceLength, checkSequenceLength, SUPPORTED_ARCHITECTURES,
  SUPPORTED_ROPE_TYPES, RawModelConfig, type ModelConfig, type RopeScaling, type Architecture, type WeightDType,
} from './model/config.js';
export {
  SafetensorsFile, SafetensorsCheckpoint, readSafetensorsHeader, writeSafetensors, writeSafetensorsSync,
  writeSafetensorsCheckpoint, MAX_HEADER_BYTES, SAFETENSORS_DTYPES, type SafetensorsDType, type SafetensorsEntry,
  type SafetensorsHeader, type LoadTensorOptions, type RawTensor, type WritableTensor, type TensorSource,
  type WriteOptions, type ShardOptions,
} from './model/safetensors.js';
export {
  loadTokenizer, ModelTokenizer, ChatTemplateError, CHATML_TEMPLATE, type ChatMessage as TemplateChatMessage,
  type LoadTokenizerOptions, type EncodeOptions, type DecodeOptions, type TemplateOptions,
} from './model/tokenizer.js';
export { generateTinyModel, TINY_PRESETS, tinyModelConfig, type TinyPreset, type TinyPresetName, type GeneratedModel, type GenerateOptions } from './model/tiny.js';
export { expectedTensors, parameterCount, PROJECTIONS, type ExpectedTensor, type Projection } from './model/layout.js';
export { ModelFileError } from './model/errors.js';
export {
  PortServer, PORT_DEFAULTS, METHODS as PORT_METHODS, PROTOCOL_VERSION, runPortCommand, PORT_USAGE, PortError, Workspace,
  type ServerOptions as PortServerOptions, type ErrorPayload as PortErrorPayload, type ErrorCode as PortErrorCode,
} from './port/index.js';
export {
  LlamaModel, LORA_TARGET_MODULES, LoraConfigSchema, nativeModelConfig, type LoraConfig, type ResolvedLoraConfig,
  type TokenBatch, type StepConfig,
} from './model/native-model.js';
export {
  generate, GenerationConfigSchema, type GenerationConfig as SamplingConfig, type ResolvedGenerationConfig, type FinishReason,
  type TokenEvent, type GenerateHooks, type GenerationResult,
} from './model/generate.js';
export * from './train/index.js';
export { runTrainCommand } from './cli/train.js';
export * from './eval/index.js';
export { runPipeline, resumePipeline, readPipelineReport, PipelineError, PIPELINE_FILE, CONFIG_FILE as PIPELINE_CONFIG_FILE, type PipelineReport, type PipelineRound, type PipelineEvent, type PipelineOptions, type PipelineStatus } from './pipeline/pipeline.js';
export { runPipelineCommand } from './cli/pipeline.js';
export * from './deploy/onnx/index.js';
export {
  Registry, RegistryError, RegisterParams, PromoteParams, REGISTRY_FORMAT, ARTIFACT_KINDS, detectKind as detectArtifactKind,
  describeBaseModel, type ArtifactKind, type VersionRecord, type Lineage as VersionLineage, type HistoryEntry as ChannelHistoryEntry,
  type RegistryIndex, type RegisterResult, type RegistryEvent, type TestSummary as VersionTestSummary, type BaseModelRef,
} from './deploy/registry.js';
export { RegistryLockError } from './deploy/registry-lock.js';
export { ServingEngine, ServeRequest, type ServeResponse, type ServingOptions } from './deploy/serving.js';
export {
  loadSuite, parseSuite, runSuite, testVersion, promoteWithTests, checkResponse, formatFailures, SuiteSchema, SuiteError,
  PromoteWithTestsParams, type Suite, type SuiteResult, type CaseResult, type CaseFailure, type PromoteWithTestsResult,
} from './deploy/integration.js';
export { validateJsonSchema, checkJsonSchema } from './deploy/integration-schema.js';
export { Router, RouterConfig, RouteRequest, RouteError, keyBucket, type AbReport, type VersionReport, type RouteResponse, type Arm } from './deploy/router.js';
export { Monitor, DriftConfig, LATENCY_BUCKETS_S, type DriftAlarm, type MonitorSnapshot, type Observation as MonitorObservation } from './deploy/monitor.js';
export { runRegistryCommand, REGISTRY_USAGE } from './cli/registry.js';
export { DeploymentService, DEPLOY_METHODS, DeployParamsError, type DeploymentOptions } from './deploy/serving-service.js';
export {
  writePeftAdapter, writeLoraAdapter, readPeftAdapter, applyLoraAdapter, adapterOf, peftAdapterConfigJson, peftKey, parsePeftKey, loraScale,
  ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, type LoraAdapter, type AdapterTensor, type AdapterDType, type WritePeftOptions, type ReadAdapterOptions,
} from './deploy/peft.js';
export { writeMergedModel, mergedTensors, mergeWeight, type MergedTensor, type MergedModelOptions, type MergedModelResult } from './deploy/merged.js';
export {
  writeGgufModel, writeGgufAdapter, ggufModelMetadata, ggufArchitecture, ggufTensorName, ggufPreTokenizer, permuteRows,
  type GgufDType, type GgufModelOptions, type GgufAdapterOptions, type GgufExportResult,
} from './deploy/gguf.js';
export { writeGguf, encodeTensor, quantizeQ8_0, gv as ggufValue, GgufError, type GgufTensor, type GgufValue, type GgmlType } from './deploy/gguf-file.js';
export {
  writeOllamaModelfile, renderModelfile, recognizeChatTemplate, ollamaTemplate, renderFamily, CHAT_FAMILIES, ChatTemplateNotRecognized,
  type ChatFamily, type ModelfileSpec, type OllamaModelfileOptions,
} from './deploy/modelfile.js';
export { exportModel, EXPORT_FORMATS, EXPORT_DTYPES, type ExportOptions, type ExportDType } from './deploy/export.js';
export { resolveExportSource, loadExportInputs, ExportError, type ExportSource, type ExportSourceInput } from './deploy/source.js';
export { readExportManifest, EXPORT_MANIFEST, type ExportManifest, type ExportFormat, type ExportFileEntry } from './deploy/manifest.js';
export { runExportCommand, EXPORT_USAGE } from './cli/export.js';
