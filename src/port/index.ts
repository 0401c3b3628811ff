// The Erlang-port sidecar (docs/PROTOCOL.md): server, method table, codec, framing, workspace confinement.
export { PortServer, DEFAULTS as PORT_DEFAULTS, type ServerOptions, type LogLevel } from './server.js';
export { METHODS, PROTOCOL_VERSION, type MethodSpec, type CallContext } from './methods.js';
export { pack, unpack, encodeFrame, widenIntegers } from './codec.js';
export { FrameReader, peekRequestId, type FrameSink } from './frames.js';
export { Workspace } from './workspace.js';
export { PortError, ERROR_CODES, toErrorPayload, type ErrorCode, type ErrorPayload } from './errors.js';
export { Job, JobRegistry, type JobEvent, type JobStatus, type JobSummary } from './jobs.js';
export { runPortCommand, PORT_USAGE } from './cli.js';
