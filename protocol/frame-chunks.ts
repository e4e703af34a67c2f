/**
 * A second encoder for frames that carry large byte fields (Fetch responses and Produce
 * requests: record batches), producing the frame as a list of pieces whose concatenation is one
 * valid msgpack value. Byte fields of at least `externalBytesMin` are not copied (unless they are
 * small views of much bigger buffers): the piece *is* the caller's buffer (a view of the log's
 * tail cache or of a read from disk; a producer's batch), and the pieces go out as the payload of
 * one WebSocket frame, in one writev (ws-pieces.ts: ServerConnection.sendPieces, and
 * RpcConnection requests sent byReference). msgpackr copies every byte field into its output; for
 * a follower fetch answer that copy was 6% of the leader's CPU, paid once per follower, on the
 * replication path that acks=all waits for.
 *
 * It writes the same msgpack types msgpackr reads back to the same values: nil, booleans,
 * integers (the smallest width; beyond 32 bits, and bigints, int64/uint64, read back as numbers), float64,
 * str, bin, arrays and maps with string keys. The property test in test/protocol/ checks that
 * every value decodes to what packFrame's bytes decode to. `undefined` and other types are
 * refused (the frames are plain msgpack, see frame.ts).
 */
import { TributaryError } from './errors.js';

/** Byte fields at least this long travel by reference (if not small views of big buffers). Smaller ones are cheaper to copy. */
export const EXTERNAL_BYTES_MIN = 4096;

let scratch = Buffer.allocUnsafeSlow(64 * 1024);

class Writer {
  pos = 0;
  /** Alternating runs: [scratchStart, scratchEnd) then an external buffer, ... */
  readonly runs: Array<number | Uint8Array> = [];
  runStart = 0;
  total = 0;

  constructor(private readonly externalBytesMin: number) {}

  ensure(n: number): void {
    if (this.pos + n <= scratch.length) return;
    let size = scratch.length * 2;
    while (size < this.pos + n) size *= 2;
    const bigger = Buffer.allocUnsafeSlow(size);
    scratch.copy(bigger, 0, 0, this.pos);
    scratch = bigger;
  }

  byte(b: number): void {
    this.ensure(1);
    scratch[this.pos++] = b;
  }

  value(v: unknown, depth: number): void {
    if (depth > 64) throw new TributaryError('INVALID_REQUEST', 'frame: nesting deeper than 64');
    if (v === null) return this.byte(0xc0);
    switch (typeof v) {
      case 'boolean':
        return this.byte(v ? 0xc3 : 0xc2);
      case 'number':
        return this.number(v);
      case 'bigint':
        // The schema's int64 fields hand over values beyond 32 bits as bigints (frame.ts).
        this.ensure(9);
        scratch[this.pos++] = v >= 0n ? 0xcf : 0xd3;
        if (v >= 0n) scratch.writeBigUInt64BE(v, this.pos);
        else scratch.writeBigInt64BE(v, this.pos);
        this.pos += 8;
        return;
      case 'string':
        return this.string(v);
      case 'object':
        if (v instanceof Uint8Array) return this.bytes(v);
        if (Array.isArray(v)) {
          this.header(v.length, 0x90, 16, 0xdc, 0xdd);
          for (const item of v) this.value(item, depth + 1);
          return;
        }
        const proto: unknown = Object.getPrototypeOf(v);
        if (proto === Object.prototype || proto === null) {
          const entries = Object.entries(v as Record<string, unknown>);
          this.header(entries.length, 0x80, 16, 0xde, 0xdf);
          for (const [key, item] of entries) {
            this.string(key);
            this.value(item, depth + 1);
          }
          return;
        }
    }
    throw new TributaryError('UNKNOWN_SERVER_ERROR', `frame: cannot encode a ${v === undefined ? 'undefined' : typeof v} value`);
  }

  /** fix (below fixLimit) / 16-bit / 32-bit length headers of arrays and maps. */
  private header(n: number, fix: number, fixLimit: number, h16: number, h32: number): void {
    this.ensure(5);
    if (n < fixLimit) {
      scratch[this.pos++] = fix | n;
    } else if (n <= 0xffff) {
      scratch[this.pos++] = h16;
      scratch.writeUInt16BE(n, this.pos);
      this.pos += 2;
    } else {
      scratch[this.pos++] = h32;
      scratch.writeUInt32BE(n, this.pos);
      this.pos += 4;
    }
  }

  private number(n: number): void {
    this.ensure(9);
    const s = scratch;
    if (Number.isInteger(n)) {
      if (n >= 0) {
        if (n < 0x80) s[this.pos++] = n;
        else if (n <= 0xff) (s[this.pos++] = 0xcc), (s[this.pos++] = n);
        else if (n <= 0xffff) (s[this.pos++] = 0xcd), s.writeUInt16BE(n, this.pos), (this.pos += 2);
        else if (n <= 0xffffffff) (s[this.pos++] = 0xce), s.writeUInt32BE(n, this.pos), (this.pos += 4);
        else if (n <= Number.MAX_SAFE_INTEGER) (s[this.pos++] = 0xcf), s.writeBigUInt64BE(BigInt(n), this.pos), (this.pos += 8);
        else (s[this.pos++] = 0xcb), s.writeDoubleBE(n, this.pos), (this.pos += 8);
      } else {
        if (n >= -32) s[this.pos++] = n & 0xff;
        else if (n >= -0x80) (s[this.pos++] = 0xd0), s.writeInt8(n, this.pos), (this.pos += 1);
        else if (n >= -0x8000) (s[this.pos++] = 0xd1), s.writeInt16BE(n, this.pos), (this.pos += 2);
        else if (n >= -0x80000000) (s[this.pos++] = 0xd2), s.writeInt32BE(n, this.pos), (this.pos += 4);
        else if (n >= Number.MIN_SAFE_INTEGER) (s[this.pos++] = 0xd3), s.writeBigInt64BE(BigInt(n), this.pos), (this.pos += 8);
        else (s[this.pos++] = 0xcb), s.writeDoubleBE(n, this.pos), (this.pos += 8);
      }
      return;
    }
    s[this.pos++] = 0xcb;
    s.writeDoubleBE(n, this.pos);
    this.pos += 8;
  }

  private string(str: string): void {
    const length = Buffer.byteLength(str);
    this.ensure(5 + length);
    if (length < 32) scratch[this.pos++] = 0xa0 | length;
    else if (length <= 0xff) (scratch[this.pos++] = 0xd9), (scratch[this.pos++] = length);
    else if (length <= 0xffff) (scratch[this.pos++] = 0xda), scratch.writeUInt16BE(length, this.pos), (this.pos += 2);
    else (scratch[this.pos++] = 0xdb), scratch.writeUInt32BE(length, this.pos), (this.pos += 4);
    this.pos += scratch.write(str, this.pos, length, 'utf8');
  }

  private bytes(b: Uint8Array): void {
    const length = b.byteLength;
    this.ensure(5);
    if (length <= 0xff) (scratch[this.pos++] = 0xc4), (scratch[this.pos++] = length);
    else if (length <= 0xffff) (scratch[this.pos++] = 0xc5), scratch.writeUInt16BE(length, this.pos), (this.pos += 2);
    else (scratch[this.pos++] = 0xc6), scratch.writeUInt32BE(length, this.pos), (this.pos += 4);
    // By reference only when the view is at least half of the memory it keeps alive: a queued
    // answer's pieces count toward the connection's outbound limit by their own length, so a small
    // view of a big buffer (a slice of a large tail-cache chunk) would pin far more than counted.
    if (length >= this.externalBytesMin && b.buffer.byteLength <= 2 * length) {
      this.runs.push(this.runStart, this.pos, b);
      this.total += this.pos - this.runStart + length;
      this.runStart = this.pos;
      return;
    }
    this.ensure(length);
    scratch.set(b, this.pos);
    this.pos += length;
  }
}

/**
 * Encode `wire` as pieces of one msgpack frame; byte fields of at least `externalBytesMin` are
 * pieces of their own, by reference (callers must not change them until sent). Throws
 * MESSAGE_TOO_LARGE above `frameBytesMax`.
 */
export function packFrameChunks(wire: unknown, frameBytesMax: number, externalBytesMin = EXTERNAL_BYTES_MIN): Buffer[] {
  const w = new Writer(externalBytesMin);
  w.value(wire, 0);
  w.total += w.pos - w.runStart;
  if (w.total > frameBytesMax) {
    throw new TributaryError('MESSAGE_TOO_LARGE', `frame: ${w.total} bytes is above frameBytesMax ${frameBytesMax}`);
  }
  // The copied runs go into one buffer of their own (scratch is reused by the next call).
  const own = Buffer.allocUnsafe(w.pos);
  scratch.copy(own, 0, 0, w.pos);
  const pieces: Buffer[] = [];
  const runs = w.runs;
  for (let i = 0; i < runs.length; i += 3) {
    const start = runs[i] as number;
    const end = runs[i + 1] as number;
    const external = runs[i + 2] as Uint8Array;
    if (end > start) pieces.push(own.subarray(start, end));
    pieces.push(Buffer.isBuffer(external) ? external : Buffer.from(external.buffer, external.byteOffset, external.byteLength));
  }
  if (w.pos > w.runStart || pieces.length === 0) pieces.push(own.subarray(w.runStart, w.pos));
  return pieces;
}
