// The common Elixir <-> Node bridge shape: JSON lines over stdio, binaries as base64.
import { createInterface } from 'node:readline';
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  const req = JSON.parse(line);
  const data = req.params && req.params.data !== undefined ? Buffer.from(req.params.data, 'base64') : null;
  process.stdout.write(`${JSON.stringify({ id: req.id, result: { pong: true, data: data ? data.toString('base64') : null } })}\n`);
});
rl.on('close', () => process.exit(0));
