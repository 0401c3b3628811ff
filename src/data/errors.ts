// Errors of the data pipeline name what and where: the file, the line and the field path.
import type { z } from 'zod';

export class DataError extends Error {
  constructor(
    message: string,
    readonly where?: { file?: string; line?: number; path?: string },
  ) {
    super(where ? `${formatWhere(where)}: ${message}` : message);
    this.name = 'DataError';
  }
}

export function formatWhere(w: { file?: string; line?: number; path?: string }): string {
  let s = w.file ?? '<input>';
  if (w.line) s += `:${w.line}`;
  if (w.path) s += ` at ${w.path}`;
  return s;
}

/** `messages[2].role` from zod's path array. */
export function formatPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${String(p)}` : String(p);
  return s || '(root)';
}

/** The first issue of a zod error as { path, message }; the rest are appended briefly. */
export function describeZodError(e: z.ZodError): { path: string; message: string } {
  const [first, ...rest] = e.issues;
  const more = rest.length ? ` (and ${rest.length} more: ${rest.slice(0, 3).map((i) => `${formatPath(i.path)}: ${i.message}`).join('; ')})` : '';
  return { path: formatPath(first.path), message: first.message + more };
}

/** Parses `value` with `schema` or throws a DataError naming the file and the field path. */
export function parseOrThrow<T extends z.ZodType>(schema: T, value: unknown, file: string): z.infer<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const d = describeZodError(r.error);
  throw new DataError(d.message, { file, path: d.path });
}
