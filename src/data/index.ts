// The data pipeline's public face: sources -> clean -> dedup -> format -> validate -> split -> version.
export * from './schema.js';
export { DataError, formatWhere } from './errors.js';
export { buildDataset, commitVersion, loadConfigFile, parseConfig, processSources, projectInfo, StrictModeError, type BuildOptions, type BuildProgress, type BuildResult } from './build.js';
export { cleanMessages, normalizeText, scrub, emptyScrubCounts, SCRUB_KINDS, type ScrubCounts, type ScrubKind } from './clean.js';
export { DedupIndex, MinHasher, dedupText, exactKey, estimateJaccard, jaccard, type DedupVerdict, type MinHashOptions } from './dedup.js';
export { approximateRenderer, ApproximateChatRenderer, type ChatRenderer, type RenderedExample, type TokenCounter } from './tokens.js';
export { assignSplits, heldOutCount, splitKey, type SplitName } from './split.js';
export { Manifest, diffVersions, listVersions, readManifest, resolveVersion, versionDir, type IndexRow, type VersionDiff } from './store.js';
export { reportMarkdown, type BuildReport } from './report.js';
export { CurationDecision, loadCuration, recordDecision, type Curation } from './curation.js';
export { CollectionLog, LoggedInteraction, type Ack, type CollectionLogOptions, type Recovery } from './collect/log.js';
export { inferCategory } from './categorize.js';
export { generateExamples, type GeneratedExample } from './readers/generated.js';
export { parseElixir, type ElixirModule, type ElixirFunction } from './readers/elixir.js';
export { splitMarkdown } from './readers/documents.js';
export { createReader, sourceName, type Candidate, type SourceReader, type ReadContext } from './readers/index.js';
