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
  /** Int32Array over a SharedArrayBuffer: the parent sets [0] to 1 to stop the build */
  stop?: Int32Array;
}

/** The error a stopped build ends with (the build's own cleanup, its staging folder included, has run). */
export const STOPPED = 'the dataset job was stopped';

export type DataJobMessage =
  | { type: 'progress'; progress: { stage: string; records: number; source?: string } }
  | { type: 'done'; result: Awaited<ReturnType<typeof buildDataset>> }
  | { type: 'error'; error: ReturnType<typeof toErrorPayload> };

const input = workerData as DataJobInput;
const post = (m: DataJobMessage) => parentPort!.postMessage(m);

// Stopping is cooperative, so that the build's finally removes its staging folder (store/tmp/build-*):
// the parent raises a shared flag, read synchronously at every progress report of the build (between
// stages and every 2000 records read), even while the pipeline holds this thread in a loop.
const { stop, ...options } = input;
const stopped = () => stop !== undefined && Atomics.load(stop, 0) === 1;
buildDataset({
  ...options,
  onProgress: (p) => {
    if (stopped()) throw new Error(STOPPED);
    post({ type: 'progress', progress: p });
  },
}).then(
  (result) => post({ type: 'done', result }),
  (e: unknown) => post({ type: 'error', error: toErrorPayload(e) }),
);
