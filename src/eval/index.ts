// Evaluation: metrics on held-out records (token accuracy, exact match, ROUGE-L, per category, base vs
// tuned), the gate, eval.json, and HTML reports of runs.
export { EvalMetricsSpecSchema, GateSpecSchema, RemediationSpecSchema, PerfSpecSchema, type PerfSpec, type EvalMetricsSpec, type EvalMetricsSpecInput, type GateSpec, type RemediationSpec } from './config.js';
export { wordTokens, lcsLength, rougeLTokens, rougeL, exactMatch, type RougeL } from './rouge.js';
export {
  evaluateModel,
  scoreTokens,
  generateSamples,
  splitPrompt,
  withAdapterOff,
  type EvalRecord,
  type EvalOptions,
  type CategoryMetrics,
  type ModelMetrics,
  type Sample,
  type TokenScore,
} from './evaluate.js';
export { checkGate, type GateCheck, type GateResult } from './gate.js';
export { runEvaluation, writeEvalReport, readEvalReport, type EvalReport } from './run-eval.js';
export { renderRunReport, writeRunReport, renderComparison, compareRuns, lineChartSvg, escapeHtml, type Series, type RunComparisonRow } from './report-html.js';
export { runSweep, sweepConfigs, gridPoints, parseSetArg, type SweepGrid, type SweepRun, type SweepResult } from './sweep.js';
export { exportReviewSheet, readVerdicts, scoreReview, wilson95, parseCsv, type ReviewItem, type ReviewKey, type ReviewOutcome } from './review.js';
export { planRemediation, attributeFailures, writeRemediation, readRemediation, REMEDIATION_FILE, type RemediationPlan, type FailingCategory, type ReviewItem as RemediationReviewItem, type PlanContext } from './remediation.js';
export { benchmarkModel, benchmarkModelDir, readPromptsFile, percentile, distribution, DEFAULT_PERF_PROMPTS, type PerfOptions, type PerfReport, type PerfRequest, type Distribution } from './perf.js';
