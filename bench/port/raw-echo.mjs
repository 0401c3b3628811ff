// The transport's limit: a {packet,4} port child that sends back every byte it reads, unparsed.
import { Socket } from 'node:net';
const input = new Socket({ fd: 3, readable: true, writable: false });
const output = new Socket({ fd: 4, readable: false, writable: true });
input.pipe(output);
input.on('end', () => process.exit(0));
output.on('error', () => process.exit(0));
