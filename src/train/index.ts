// Training runs: config, data loader, loop, checkpoints, run directories.
export { RunConfigSchema, RunConfigError, parseRunConfig, loadRunConfigFile, readConfigObject, isYamlFile, type RunConfig, type RunConfigInput, type RunConfigIssue, type LocateField } from './config.js';
export {
  DataLoader,
  weightedIndices,
  type LossOn,
  tokenizeExamples,
  packRows,
  makeBatch,
  shuffledOrder,
  mixSeed,
  type LoaderPosition,
  type LoaderOptions,
  type TokenizedExample,
  type TokenizeStats,
} from './data.js';
export { learningRate, type ScheduleSpec } from './schedule.js';
export { writeCheckpoint, readCheckpoint, listCheckpoints, type TrainerState, type LoadedCheckpoint } from './checkpoint.js';
export {
  startTraining,
  resumeTraining,
  TrainingJob,
  TrainingError,
  type StartOptions,
  type TrainingEvent,
  type StepEvent,
  type EvalEvent,
  type CheckpointEvent,
  type StartEvent,
  type DoneEvent,
  type FailedEvent,
  type RunResult,
  type RunStatus,
  type Preflight,
  type TrainingHooks,
  type DataParallel,
  type DatasetInfo,
} from './runner.js';
export { listRuns, summarizeRun, readMetrics, type RunSummary, type MetricsRow } from './runs.js';
