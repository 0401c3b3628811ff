// The transport's limit: a {packet,4} port child that sends back every byte it reads, unparsed.
// With `--pipe-bytes N` it first sizes its pipes as the sidecar does (F_SETPIPE_SZ through the addon):
// the limit of the transport the sidecar actually uses.
import { Socket } from 'node:net';
const i = process.argv.indexOf('--pipe-bytes');
if (i > 0) {
  const { setPipeSize } = await import(new URL('../../dist/bindings/index.js', import.meta.url).href);
  setPipeSize(3, Number(process.argv[i + 1]));
  setPipeSize(4, Number(process.argv[i + 1]));
}
const input = new Socket({ fd: 3, readable: true, writable: false });
const output = new Socket({ fd: 4, readable: false, writable: true });
input.pipe(output);
input.on('end', () => process.exit(0));
output.on('error', () => process.exit(0));
