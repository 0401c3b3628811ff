// The sidecar's codec against the cross-language vectors, integer widths both ways, and the framing
// parser's bounds.
import { BIG_BIN_BYTES, encodeFrame, encodeFrameChunks, pack, unpack, widenIntegers } from '../../src/port/codec.js';
import { FrameReader, peekRequestId } from '../../src/port/frames.js';
import { jsValue, loadVectors, vectorBytes } from './vectors.js';

const vectors = loadVectors();

describe('cross-language vectors (test/vectors/msgpack.json)', () => {
  test('the file covers every MessagePack family', () => {
    const firstBytes = new Set(vectors.map((v) => vectorBytes(v)[0]));
    for (const b of [0xc0, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd6, 0xd9, 0xda, 0xdb, 0xdc, 0xde, 0x90, 0x80, 0xa0, 0xe0, 0xff]) {
      expect(firstBytes.has(b)).toBe(true);
    }
  });

  for (const v of vectors.filter((x) => (x.encoders ?? ['js']).includes('js'))) {
    test(`encode: ${v.name}`, () => {
      expect(pack(jsValue(v.value)).toString('hex')).toBe(vectorBytes(v).toString('hex'));
    });
  }
  for (const v of vectors.filter((x) => (x.decoders ?? ['js']).includes('js'))) {
    test(`decode: ${v.name}`, () => {
      const got = unpack(vectorBytes(v));
      const want = jsValue(v.value);
      if (typeof want === 'number' && Number.isNaN(want)) expect(Number.isNaN(got)).toBe(true);
      else expect(got).toEqual(want);
    });
  }
});

describe('integers', () => {
  test('safe integers beyond 32 bits travel as int64, not float64', () => {
    expect(pack(2 ** 40)[0]).toBe(0xd3);
    expect(pack(-(2 ** 40))[0]).toBe(0xd3);
    expect(pack(2 ** 40 + 0.5)[0]).toBe(0xcb);
    expect(unpack(pack({ a: [2 ** 53 - 1] }))).toEqual({ a: [2 ** 53 - 1] });
  });
  test('64-bit integers decode without loss: numbers within 2^53, bigints beyond', () => {
    expect(unpack(Buffer.from('cf0020000000000001', 'hex'))).toBe(BigInt(2 ** 53) + 1n);
    expect(unpack(Buffer.from('d3ffe0000000000000', 'hex'))).toBe(-(2 ** 53));
    expect(pack(unpack(Buffer.from('cfffffffffffffffff', 'hex'))).toString('hex')).toBe('cfffffffffffffffff');
  });
  test('widenIntegers copies only what changes; Dates become ISO strings', () => {
    const o = { a: 1, b: 'x', c: [1, 2] };
    expect(widenIntegers(o)).toBe(o);
    expect(widenIntegers({ t: new Date(0) })).toEqual({ t: '1970-01-01T00:00:00.000Z' });
    expect(unpack(pack(undefined))).toBeNull();
  });
  test('records and structured clone are off: an object is a plain map', () => {
    const twice = [{ x: 1, y: 2 }, { x: 3, y: 4 }];
    expect(pack(twice).toString('hex')).toBe('9282a1780' + '1a17902' + '82a17803a17904');
  });
});

describe('framing', () => {
  test('encodeFrameChunks: the same bytes as encodeFrame, big bins referenced, not copied', () => {
    const a = Buffer.alloc(BIG_BIN_BYTES, 1);
    const b = new Uint8Array(3 * BIG_BIN_BYTES + 5).fill(2);
    const value = { id: 2 ** 40, result: { pong: true, data: a, list: [b, Buffer.alloc(10, 3), { c: a }], n: -1 } };
    const chunks = encodeFrameChunks(value);
    expect(Buffer.concat(chunks).equals(encodeFrame(value))).toBe(true);
    expect(chunks.filter((c) => c.buffer === a.buffer).length).toBe(2);
    expect(chunks.some((c) => c.buffer === b.buffer)).toBe(true);
    const small = { id: 1, result: { data: Buffer.alloc(BIG_BIN_BYTES - 1) } };
    expect(encodeFrameChunks(small)).toEqual([encodeFrame(small)]);
  });

  test('encodeFrame puts the body length in front', () => {
    const f = encodeFrame({ id: 1 });
    expect(f.readUInt32BE(0)).toBe(f.length - 4);
    expect(unpack(f.subarray(4))).toEqual({ id: 1 });
  });

  test('frames split across chunks at every byte are reassembled', () => {
    const frames = [encodeFrame({ id: 1, method: 'ping' }), encodeFrame({ id: 2, data: Buffer.alloc(1000, 7) }), encodeFrame('x')];
    const all = Buffer.concat(frames);
    for (const step of [1, 3, 7, 64, all.length]) {
      const got: unknown[] = [];
      const r = new FrameReader(1 << 20, { frame: (b) => got.push(unpack(b)), oversize: () => got.push('oversize') });
      for (let i = 0; i < all.length; i += step) r.push(all.subarray(i, i + step));
      expect(got).toEqual([{ id: 1, method: 'ping' }, { id: 2, data: Buffer.alloc(1000, 7) }, 'x']);
    }
  });

  test('an oversize frame is skipped without being held, its id peeked, and the next frame read', () => {
    const big = encodeFrame({ id: 4242, method: 'ping', params: { data: Buffer.alloc(50_000) } });
    const small = encodeFrame({ id: 5, method: 'ping' });
    const got: unknown[] = [];
    const r = new FrameReader(1000, { frame: (b) => got.push(unpack(b)), oversize: (len, id) => got.push({ len, id }) });
    let maxHeld = 0;
    const all = Buffer.concat([big, small]);
    for (let i = 0; i < all.length; i += 4096) {
      r.push(all.subarray(i, i + 4096));
      maxHeld = Math.max(maxHeld, r.buffered);
    }
    expect(got).toEqual([{ len: big.length - 4, id: 4242 }, { id: 5, method: 'ping' }]);
    expect(maxHeld).toBeLessThanOrEqual(1000);
  });

  test('a frame wholly inside one chunk is handed on as a view of it (no copy); an oversize one is still refused', () => {
    const a = encodeFrame({ id: 1, method: 'ping' });
    const big = encodeFrame({ id: 9, method: 'ping', params: { data: Buffer.alloc(2000) } });
    const chunk = Buffer.concat([a, big, a]);
    const got: { b: Buffer | null; v: unknown }[] = [];
    const r = new FrameReader(1000, { frame: (b) => got.push({ b, v: unpack(b) }), oversize: (len, id) => got.push({ b: null, v: { len, id } }) });
    r.push(chunk);
    expect(got.map((g) => g.v)).toEqual([{ id: 1, method: 'ping' }, { len: big.length - 4, id: 9 }, { id: 1, method: 'ping' }]);
    expect(got[0].b!.buffer).toBe(chunk.buffer);
    expect(got[0].b!.byteOffset).toBe(chunk.byteOffset + 4);
    expect(r.buffered).toBe(0);
  });

  test('reads into readTarget(): frames come out whole at any read size; a large frame is read in place, small ones share slabs', () => {
    const frames = [encodeFrame({ id: 1, method: 'ping' }), encodeFrame({ id: 2, data: Buffer.alloc(300_000, 5) }), encodeFrame({ id: 3 }), encodeFrame({ id: 4, data: Buffer.alloc(20_000, 6) }), encodeFrame({ id: 5 })];
    const all = Buffer.concat(frames);
    for (const maxRead of [1, 7, 4096, 65_536, all.length]) {
      const got: Buffer[] = [];
      const targets: Buffer[] = [];
      const r = new FrameReader(1 << 20, { frame: (b) => got.push(b), oversize: () => got.push(Buffer.from('oversize')) });
      let rng = 1;
      for (let pos = 0; pos < all.length; ) {
        // the "kernel": copies up to maxRead bytes (at most what the target holds) into the target
        const t = r.readTarget();
        targets.push(t);
        rng = (rng * 1103515245 + 12345) >>> 0;
        const n = Math.min(t.length, all.length - pos, 1 + (rng % maxRead));
        all.copy(t, 0, pos, pos + n);
        pos += n;
        r.received(n, t);
      }
      expect(got.map((b) => unpack(b))).toEqual(frames.map((f) => unpack(f.subarray(4))));
      expect(r.buffered).toBe(0);
      if (maxRead >= 4096) {
        // the 300 kB body was read straight into its own buffer: some read target was a view of it
        expect(targets.some((t) => t.buffer === got[1].buffer && t.byteOffset > got[1].byteOffset)).toBe(true);
        // the small frames are views of a slab (no per-read allocation): frames 3 and 5 share one
        expect(got[2].buffer).toBe(got[4].buffer);
      }
    }
  });

  test('peekRequestId reads int and string ids, and gives up on anything else', () => {
    expect(peekRequestId(pack({ id: 7, method: 'x' }))).toBe(7);
    expect(peekRequestId(pack({ id: 70000 }))).toBe(70000);
    expect(peekRequestId(pack({ id: 2 ** 40 }))).toBe(2 ** 40);
    expect(peekRequestId(pack({ id: 'req-1' }))).toBe('req-1');
    expect(peekRequestId(pack({ method: 'x', id: 1 }))).toBeNull();
    expect(peekRequestId(Buffer.from([0x81]))).toBeNull();
  });
});
