// starweave-finetune: the library entry point. The compute core (tensors, ops, runtime controls) is
// re-exported from bindings/; the data, model, training, evaluation and deployment layers join it as
// they land.
export * from '../bindings/index.js';
export { fitLoraDemo, type DemoOptions, type DemoResult } from './demo/lora-fit.js';
export * from './data/index.js';
export { runDataCommand, DATA_USAGE } from './cli/data.js';
