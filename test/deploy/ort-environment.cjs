// A jest environment for tests that run onnxruntime-node: its native binding returns typed arrays made in
// Node's own realm, and onnxruntime-common checks `instanceof Float32Array` against the test sandbox's
// constructors, which are different objects. Sharing the outer realm's typed-array constructors with the
// sandbox makes both sides agree. Use with a `@jest-environment ./test/deploy/ort-environment.cjs` docblock.
const { TestEnvironment } = require('jest-environment-node');

const TYPED = ['Float32Array', 'Float64Array', 'Int8Array', 'Uint8Array', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array'];

class OrtEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of TYPED) this.global[name] = globalThis[name];
  }
}

module.exports = OrtEnvironment;
