// Errors about model files name what and where: the file, the JSON field path or the tensor, and what is
// wrong with it, so a user can fix the checkpoint or the config without reading our code.
import type { z } from 'zod';
import { describeZodError, formatPath } from '../data/errors.js';

export interface ModelFileWhere {
  /** the file (config.json, a .safetensors shard, tokenizer.json, ...) */
  file?: string;
  /** JSON field path inside the file, e.g. `rope_scaling.rope_type` */
  path?: string;
  /** tensor name, e.g. `model.layers.0.self_attn.q_proj.weight` */
  tensor?: string;
}

export class ModelFileError extends Error {
  constructor(
    message: string,
    readonly where: ModelFileWhere = {},
  ) {
    super(prefix(where) + message);
    this.name = 'ModelFileError';
  }
}

function prefix(w: ModelFileWhere): string {
  const parts: string[] = [];
  if (w.file) parts.push(w.file);
  if (w.path) parts.push(`at ${w.path}`);
  if (w.tensor) parts.push(`tensor '${w.tensor}'`);
  return parts.length ? parts.join(' ') + ': ' : '';
}

/** Parses `value` with `schema` or throws a ModelFileError naming the file and the first bad field. */
export function parseModelFile<T extends z.ZodType>(schema: T, value: unknown, file: string, basePath: readonly PropertyKey[] = []): z.infer<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const d = describeZodError(r.error);
  const path = basePath.length ? formatPath([...basePath, ...(r.error.issues[0]?.path ?? [])]) : d.path;
  throw new ModelFileError(d.message, { file, path });
}

export { formatPath };
