// `starweave-ft train --nodes a@host,b@host --config FILE ...`: one run over several BEAM nodes. The
// coordinator is Elixir (erlang_port/, Starweave.FineTune.Distributed over Erlang distribution), so this
// command runs its Mix task, `mix starweave.train`, with this folder as the sidecars' workspace.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../../bindings/index.js';

/** The options `mix starweave.train` takes (docs/DISTRIBUTED.md), forwarded as they are. */
const FORWARDED = ['--nodes', '--config', '--runs-dir', '--workspace', '--script', '--name', '--cookie', '--hash-every', '--max-restarts', '--run'];

/** The Mix task's argv for a `train --nodes ...` command line (the workspace made absolute: mix runs in erlang_port/). */
export function mixTrainArgs(args: string[], cwd = process.cwd()): string[] {
  const out = ['starweave.train'];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--resume') {
      out.push('--resume');
      continue;
    }
    if (!FORWARDED.includes(a)) throw new Error(`train --nodes: unknown option ${a} (options: ${[...FORWARDED, '--resume'].join(', ')})`);
    const v = args[++i];
    if (v === undefined || v.startsWith('--')) throw new Error(`train --nodes: ${a} needs a value`);
    out.push(a, a === '--workspace' ? resolve(cwd, v) : v);
  }
  if (!out.includes('--workspace')) out.push('--workspace', resolve(cwd));
  return out;
}

export function runDistributedTrain(args: string[]): number {
  const dir = join(packageRoot(), 'erlang_port');
  if (!existsSync(join(dir, 'mix.exs'))) throw new Error(`train --nodes needs the Elixir client (${join('erlang_port', 'mix.exs')} is not in this installation)`);
  const r = spawnSync('mix', mixTrainArgs(args), { cwd: dir, stdio: 'inherit', env: { ...process.env, LANG: process.env.LANG || 'C.UTF-8' } });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT')
    throw new Error("train --nodes needs Elixir's mix on the PATH (Debian/Ubuntu: apt-get install -y elixir erlang-dev)");
  if (r.error) throw r.error;
  return r.status ?? 1;
}
