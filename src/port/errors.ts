// Every failure the port reports is { code, message, details }: a code a caller can match on (the Elixir
// client turns it into an atom), a sentence for a person, and the facts behind it (field path, file).
import { ZodError } from 'zod';
import { DataError, describeZodError, formatPath } from '../data/errors.js';
import { StrictModeError } from '../data/build.js';
import { ModelFileError } from '../model/errors.js';
// types only: errors.ts is loaded by the dataset worker too, which needs none of these modules
import type { RunConfigError } from '../train/config.js';
import type { RegistryError } from '../deploy/registry.js';
import type { RouteError } from '../deploy/router.js';
import type { SuiteError } from '../deploy/integration.js';
import type { DeployParamsError } from '../deploy/serving-service.js';

/** `e` is an Error of the library's class `name` (told by name: the classes' modules are not loaded here). */
function named<T extends Error>(e: unknown, name: string): e is T {
  return e instanceof Error && e.name === name;
}

export const ERROR_CODES = [
  'malformed_frame', // the frame is not one MessagePack value
  'frame_too_large', // the frame's length is over the configured maximum (skipped unread)
  'invalid_request', // not a map of { id, method, params }
  'unknown_method',
  'invalid_params', // params fail the method's schema: details.path names the field
  'not_implemented', // a method of the protocol whose library part has not landed: details.issue
  'path_outside_workspace',
  'not_found',
  'data_error', // the data pipeline refused its input: details.file/line/path
  'strict_mode', // a strict build with input rejects: details.rejects
  'model_error',
  'training_error', // a training run failed: the message names why (config path, memory, non-finite steps)
  'export_error', // an export refused its input (no adapter in the run, a dtype the format lacks, a non-empty out)
  'registry_error', // the registry refused: details.reason not_found | invalid | refused | conflict
  'serving_error', // serving a request failed (details: requestId, version, arm)
  'job_not_found',
  'cancelled',
  'busy', // too many jobs running
  'shutting_down',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorPayload {
  code: ErrorCode;
  message: string;
  details: Record<string, unknown>;
}

export class PortError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'PortError';
  }
}

/** The zod failure of a params schema as an invalid_params error naming the field. */
export function invalidParams(e: ZodError, prefix = 'params'): PortError {
  const d = describeZodError(e);
  const path = d.path === '(root)' ? prefix : `${prefix}.${d.path}`.replace('.[', '[');
  return new PortError('invalid_params', `${path}: ${d.message}`, { path, issues: e.issues.slice(0, 10).map((i) => ({ path: formatPath(i.path), message: i.message })) });
}

/** Any thrown value as the payload of an error reply or a failed event. */
export function toErrorPayload(e: unknown): ErrorPayload {
  if (e instanceof PortError) return { code: e.code, message: e.message, details: e.details };
  if (e instanceof ZodError) return toErrorPayload(invalidParams(e));
  if (e instanceof StrictModeError) {
    return { code: 'strict_mode', message: e.message, details: { rejects: e.report.rejects, firstRejects: e.firstRejects.slice(0, 10).map(({ record: _r, ...rest }) => rest) } };
  }
  if (e instanceof DataError) return { code: 'data_error', message: e.message, details: { ...(e.where ?? {}) } };
  if (named<RunConfigError>(e, 'RunConfigError')) return runConfigErrorPayload(e);
  if (named(e, 'ExportError')) return { code: 'export_error', message: e.message, details: {} };
  if (named<RegistryError>(e, 'RegistryError')) return { code: 'registry_error', message: e.message, details: { reason: e.code } };
  if (named<RouteError>(e, 'RouteError')) return { code: 'serving_error', message: e.message, details: { requestId: e.requestId, version: e.version, arm: e.arm } };
  if (named<SuiteError>(e, 'SuiteError')) return { code: 'invalid_params', message: e.message, details: { path: 'params.suite', file: e.file, issues: e.issues.slice(0, 20) } };
  if (named<DeployParamsError>(e, 'DeployParamsError')) return { code: 'invalid_params', message: e.message, details: { path: e.issues[0] ? `params.${e.issues[0].path}` : 'params', issues: e.issues.slice(0, 20) } };
  if (e instanceof ModelFileError) return { code: 'model_error', message: e.message, details: { ...e.where } };
  if (e instanceof Error && e.name === 'ChatTemplateError') return { code: 'model_error', message: e.message, details: {} };
  if (e instanceof Error && (e as NodeJS.ErrnoException).code === 'ENOENT') return { code: 'not_found', message: e.message, details: { path: (e as NodeJS.ErrnoException).path } };
  const message = e instanceof Error ? e.message : String(e);
  return { code: 'internal', message, details: e instanceof Error && e.stack ? { stack: e.stack.split('\n').slice(0, 6).join('\n') } : {} };
}

/**
 * A run config that fails its schema as invalid_params: details.path is the first bad field inside the
 * config (training.lr), details.issues every one, details.param the request field that named the config.
 * `shown` maps the config's absolute file to what the reply may show (a workspace-relative path).
 */
export function runConfigErrorPayload(e: RunConfigError, shown: (file: string) => string = (f) => f, param = 'params.config'): ErrorPayload {
  const file = e.file === undefined ? undefined : shown(e.file);
  const message = e.file === undefined || file === undefined ? e.message : e.message.split(e.file).join(file);
  if (!e.issues.length) {
    const missing = / no such file$/.test(e.message);
    return { code: missing ? 'not_found' : 'invalid_params', message, details: { path: param, file } };
  }
  return { code: 'invalid_params', message, details: { path: e.issues[0].path, param, file, issues: e.issues.slice(0, 20) } };
}
