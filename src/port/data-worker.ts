// A dataset build or validation in a worker thread: the pipeline's CPU-bound passes (cleaning, dedup,
// hashing) never hold the event loop that answers pings. Progress and the outcome go back as messages.
import { parentPort, workerData } from 'node:worker_threads';
import { buildDataset, type BuildOptions } from '../data/build.js';
import { toErrorPayload } from './errors.js';

export interface DataJobInput {
  config: BuildOptions['config'];
  baseDir: string;
  store?: string;
  dryRun: boolean;
  rejectsFile?: string;
}

export type DataJobMessage =
  | { type: 'progress'; progress: { stage: string; records: number; source?: string } }
  | { type: 'done'; result: Awaited<ReturnType<typeof buildDataset>> }
  | { type: 'error'; error: ReturnType<typeof toErrorPayload> };

const input = workerData as DataJobInput;
const post = (m: DataJobMessage) => parentPort!.postMessage(m);

buildDataset({ ...input, onProgress: (p) => post({ type: 'progress', progress: p }) }).then(
  (result) => post({ type: 'done', result }),
  (e: unknown) => post({ type: 'error', error: toErrorPayload(e) }),
);
