/**
 * The record batch: the unit a producer builds, the leader stamps, the log stores and a consumer
 * reads. The layout is Kafka's magic-2 batch, so anyone who has read Kafka's docs can read ours:
 *
 *   offset  size  field
 *        0     8  baseOffset            stamped by the leader on append
 *        8     4  batchLength           bytes after this field (total size - 12)
 *       12     4  partitionLeaderEpoch  stamped by the leader on append
 *       16     1  magic                 always 2
 *       17     4  crc                   CRC-32 (zlib.crc32) of bytes [21, end)
 *       21     2  attributes            bits 0-2 compression (0 none, 1 gzip), bit 3 timestamp type,
 *                                       bit 6 delete horizon set (firstTimestamp holds it; KIP-534)
 *       23     4  lastOffsetDelta       recordCount - 1 as produced; the log cleaner keeps it when it
 *                                       removes records, so it can exceed recordCount - 1 afterwards
 *       27     8  firstTimestamp        ms since the epoch
 *       35     8  maxTimestamp
 *       43     8  producerId            -1 when not idempotent
 *       51     2  producerEpoch
 *       53     4  baseSequence
 *       57     4  recordCount
 *       61     -  records               each varint-framed (below), gzip'd as a whole if compressed
 *
 * The CRC covers attributes onwards, not baseOffset/partitionLeaderEpoch: the broker stamps those
 * two in place without touching the checksum, and never decodes records on the hot path.
 * Kafka uses CRC-32C here; we use CRC-32 because Node ships it natively (zlib.crc32).
 *
 * A record (all varints zigzag-encoded, as in Kafka):
 *   length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
 *   keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value |
 *   headerCount varint | per header: keyLength varint | key utf8 | valueLength varint | value
 */
import { crc32, gunzipSync, gzipSync } from 'node:zlib';
import { TributaryError } from './errors.js';

export const BATCH_MAGIC = 2;
export const BATCH_HEADER_BYTES = 61;
/** Bytes before the batchLength value starts counting (baseOffset + batchLength itself). */
export const BATCH_LOG_OVERHEAD_BYTES = 12;

export const OFF_BASE_OFFSET = 0;
export const OFF_BATCH_LENGTH = 8;
export const OFF_PARTITION_LEADER_EPOCH = 12;
export const OFF_MAGIC = 16;
export const OFF_CRC = 17;
export const OFF_ATTRIBUTES = 21;
export const OFF_LAST_OFFSET_DELTA = 23;
export const OFF_FIRST_TIMESTAMP = 27;
export const OFF_MAX_TIMESTAMP = 35;
export const OFF_PRODUCER_ID = 43;
export const OFF_PRODUCER_EPOCH = 51;
export const OFF_BASE_SEQUENCE = 53;
export const OFF_RECORD_COUNT = 57;

export const COMPRESSION_MASK = 0x07;
export const TIMESTAMP_TYPE_LOG_APPEND = 0x08;
/**
 * Kafka's KIP-534 attribute: the log cleaner has seen this batch's tombstones and stored, in
 * firstTimestamp, the time after which it may remove them (records keep their own timestamps:
 * their deltas are rewritten relative to it).
 */
export const DELETE_HORIZON_FLAG = 0x40;

export type Compression = 'none' | 'gzip';
const COMPRESSION_CODES: Record<Compression, number> = { none: 0, gzip: 1 };

export interface BatchLimits {
  /** Largest whole batch, header included. */
  batchBytesMax: number;
  recordsPerBatchMax: number;
  headersPerRecordMax: number;
  keyBytesMax: number;
  valueBytesMax: number;
  /** Ceiling on the records section after gunzip, so a small gzip bomb cannot exhaust memory. */
  decompressedBytesMax: number;
}

export const DEFAULT_BATCH_LIMITS: Readonly<BatchLimits> = Object.freeze({
  batchBytesMax: 16 * 1024 * 1024,
  recordsPerBatchMax: 1_000_000,
  headersPerRecordMax: 1024,
  keyBytesMax: 1024 * 1024,
  valueBytesMax: 16 * 1024 * 1024,
  decompressedBytesMax: 64 * 1024 * 1024,
});

export interface BatchHeader {
  baseOffset: number;
  batchLength: number;
  partitionLeaderEpoch: number;
  magic: number;
  crc: number;
  attributes: number;
  lastOffsetDelta: number;
  firstTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordCount: number;
}

export interface RecordHeader {
  key: string;
  value: Buffer | null;
}

/** A record as a producer hands it in. */
export interface RecordInput {
  key: Buffer | null;
  value: Buffer | null;
  headers?: readonly RecordHeader[];
  /** ms since the epoch; defaults to the batch's firstTimestamp. */
  timestamp?: number;
}

/** A record as a consumer reads it back. */
export interface DecodedRecord {
  offset: number;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: RecordHeader[];
}

// ---------------------------------------------------------------------------------------------
// int64 as JS numbers. Offsets, timestamps and producer ids stay below 2^53, so two 32-bit halves
// are exact and avoid BigInt allocations on the hot path.

const TWO_POW_32 = 4294967296;

export function readInt64(buf: Uint8Array, pos: number): number {
  const view = buf as Buffer;
  return view.readInt32BE(pos) * TWO_POW_32 + view.readUInt32BE(pos + 4);
}

export function writeInt64(buf: Uint8Array, pos: number, value: number): void {
  const view = buf as Buffer;
  const high = Math.floor(value / TWO_POW_32);
  view.writeInt32BE(high, pos);
  view.writeUInt32BE(value - high * TWO_POW_32, pos + 4);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// ---------------------------------------------------------------------------------------------
// Header access. These never decode records.

/**
 * Total size of the batch starting at `pos`, or -1 when fewer than 12 bytes remain (the length
 * field itself is not there yet). The value is not trusted: callers bound it.
 */
export function batchSizeAt(buf: Uint8Array, pos: number): number {
  if (buf.length - pos < BATCH_LOG_OVERHEAD_BYTES) return -1;
  return (buf as Buffer).readInt32BE(pos + OFF_BATCH_LENGTH) + BATCH_LOG_OVERHEAD_BYTES;
}

export function readBatchHeader(buf: Uint8Array, pos = 0): BatchHeader {
  const b = asBuffer(buf);
  if (b.length - pos < BATCH_HEADER_BYTES) {
    throw new TributaryError('CORRUPT_MESSAGE', `batch header: need ${BATCH_HEADER_BYTES} bytes, have ${b.length - pos}`);
  }
  return {
    baseOffset: readInt64(b, pos + OFF_BASE_OFFSET),
    batchLength: b.readInt32BE(pos + OFF_BATCH_LENGTH),
    partitionLeaderEpoch: b.readInt32BE(pos + OFF_PARTITION_LEADER_EPOCH),
    magic: b.readInt8(pos + OFF_MAGIC),
    crc: b.readUInt32BE(pos + OFF_CRC),
    attributes: b.readInt16BE(pos + OFF_ATTRIBUTES),
    lastOffsetDelta: b.readInt32BE(pos + OFF_LAST_OFFSET_DELTA),
    firstTimestamp: readInt64(b, pos + OFF_FIRST_TIMESTAMP),
    maxTimestamp: readInt64(b, pos + OFF_MAX_TIMESTAMP),
    producerId: readInt64(b, pos + OFF_PRODUCER_ID),
    producerEpoch: b.readInt16BE(pos + OFF_PRODUCER_EPOCH),
    baseSequence: b.readInt32BE(pos + OFF_BASE_SEQUENCE),
    recordCount: b.readInt32BE(pos + OFF_RECORD_COUNT),
  };
}

export function batchBaseOffset(buf: Uint8Array, pos = 0): number {
  return readInt64(buf, pos + OFF_BASE_OFFSET);
}

export function batchLastOffset(buf: Uint8Array, pos = 0): number {
  return readInt64(buf, pos + OFF_BASE_OFFSET) + (buf as Buffer).readInt32BE(pos + OFF_LAST_OFFSET_DELTA);
}

export function batchMaxTimestamp(buf: Uint8Array, pos = 0): number {
  return readInt64(buf, pos + OFF_MAX_TIMESTAMP);
}

export function batchLeaderEpoch(buf: Uint8Array, pos = 0): number {
  return (buf as Buffer).readInt32BE(pos + OFF_PARTITION_LEADER_EPOCH);
}

export function batchRecordCount(buf: Uint8Array, pos = 0): number {
  return (buf as Buffer).readInt32BE(pos + OFF_RECORD_COUNT);
}

/** Stamp the offsets and leader epoch in place. Outside the CRC'd range, so the CRC stays valid. */
export function stampBatch(buf: Uint8Array, pos: number, baseOffset: number, partitionLeaderEpoch: number): void {
  writeInt64(buf, pos + OFF_BASE_OFFSET, baseOffset);
  (buf as Buffer).writeInt32BE(partitionLeaderEpoch, pos + OFF_PARTITION_LEADER_EPOCH);
}

/**
 * A copy of the batch with a new producer id, epoch and base sequence (and its CRC recomputed,
 * since those fields are inside the CRC'd range). The idempotent producer uses it to restart a
 * partition's sequences under a bumped epoch without rebuilding the records.
 */
export function withProducerIdentity(batch: Uint8Array, producerId: number, producerEpoch: number, baseSequence: number): Buffer {
  const out = Buffer.from(batch);
  writeInt64(out, OFF_PRODUCER_ID, producerId);
  out.writeInt16BE(producerEpoch, OFF_PRODUCER_EPOCH);
  out.writeInt32BE(baseSequence, OFF_BASE_SEQUENCE);
  out.writeUInt32BE(computeBatchCrc(out, 0, out.length), OFF_CRC);
  return out;
}

export function computeBatchCrc(buf: Uint8Array, pos: number, size: number): number {
  return crc32(buf.subarray(pos + OFF_ATTRIBUTES, pos + size));
}

/**
 * Check one batch's framing and checksum without decoding its records: magic, length within
 * bounds and within the buffer, record count consistent with lastOffsetDelta, CRC. Returns the
 * batch size. Throws CORRUPT_MESSAGE naming the field otherwise. This is what the broker runs on
 * every produced batch and what log recovery runs on every batch of the tail.
 *
 * `compacted`: accept what the log cleaner writes (Kafka allows it in any batch read from a log):
 * fewer records than the offset range (lastOffsetDelta >= recordCount - 1, records removed with
 * the batch's offset range kept) and even none (the last batch of an idempotent producer is kept
 * empty so its sequence numbers survive). Produced batches are checked strictly.
 *
 * `verifyCrc` false checks the framing only, for a caller that makes sure the CRC is checked
 * before anything is written or answered (it costs more than everything else here together).
 */
export function checkBatch(
  buf: Uint8Array,
  pos: number,
  limits: Pick<BatchLimits, 'batchBytesMax' | 'recordsPerBatchMax'> = DEFAULT_BATCH_LIMITS,
  compacted = false,
  verifyCrc = true,
): number {
  const b = buf as Buffer;
  const available = b.length - pos;
  if (available < BATCH_HEADER_BYTES) {
    throw new TributaryError('CORRUPT_MESSAGE', `batch: ${available} bytes is shorter than the ${BATCH_HEADER_BYTES}-byte header`);
  }
  const size = b.readInt32BE(pos + OFF_BATCH_LENGTH) + BATCH_LOG_OVERHEAD_BYTES;
  if (size < BATCH_HEADER_BYTES) throw new TributaryError('CORRUPT_MESSAGE', `batchLength: ${size - BATCH_LOG_OVERHEAD_BYTES} is smaller than the header`);
  if (size > limits.batchBytesMax) {
    throw new TributaryError('MESSAGE_TOO_LARGE', `batch of ${size} bytes exceeds the ${limits.batchBytesMax}-byte limit`);
  }
  if (size > available) throw new TributaryError('CORRUPT_MESSAGE', `batchLength: says ${size} bytes, only ${available} present`);
  const magic = b.readInt8(pos + OFF_MAGIC);
  if (magic !== BATCH_MAGIC) throw new TributaryError('CORRUPT_MESSAGE', `magic: expected ${BATCH_MAGIC}, got ${magic}`);
  const recordCount = b.readInt32BE(pos + OFF_RECORD_COUNT);
  const recordCountMin = compacted ? 0 : 1;
  if (recordCount < recordCountMin || recordCount > limits.recordsPerBatchMax) {
    throw new TributaryError('CORRUPT_MESSAGE', `recordCount: ${recordCount} is outside ${recordCountMin}..${limits.recordsPerBatchMax}`);
  }
  const lastOffsetDelta = b.readInt32BE(pos + OFF_LAST_OFFSET_DELTA);
  if (compacted ? lastOffsetDelta < Math.max(0, recordCount - 1) : lastOffsetDelta !== recordCount - 1) {
    throw new TributaryError('CORRUPT_MESSAGE', `lastOffsetDelta: ${lastOffsetDelta} does not match recordCount ${recordCount}`);
  }
  const compression = b.readInt16BE(pos + OFF_ATTRIBUTES) & COMPRESSION_MASK;
  if (compression > 1) throw new TributaryError('CORRUPT_MESSAGE', `attributes: unknown compression codec ${compression}`);
  if (!verifyCrc) return size;
  const stored = b.readUInt32BE(pos + OFF_CRC);
  const actual = computeBatchCrc(b, pos, size);
  if (stored !== actual) {
    throw new TributaryError('CORRUPT_MESSAGE', `crc: stored ${stored.toString(16)}, computed ${actual.toString(16)}`);
  }
  return size;
}

/**
 * Check a buffer of one or more back-to-back batches (a produce request's records field).
 * Returns the number of batches and records. Throws on the first bad batch.
 */
export function checkBatches(buf: Uint8Array, limits: Pick<BatchLimits, 'batchBytesMax' | 'recordsPerBatchMax'> = DEFAULT_BATCH_LIMITS): { batches: number; records: number } {
  let pos = 0;
  let batches = 0;
  let records = 0;
  if (buf.length === 0) throw new TributaryError('CORRUPT_MESSAGE', 'records: empty');
  while (pos < buf.length) {
    const size = checkBatch(buf, pos, limits);
    records += batchRecordCount(buf, pos);
    batches += 1;
    pos += size;
  }
  return { batches, records };
}

// ---------------------------------------------------------------------------------------------
// Varints (zigzag), as Kafka encodes them.

/** Worst-case bytes of a zigzag varint of a 32-bit value. */
const VARINT_BYTES_MAX = 5;
const VARLONG_BYTES_MAX = 10;

function zigzag32(value: number): number {
  return ((value << 1) ^ (value >> 31)) >>> 0;
}

function writeVarint(buf: Buffer, pos: number, value: number): number {
  let v = zigzag32(value);
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

/** Zigzag varlong for values within +-2^52 (timestamps deltas, offsets), done in float arithmetic. */
function writeVarlong(buf: Buffer, pos: number, value: number): number {
  let v = value >= 0 ? value * 2 : -value * 2 - 1;
  while (v >= 0x80) {
    buf[pos++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[pos++] = v;
  return pos;
}

function varintSize(value: number): number {
  let v = zigzag32(value);
  let n = 1;
  while (v >= 0x80) {
    v >>>= 7;
    n++;
  }
  return n;
}

function varlongSize(value: number): number {
  let v = value >= 0 ? value * 2 : -value * 2 - 1;
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** A cursor over a records section; every read is bounds-checked and names its field on error. */
class RecordReader {
  pos: number;
  constructor(
    private readonly buf: Buffer,
    pos: number,
    private readonly end: number,
  ) {
    this.pos = pos;
  }

  private fail(field: string, why: string): never {
    throw new TributaryError('CORRUPT_MESSAGE', `${field}: ${why}`);
  }

  varint(field: string): number {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < VARINT_BYTES_MAX; i++) {
      if (this.pos >= this.end) this.fail(field, 'truncated varint');
      const byte = this.buf[this.pos++]!;
      result |= (byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) {
        const raw = result >>> 0;
        return (raw >>> 1) ^ -(raw & 1);
      }
      shift += 7;
    }
    return this.fail(field, 'varint longer than 5 bytes');
  }

  varlong(field: string): number {
    let result = 0;
    let multiplier = 1;
    for (let i = 0; i < VARLONG_BYTES_MAX; i++) {
      if (this.pos >= this.end) this.fail(field, 'truncated varlong');
      const byte = this.buf[this.pos++]!;
      result += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) {
        if (!Number.isSafeInteger(result)) this.fail(field, 'varlong exceeds 2^53');
        return result % 2 === 0 ? result / 2 : -(result + 1) / 2;
      }
      multiplier *= 128;
    }
    return this.fail(field, 'varlong longer than 10 bytes');
  }

  int8(field: string): number {
    if (this.pos >= this.end) this.fail(field, 'truncated');
    return this.buf.readInt8(this.pos++);
  }

  bytes(field: string, length: number, lengthMax: number): Buffer | null {
    if (length === -1) return null;
    if (length < -1) this.fail(field, `negative length ${length}`);
    if (length > lengthMax) this.fail(field, `${length} bytes exceeds the ${lengthMax}-byte limit`);
    if (this.pos + length > this.end) this.fail(field, `length ${length} runs past the end of the record`);
    const out = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Building and decoding whole batches: the client's work, never the broker's hot path.

export interface BuildBatchOptions {
  records: readonly RecordInput[];
  /** Defaults to now at the caller; passed in so tests are deterministic. */
  firstTimestamp: number;
  compression?: Compression;
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
  baseOffset?: number;
  partitionLeaderEpoch?: number;
}

function headerKeyBytes(headers: readonly RecordHeader[] | undefined): Buffer[] | undefined {
  if (headers === undefined || headers.length === 0) return undefined;
  return headers.map((h) => Buffer.from(h.key, 'utf8'));
}

/** Encode records into a complete batch with a valid CRC. */
export function buildBatch(options: BuildBatchOptions): Buffer {
  const { records, firstTimestamp } = options;
  if (records.length === 0) throw new TributaryError('INVALID_REQUEST', 'records: a batch needs at least one record');
  let maxTimestamp = firstTimestamp;
  // First pass: sizes, so the records section is written into one exact allocation.
  const headerKeys: (Buffer[] | undefined)[] = new Array(records.length);
  let recordsBytes = 0;
  const bodySizes = new Array<number>(records.length);
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const timestamp = r.timestamp ?? firstTimestamp;
    if (timestamp > maxTimestamp) maxTimestamp = timestamp;
    const keys = headerKeyBytes(r.headers);
    headerKeys[i] = keys;
    let body = 1 + varlongSize(timestamp - firstTimestamp) + varintSize(i);
    body += r.key === null ? varintSize(-1) : varintSize(r.key.length) + r.key.length;
    body += r.value === null ? varintSize(-1) : varintSize(r.value.length) + r.value.length;
    const headers = r.headers ?? [];
    body += varintSize(headers.length);
    for (let h = 0; h < headers.length; h++) {
      const k = keys![h]!;
      const v = headers[h]!.value;
      body += varintSize(k.length) + k.length + (v === null ? varintSize(-1) : varintSize(v.length) + v.length);
    }
    bodySizes[i] = body;
    recordsBytes += varintSize(body) + body;
  }
  let section = Buffer.allocUnsafe(recordsBytes);
  let pos = 0;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    pos = writeVarint(section, pos, bodySizes[i]!);
    section[pos++] = 0; // record attributes: unused
    pos = writeVarlong(section, pos, (r.timestamp ?? firstTimestamp) - firstTimestamp);
    pos = writeVarint(section, pos, i);
    if (r.key === null) pos = writeVarint(section, pos, -1);
    else {
      pos = writeVarint(section, pos, r.key.length);
      pos += r.key.copy(section, pos);
    }
    if (r.value === null) pos = writeVarint(section, pos, -1);
    else {
      pos = writeVarint(section, pos, r.value.length);
      pos += r.value.copy(section, pos);
    }
    const headers = r.headers ?? [];
    pos = writeVarint(section, pos, headers.length);
    const keys = headerKeys[i];
    for (let h = 0; h < headers.length; h++) {
      const k = keys![h]!;
      pos = writeVarint(section, pos, k.length);
      pos += k.copy(section, pos);
      const v = headers[h]!.value;
      if (v === null) pos = writeVarint(section, pos, -1);
      else {
        pos = writeVarint(section, pos, v.length);
        pos += v.copy(section, pos);
      }
    }
  }
  const compression = options.compression ?? 'none';
  if (compression === 'gzip') section = gzipSync(section);

  const size = BATCH_HEADER_BYTES + section.length;
  const out = Buffer.allocUnsafe(size);
  writeInt64(out, OFF_BASE_OFFSET, options.baseOffset ?? 0);
  out.writeInt32BE(size - BATCH_LOG_OVERHEAD_BYTES, OFF_BATCH_LENGTH);
  out.writeInt32BE(options.partitionLeaderEpoch ?? -1, OFF_PARTITION_LEADER_EPOCH);
  out.writeInt8(BATCH_MAGIC, OFF_MAGIC);
  out.writeInt16BE(COMPRESSION_CODES[compression], OFF_ATTRIBUTES);
  out.writeInt32BE(records.length - 1, OFF_LAST_OFFSET_DELTA);
  writeInt64(out, OFF_FIRST_TIMESTAMP, firstTimestamp);
  writeInt64(out, OFF_MAX_TIMESTAMP, maxTimestamp);
  writeInt64(out, OFF_PRODUCER_ID, options.producerId ?? -1);
  out.writeInt16BE(options.producerEpoch ?? -1, OFF_PRODUCER_EPOCH);
  out.writeInt32BE(options.baseSequence ?? -1, OFF_BASE_SEQUENCE);
  out.writeInt32BE(records.length, OFF_RECORD_COUNT);
  section.copy(out, BATCH_HEADER_BYTES);
  out.writeUInt32BE(computeBatchCrc(out, 0, size), OFF_CRC);
  return out;
}

/**
 * Decode every record of the batch at `pos` (checked first). Keys, values and header values are
 * slices of the input (or of the gunzipped section), not copies.
 */
export function decodeBatchRecords(buf: Uint8Array, pos = 0, limits: BatchLimits = DEFAULT_BATCH_LIMITS): DecodedRecord[] {
  const b = asBuffer(buf);
  // Batches read from a log may have been compacted (records removed, offset range kept).
  const size = checkBatch(b, pos, limits, true);
  const header = readBatchHeader(b, pos);
  let section: Buffer = b.subarray(pos + BATCH_HEADER_BYTES, pos + size);
  if ((header.attributes & COMPRESSION_MASK) === 1) {
    try {
      section = gunzipSync(section, { maxOutputLength: limits.decompressedBytesMax });
    } catch (cause) {
      throw new TributaryError('CORRUPT_MESSAGE', `records: gzip section does not decompress within ${limits.decompressedBytesMax} bytes`, { cause });
    }
  }
  const reader = new RecordReader(section, 0, section.length);
  const out: DecodedRecord[] = new Array(header.recordCount);
  for (let i = 0; i < header.recordCount; i++) {
    const field = `records[${i}]`;
    const length = reader.varint(`${field}.length`);
    const recordEnd = reader.pos + length;
    if (length < 0 || recordEnd > section.length) throw new TributaryError('CORRUPT_MESSAGE', `${field}.length: ${length} runs past the batch`);
    const recordReader = new RecordReader(section, reader.pos, recordEnd);
    recordReader.int8(`${field}.attributes`);
    const timestampDelta = recordReader.varlong(`${field}.timestampDelta`);
    const offsetDelta = recordReader.varint(`${field}.offsetDelta`);
    if (offsetDelta < 0 || offsetDelta > header.lastOffsetDelta) {
      throw new TributaryError('CORRUPT_MESSAGE', `${field}.offsetDelta: ${offsetDelta} outside 0..${header.lastOffsetDelta}`);
    }
    const key = recordReader.bytes(`${field}.key`, recordReader.varint(`${field}.keyLength`), limits.keyBytesMax);
    const value = recordReader.bytes(`${field}.value`, recordReader.varint(`${field}.valueLength`), limits.valueBytesMax);
    const headerCount = recordReader.varint(`${field}.headerCount`);
    if (headerCount < 0 || headerCount > limits.headersPerRecordMax) {
      throw new TributaryError('CORRUPT_MESSAGE', `${field}.headerCount: ${headerCount} outside 0..${limits.headersPerRecordMax}`);
    }
    const headers: RecordHeader[] = [];
    for (let h = 0; h < headerCount; h++) {
      const hk = recordReader.bytes(`${field}.headers[${h}].key`, recordReader.varint(`${field}.headers[${h}].keyLength`), limits.keyBytesMax);
      if (hk === null) throw new TributaryError('CORRUPT_MESSAGE', `${field}.headers[${h}].key: null header key`);
      const hv = recordReader.bytes(`${field}.headers[${h}].value`, recordReader.varint(`${field}.headers[${h}].valueLength`), limits.valueBytesMax);
      headers.push({ key: hk.toString('utf8'), value: hv });
    }
    if (recordReader.pos !== recordEnd) {
      throw new TributaryError('CORRUPT_MESSAGE', `${field}: ${recordEnd - recordReader.pos} unread bytes inside the record`);
    }
    reader.pos = recordEnd;
    out[i] = { offset: header.baseOffset + offsetDelta, timestamp: header.firstTimestamp + timestampDelta, key, value, headers };
  }
  if (reader.pos !== section.length) {
    throw new TributaryError('CORRUPT_MESSAGE', `records: ${section.length - reader.pos} bytes after the last record`);
  }
  return out;
}

/** Whether any record of the (checked) batch at `pos` has a null key: a compacted topic refuses those. */
export function batchHasNullKey(buf: Uint8Array, pos = 0, limits: BatchLimits = DEFAULT_BATCH_LIMITS): boolean {
  for (const record of decodeBatchRecords(buf, pos, limits)) if (record.key === null) return true;
  return false;
}

export interface CleanedBatchOptions {
  /** The original batch's header. baseOffset, lastOffsetDelta, epoch and producer fields are kept. */
  header: BatchHeader;
  /** The records to keep, in offset order, each with its original offset and timestamp. */
  records: readonly DecodedRecord[];
  /** Set the KIP-534 delete horizon (firstTimestamp = this, DELETE_HORIZON_FLAG on); null keeps what the batch had. */
  deleteHorizonMs: number | null;
}

/**
 * Rebuild a batch with some of its records removed, as Kafka's log cleaner does: the same
 * baseOffset and lastOffsetDelta (so the batch still spans its original offsets and a producer's
 * sequence numbers still line up with them), each kept record's offset and timestamp, the same
 * compression, epoch and producer fields; recordCount, maxTimestamp (of the kept records; the
 * original when none are kept) and the CRC are recomputed.
 */
export function buildCleanedBatch(options: CleanedBatchOptions): Buffer {
  const { header, records } = options;
  let attributes = header.attributes;
  let firstTimestamp = header.firstTimestamp;
  if (options.deleteHorizonMs !== null) {
    attributes |= DELETE_HORIZON_FLAG;
    firstTimestamp = options.deleteHorizonMs;
  }
  let maxTimestamp = records.length === 0 ? header.maxTimestamp : -Infinity;
  const encoded: Buffer[] = [];
  let recordsBytes = 0;
  for (const r of records) {
    const offsetDelta = r.offset - header.baseOffset;
    if (!(offsetDelta >= 0 && offsetDelta <= header.lastOffsetDelta)) {
      throw new TributaryError('CORRUPT_MESSAGE', `cleaned record offset ${r.offset} is outside batch ${header.baseOffset}+${header.lastOffsetDelta}`);
    }
    if (r.timestamp > maxTimestamp) maxTimestamp = r.timestamp;
    const timestampDelta = r.timestamp - firstTimestamp;
    let body = 1 + varlongSize(timestampDelta) + varintSize(offsetDelta);
    body += r.key === null ? varintSize(-1) : varintSize(r.key.length) + r.key.length;
    body += r.value === null ? varintSize(-1) : varintSize(r.value.length) + r.value.length;
    const headerKeys = r.headers.map((h) => Buffer.from(h.key, 'utf8'));
    body += varintSize(r.headers.length);
    for (let h = 0; h < r.headers.length; h++) {
      const v = r.headers[h]!.value;
      body += varintSize(headerKeys[h]!.length) + headerKeys[h]!.length + (v === null ? varintSize(-1) : varintSize(v.length) + v.length);
    }
    const out = Buffer.allocUnsafe(varintSize(body) + body);
    let pos = writeVarint(out, 0, body);
    out[pos++] = 0;
    pos = writeVarlong(out, pos, timestampDelta);
    pos = writeVarint(out, pos, offsetDelta);
    pos = writeBytesField(out, pos, r.key);
    pos = writeBytesField(out, pos, r.value);
    pos = writeVarint(out, pos, r.headers.length);
    for (let h = 0; h < r.headers.length; h++) {
      pos = writeBytesField(out, pos, headerKeys[h]!);
      pos = writeBytesField(out, pos, r.headers[h]!.value);
    }
    encoded.push(out);
    recordsBytes += out.length;
  }
  let section = Buffer.concat(encoded, recordsBytes);
  if ((attributes & COMPRESSION_MASK) === COMPRESSION_CODES.gzip) section = gzipSync(section);

  const size = BATCH_HEADER_BYTES + section.length;
  const out = Buffer.allocUnsafe(size);
  writeInt64(out, OFF_BASE_OFFSET, header.baseOffset);
  out.writeInt32BE(size - BATCH_LOG_OVERHEAD_BYTES, OFF_BATCH_LENGTH);
  out.writeInt32BE(header.partitionLeaderEpoch, OFF_PARTITION_LEADER_EPOCH);
  out.writeInt8(BATCH_MAGIC, OFF_MAGIC);
  out.writeInt16BE(attributes, OFF_ATTRIBUTES);
  out.writeInt32BE(header.lastOffsetDelta, OFF_LAST_OFFSET_DELTA);
  writeInt64(out, OFF_FIRST_TIMESTAMP, firstTimestamp);
  writeInt64(out, OFF_MAX_TIMESTAMP, maxTimestamp);
  writeInt64(out, OFF_PRODUCER_ID, header.producerId);
  out.writeInt16BE(header.producerEpoch, OFF_PRODUCER_EPOCH);
  out.writeInt32BE(header.baseSequence, OFF_BASE_SEQUENCE);
  out.writeInt32BE(records.length, OFF_RECORD_COUNT);
  section.copy(out, BATCH_HEADER_BYTES);
  out.writeUInt32BE(computeBatchCrc(out, 0, size), OFF_CRC);
  return out;
}

function writeBytesField(buf: Buffer, pos: number, bytes: Buffer | null): number {
  if (bytes === null) return writeVarint(buf, pos, -1);
  pos = writeVarint(buf, pos, bytes.length);
  return pos + bytes.copy(buf, pos);
}

/** Visit each complete batch in a buffer of back-to-back batches (a fetch response's records). */
export function* iterateBatches(buf: Uint8Array): Generator<{ pos: number; size: number }> {
  let pos = 0;
  while (pos < buf.length) {
    const size = batchSizeAt(buf, pos);
    // A fetch may end in a partial batch (maxBytes cut it); Kafka clients ignore it, so do we.
    if (size < BATCH_HEADER_BYTES || pos + size > buf.length) return;
    yield { pos, size };
    pos += size;
  }
}
