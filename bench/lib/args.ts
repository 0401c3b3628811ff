// Command-line flags of the benchmarks: `--name value` pairs and the model preset they run on.
import { TINY_PRESETS } from '../../src/model/tiny.js';
import type { TinyPresetName } from '../../src/model/tiny.js';

/** The value after `name` on the command line, or the fallback. */
export function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

/** --preset (default smollm2-135m), checked against the tiny-model presets. */
export function presetFlag(): TinyPresetName {
  const preset = flag('--preset', 'smollm2-135m') as TinyPresetName;
  if (!(preset in TINY_PRESETS)) throw new Error(`--preset ${preset}: unknown; presets: ${Object.keys(TINY_PRESETS).join(', ')}`);
  return preset;
}
