#!/usr/bin/env node
// The sidecar's entry point (dist/src/port/main.js): what the Elixir client spawns with node.
import { runPortCommand } from './cli.js';

runPortCommand(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`starweave-ft port: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
