// One build runs on any x86-64: the addon runs under qemu-x86_64 emulating CPUs without AVX-512
// (Haswell: AVX2) and without AVX at all (Nehalem), picks the matching kernels, executes no instruction
// those CPUs lack (qemu would raise SIGILL), and computes what the native run of the same ISA computes.
import { spawnSync } from 'node:child_process';
import { arch } from 'node:os';
import { join } from 'node:path';
import { nativeInfo, packageRoot } from '../../bindings/index.js';

const root = packageRoot();
const script = join(root, 'test', 'isa', 'exercise-ops.mjs');
const addon = join(root, 'build', 'Release', 'starweave_native.node');
const qemu = spawnSync('qemu-x86_64', ['-version'], { encoding: 'utf8' }).status === 0;
const onX86 = arch() === 'x64';
const maybe = onX86 && qemu ? describe : describe.skip;
if (onX86 && !qemu && process.env.CI) throw new Error('CI must install qemu-user (see .ci/run) for the ISA emulation tests');

type Summary = { isa: { detected: string; active: string }; out: Record<string, number[]> };

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Summary {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, STARWEAVE_NUM_THREADS: '2', ...env }, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status} (signal ${r.signal}): ${r.stderr.split('\n').filter((l) => !l.includes('TCG doesn')).join('\n')}`);
  return JSON.parse(r.stdout) as Summary;
}

function compare(a: Summary, b: Summary): void {
  for (const [k, va] of Object.entries(a.out)) {
    const vb = b.out[k];
    expect(vb).toHaveLength(va.length);
    let worst = 0;
    for (let i = 0; i < va.length; i++) {
      const d = Math.abs(va[i] - vb[i]) / (1e-3 + Math.abs(va[i]));
      worst = Math.max(worst, d);
    }
    if (worst > 1e-4) throw new Error(`${k}: emulated and native results differ (worst relative ${worst})`);
  }
}

maybe('ISA dispatch under CPU emulation', () => {
  const cases: [cpu: string, isa: string][] = [
    ['Haswell', 'avx2'],
    ['Nehalem', 'scalar'],
  ];
  for (const [cpu, isa] of cases) {
    test(`qemu -cpu ${cpu}: detects ${isa}, runs every op, matches the native ${isa} path`, () => {
      const emulated = run('qemu-x86_64', ['-cpu', cpu, process.execPath, script, addon]);
      expect(emulated.isa.detected).toBe(isa);
      expect(emulated.isa.active).toBe(isa);
      if (['scalar', 'avx2', 'avx512'].indexOf(nativeInfo().isa.detected) >= ['scalar', 'avx2', 'avx512'].indexOf(isa)) {
        const native = run(process.execPath, [script, addon], { STARWEAVE_ISA: isa });
        expect(native.isa.active).toBe(isa);
        compare(emulated, native);
      }
    });
  }
});
