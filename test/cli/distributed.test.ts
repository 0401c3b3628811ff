// `starweave-ft train --nodes ...` runs the Elixir coordinator's Mix task (erlang_port/, mix
// starweave.train): its options forwarded, the workspace made absolute; run for real, a bad node name
// comes back as the task's error and a non-zero exit; without mix on the PATH the error says what to
// install. (The run itself over a :peer node is ExUnit's test, erlang_port/test/distributed_test.exs.)
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mixTrainArgs } from '../../src/cli/distributed.js';

const root = process.cwd();
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
const hasMix = spawnSync('mix', ['--version'], { encoding: 'utf8' }).status === 0;

test('the Mix task gets the options as given and an absolute workspace', () => {
  expect(mixTrainArgs(['--nodes', 'a@h1,b@h2', '--config', 'run.json', '--hash-every', '5'], '/srv/ws')).toEqual([
    'starweave.train', '--nodes', 'a@h1,b@h2', '--config', 'run.json', '--hash-every', '5', '--workspace', '/srv/ws',
  ]);
  expect(mixTrainArgs(['--nodes', 'a@h', '--resume', '--workspace', 'sub'], '/srv')).toEqual(['starweave.train', '--nodes', 'a@h', '--resume', '--workspace', '/srv/sub']);
  expect(() => mixTrainArgs(['--nodes', 'a@h', '--bogus', '1'])).toThrow(/unknown option --bogus/);
  expect(() => mixTrainArgs(['--nodes', 'a@h', '--config'])).toThrow(/--config needs a value/);
});

(hasMix ? test : test.skip)('a bad node name is the Mix task\'s error, with a non-zero exit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sw-cli-dist-'));
  const r = spawnSync(cli, ['train', '--nodes', 'nope', '--config', 'run.json'], { cwd: dir, encoding: 'utf8', timeout: 300_000 });
  expect(r.status).not.toBe(0);
  expect(r.stdout + r.stderr).toMatch(/'nope' is not a node name/);
}, 300_000);

test('without mix on the PATH the error says what to install', () => {
  const r = spawnSync(process.execPath, [cli, 'train', '--nodes', 'a@h', '--config', 'run.json'], { encoding: 'utf8', env: { ...process.env, PATH: '/nonexistent' } });
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/needs Elixir's mix on the PATH \(Debian\/Ubuntu: apt-get install -y elixir erlang-dev\)/);
});
