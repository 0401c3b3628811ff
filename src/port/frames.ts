// {packet, 4} framing: a 4-byte big-endian length, then that many bytes. The reader is a pure parser
// over arriving chunks with a bound: a frame longer than maxFrameBytes is never held in memory; its
// bytes are counted off as they pass, and only its first bytes are kept, to find the request's id.

export interface FrameSink {
  frame(body: Buffer): void;
  /** a frame over the maximum was skipped; `id` is its request id when its first bytes show one */
  oversize(length: number, id: number | string | null): void;
}

const PREFIX_BYTES = 64;
/** reads go into slabs of this size (frames inside them are handed on as views) */
const SLAB_BYTES = 64 * 1024;
/** a slab with less room than this is replaced by a new one before a read */
const SLAB_MIN_ROOM = 16 * 1024;
/** a frame in progress with at least this many bytes to come is read straight into its own buffer */
const DIRECT_READ_MIN = 16 * 1024;

export class FrameReader {
  private header = Buffer.alloc(4);
  private headerHave = 0;
  /** the frame being filled, or null while reading a header or skipping */
  private body: Buffer | null = null;
  private bodyHave = 0;
  /** bytes of an oversize frame still to skip */
  private skipLeft = 0;
  private skipLength = 0;
  private prefix = Buffer.alloc(PREFIX_BYTES);
  private prefixHave = 0;

  constructor(
    private readonly maxFrameBytes: number,
    private readonly sink: FrameSink,
  ) {}

  private slab = Buffer.allocUnsafe(0);
  private slabUsed = 0;
  private target: Buffer | null = null;

  /**
   * Where the stream's next read should land (a socket's `onread.buffer`): the rest of a large frame in
   * progress, read in place (its bytes are never copied), or else the free part of a slab. Pair with
   * received().
   */
  readTarget(): Buffer {
    if (this.body && this.body.length - this.bodyHave >= DIRECT_READ_MIN) {
      this.target = this.body.subarray(this.bodyHave);
    } else {
      if (this.slab.length - this.slabUsed < SLAB_MIN_ROOM) {
        this.slab = Buffer.allocUnsafe(SLAB_BYTES);
        this.slabUsed = 0;
      }
      this.target = this.slab.subarray(this.slabUsed);
    }
    return this.target;
  }

  /**
   * `n` bytes were read into `buf` (a socket's `onread.callback`): the buffer readTarget() gave last, or
   * any other buffer, whose bytes are then taken as a chunk (they must not be written again).
   */
  received(n: number, buf: Buffer): void {
    if (n <= 0) return;
    if (buf !== this.target) {
      this.push(buf.subarray(0, n));
      return;
    }
    this.target = null;
    if (this.body && buf.buffer === this.body.buffer && buf.byteOffset === this.body.byteOffset + this.bodyHave) {
      this.bodyHave += n;
      if (this.bodyHave === this.body.length) {
        const b = this.body;
        this.body = null;
        this.sink.frame(b);
      }
      return;
    }
    // a slab: the bytes stay where they are (views of whole frames in it are handed on)
    this.slabUsed += n;
    this.push(buf.subarray(0, n));
  }

  /** bytes held for a frame in progress (never more than maxFrameBytes) */
  get buffered(): number {
    return this.body ? this.bodyHave : 0;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.skipLeft > 0) {
        const n = Math.min(this.skipLeft, chunk.length - pos);
        if (this.prefixHave < PREFIX_BYTES) {
          const k = Math.min(n, PREFIX_BYTES - this.prefixHave);
          chunk.copy(this.prefix, this.prefixHave, pos, pos + k);
          this.prefixHave += k;
        }
        pos += n;
        this.skipLeft -= n;
        if (this.skipLeft === 0) this.sink.oversize(this.skipLength, peekRequestId(this.prefix.subarray(0, this.prefixHave)));
        continue;
      }
      if (this.body) {
        const n = Math.min(this.body.length - this.bodyHave, chunk.length - pos);
        chunk.copy(this.body, this.bodyHave, pos, pos + n);
        this.bodyHave += n;
        pos += n;
        if (this.bodyHave === this.body.length) {
          const b = this.body;
          this.body = null;
          this.sink.frame(b);
        }
        continue;
      }
      // header
      if (this.headerHave === 0 && chunk.length - pos >= 4) {
        const length = chunk.readUInt32BE(pos);
        pos += 4;
        if (length > 0 && length <= this.maxFrameBytes && chunk.length - pos >= length) {
          // the whole frame is in this chunk: handed on as a view, not copied (a chunk read from the
          // stream, or a slab's part, is never written again, so the view stays valid)
          const b = chunk.subarray(pos, pos + length);
          pos += length;
          this.sink.frame(b);
          continue;
        }
        this.startFrame(length);
      } else {
        this.header[this.headerHave++] = chunk[pos++];
        if (this.headerHave === 4) {
          this.headerHave = 0;
          this.startFrame(this.header.readUInt32BE(0));
        }
      }
    }
  }

  private startFrame(length: number): void {
    if (length > this.maxFrameBytes) {
      this.skipLeft = this.skipLength = length;
      this.prefixHave = 0;
    } else if (length === 0) this.sink.frame(Buffer.alloc(0));
    else {
      this.body = Buffer.allocUnsafe(length);
      this.bodyHave = 0;
    }
  }
}

/**
 * The id of a request from the first bytes of its frame, when the map starts with the key "id" (the
 * Elixir client's maps do: small maps iterate in key order) and the id is an integer or a short string.
 */
export function peekRequestId(b: Buffer): number | string | null {
  let p = 0;
  const t = b[p];
  if (t === undefined) return null;
  if ((t & 0xf0) === 0x80) p += 1;
  else if (t === 0xde) p += 3;
  else if (t === 0xdf) p += 5;
  else return null;
  if (b[p] !== 0xa2 || b[p + 1] !== 0x69 || b[p + 2] !== 0x64) return null; // fixstr "id"
  p += 3;
  const v = b[p];
  if (v === undefined) return null;
  const need = (n: number) => p + 1 + n <= b.length;
  if (v <= 0x7f) return v;
  if (v >= 0xe0) return v - 0x100;
  if (v >= 0xa0 && v <= 0xbf) return need(v & 0x1f) ? b.toString('utf8', p + 1, p + 1 + (v & 0x1f)) : null;
  switch (v) {
    case 0xcc: return need(1) ? b.readUInt8(p + 1) : null;
    case 0xcd: return need(2) ? b.readUInt16BE(p + 1) : null;
    case 0xce: return need(4) ? b.readUInt32BE(p + 1) : null;
    case 0xd0: return need(1) ? b.readInt8(p + 1) : null;
    case 0xd1: return need(2) ? b.readInt16BE(p + 1) : null;
    case 0xd2: return need(4) ? b.readInt32BE(p + 1) : null;
    case 0xcf:
    case 0xd3: {
      if (!need(8)) return null;
      const x = v === 0xcf ? b.readBigUInt64BE(p + 1) : b.readBigInt64BE(p + 1);
      return x <= BigInt(Number.MAX_SAFE_INTEGER) && x >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(x) : null;
    }
    case 0xd9: return need(1) && need(1 + b[p + 1]) ? b.toString('utf8', p + 2, p + 2 + b[p + 1]) : null;
    default: return null;
  }
}
