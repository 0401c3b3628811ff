// `starweave-ft port`: runs the sidecar on fds 3 (in) and 4 (out), what an OTP node's
// Port.open({:spawn_executable, node}, [:binary, {:packet, 4}, :nouse_stdio, ...]) gives its child.
// stdin and stdout stay untouched (they belong to the BEAM); console output becomes log frames.
import { Socket } from 'node:net';
import { DEFAULT_PIPE_BYTES, sizePipes } from './transport.js';
import { format } from 'node:util';
import { PortServer, DEFAULTS, type LogLevel } from './server.js';

export const PORT_USAGE = `starweave-ft port [options]

Runs the Erlang-port sidecar: {packet,4} MessagePack frames in on fd 3 and out on fd 4 (docs/PROTOCOL.md).
Started by the Elixir client (erlang_port/), not by hand.

options:
  --workspace DIR         the root every path in a request must stay inside (default: the current folder,
                          or $STARWEAVE_PORT_WORKSPACE)
  --max-frame-bytes N     the largest frame accepted or sent (default ${DEFAULTS.maxFrameBytes})
  --max-in-flight N       unanswered requests before reading pauses (default ${DEFAULTS.maxInFlight})
  --max-jobs N            jobs running at once (default ${DEFAULTS.maxJobs})
  --log-level LEVEL       debug | info | warning | error (default info)
  --registry DIR          the deployment registry store, inside the workspace (default .starweave/registry)
  --in-fd N / --out-fd N  the frame streams (default 3 and 4)
  --pipe-bytes N          the capacity asked for the pipes on those fds (default 1 MiB; 0: leave them)`;

function intFlag(args: string[], name: string): number | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} needs a positive integer, got '${args[i + 1] ?? ''}'`);
  return v;
}

function strFlag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
  return v;
}

/** Runs the sidecar until its input closes; resolves with the exit code. */
export async function runPortCommand(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stderr.write(`${PORT_USAGE}\n`);
    return 0;
  }
  const level = (strFlag(args, '--log-level') ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warning', 'error'].includes(level)) throw new Error(`--log-level: debug, info, warning or error, got '${level}'`);
  const inFd = intFlag(args, '--in-fd') ?? 3;
  const outFd = intFlag(args, '--out-fd') ?? 4;
  let input: Socket, output: Socket;
  // reads go where the frame reader wants them (server.readTarget): no copy of a large frame's bytes
  // (the socket asks for its first buffer before the server exists: a buffer of its own, used once)
  let server: PortServer | undefined;
  const onread = {
    buffer: () => (server ? server.readTarget() : Buffer.allocUnsafe(64 * 1024)),
    callback: (n: number, buf: Uint8Array) => server!.received(n, buf as Buffer),
  };
  try {
    input = new Socket({ fd: inFd, readable: true, writable: false, onread } as ConstructorParameters<typeof Socket>[0]);
    output = new Socket({ fd: outFd, readable: false, writable: true });
  } catch (e) {
    throw new Error(`the sidecar needs pipes on fds ${inFd} and ${outFd} (an Erlang port opened with :nouse_stdio): ${(e as Error).message}`);
  }
  server = new PortServer({
    workspace: strFlag(args, '--workspace') ?? process.env.STARWEAVE_PORT_WORKSPACE ?? process.cwd(),
    input,
    output,
    maxFrameBytes: intFlag(args, '--max-frame-bytes'),
    maxInFlight: intFlag(args, '--max-in-flight'),
    maxJobs: intFlag(args, '--max-jobs'),
    logLevel: level,
    registry: strFlag(args, '--registry'),
  });
  // what libraries print goes to the client's Logger, never onto the BEAM's stdout
  const srv = server;
  const toLog = (lvl: LogLevel) => (...a: unknown[]) => srv.log(lvl, format(...a));
  console.log = console.info = toLog('info');
  console.debug = toLog('debug');
  console.warn = toLog('warning');
  console.error = toLog('error');
  process.on('uncaughtException', (e) => srv.log('error', `uncaught: ${e.stack ?? e.message}`));
  process.on('unhandledRejection', (e) => srv.log('error', `unhandled rejection: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`));
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(sig, () => void srv.stop(sig));
  srv.start();
  const pipeBytes = args.includes('--pipe-bytes') && args[args.indexOf('--pipe-bytes') + 1] === '0' ? 0 : (intFlag(args, '--pipe-bytes') ?? DEFAULT_PIPE_BYTES);
  void sizePipes(inFd, outFd, pipeBytes, (m) => srv.log('debug', m));
  const code = await srv.done;
  // a safety net: whatever keeps the loop alive, the process ends soon after stopping
  setTimeout(() => process.exit(code), 1000).unref();
  return code;
}
