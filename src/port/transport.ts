// The pipes between the BEAM and the sidecar. A pipe holds 64 KiB by default on Linux, so a 1 MiB frame
// crosses it in 16+ rounds of write, wake-up and read on each side; the sidecar asks for 1 MiB pipes at
// start (F_SETPIPE_SZ through the native addon; 1 MiB is /proc/sys/fs/pipe-max-size's default, allowed
// without privilege), which doubles large-frame throughput here (docs/PERFORMANCE.md). Best effort:
// without the addon, on another OS or over the per-user pipe budget the pipes stay as they are.

export const DEFAULT_PIPE_BYTES = 1 << 20;

/** As sized at start (the `version` method reports it); null until then, or when not sized. */
export const transport: { pipeBytes: { in: number; out: number } | null; note: string | null } = { pipeBytes: null, note: null };

let sized: Promise<void> = Promise.resolve();

/** The transport facts once the sizing started at start has finished. */
export async function transportInfo(): Promise<typeof transport> {
  await sized;
  return { ...transport };
}

export function sizePipes(inFd: number, outFd: number, bytes: number, log: (msg: string) => void): Promise<void> {
  sized = sizePipesNow(inFd, outFd, bytes, log);
  return sized;
}

async function sizePipesNow(inFd: number, outFd: number, bytes: number, log: (msg: string) => void): Promise<void> {
  if (bytes <= 0) {
    transport.note = 'not sized (--pipe-bytes 0)';
    return;
  }
  try {
    const { setPipeSize } = await import('../../bindings/index.js');
    const got = { in: setPipeSize(inFd, bytes), out: setPipeSize(outFd, bytes) };
    if (got.in < 0) {
      transport.note = 'this platform has no pipe size setting';
      return;
    }
    transport.pipeBytes = got;
  } catch (e) {
    transport.note = `not sized: ${(e as Error).message}`;
    log(`the port's pipes keep their size (${(e as Error).message})`);
  }
}
