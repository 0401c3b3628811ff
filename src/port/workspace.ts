// Every file path a request names is confined to the workspace root: resolved against it, refused when
// it leaves it by `..`, by an absolute path elsewhere, or through a symbolic link whose target is
// outside (the real path of the longest existing prefix is checked, so a link anywhere on the way
// counts).
import { lstatSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { PortError } from './errors.js';

export class Workspace {
  /** the real path of the root */
  readonly root: string;

  constructor(root: string) {
    try {
      this.root = realpathSync(resolve(root));
    } catch (e) {
      throw new PortError('not_found', `the workspace root ${root} does not exist`, { path: root, cause: (e as Error).message });
    }
  }

  /** The real absolute path of `p` (relative to `base`, default the root), or a path_outside_workspace error. */
  resolve(p: string, field: string, base = this.root): string {
    const refuse = (why: string) => new PortError('path_outside_workspace', `${field}: '${p}' ${why}`, { path: field, value: p, workspace: this.root });
    if (p.includes('\0')) throw refuse('contains a NUL byte');
    const abs = resolve(base, p);
    if (!this.contains(abs)) throw refuse('is outside the workspace');
    // walk up to the longest prefix that exists (as an entry: a dangling link exists), then take its real path
    const rest: string[] = [];
    let probe = abs;
    for (;;) {
      try {
        lstatSync(probe);
        break;
      } catch {
        rest.unshift(basename(probe));
        const up = dirname(probe);
        if (up === probe) throw refuse('has no existing ancestor');
        probe = up;
      }
    }
    let real: string;
    try {
      real = realpathSync(probe);
    } catch {
      throw refuse('goes through a symbolic link whose target does not exist');
    }
    const full = rest.length ? join(real, ...rest) : real;
    if (!this.contains(full)) throw refuse('leads outside the workspace through a symbolic link');
    return full;
  }

  /** `abs` relative to the root (for replies: no absolute paths of the host leak into results). */
  relative(abs: string): string {
    return relative(this.root, abs) || '.';
  }

  private contains(abs: string): boolean {
    const r = relative(this.root, abs);
    return r === '' || (!r.startsWith(`..${sep}`) && r !== '..' && !isAbsolute(r));
  }
}
