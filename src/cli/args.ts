// Flag values of the CLI commands.

/** The value after `name` in args (undefined when the flag is absent); a flag without a value is an error. */
export function opt(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
  return v;
}
