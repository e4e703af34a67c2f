/**
 * `tributary dump-log FILE...`: print the batches of segment files, one JSON line each (with
 * `--records`, one line per record too). For operators looking at a log on disk, like Kafka's
 * kafka-dump-log.sh. Reads the file directly; the broker need not run.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import {
  BATCH_HEADER_BYTES,
  COMPRESSION_MASK,
  batchSizeAt,
  checkBatch,
  decodeBatchRecords,
  readBatchHeader,
} from '../../protocol/record-batch.js';
import { TributaryError } from '../../protocol/errors.js';
import { UsageError } from '../usage-error.js';

interface DumpLogArgs {
  files: string[];
  records: boolean;
}

/** Read one whole segment; segments default to 1 GiB, so refuse anything much bigger. */
const SEGMENT_READ_BYTES_MAX = 2 * 1024 * 1024 * 1024;

function readWhole(path: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw new UsageError(`cannot open ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  try {
    const size = fstatSync(fd).size;
    if (size > SEGMENT_READ_BYTES_MAX) throw new UsageError(`${path} is ${size} bytes, larger than a segment can be`);
    const buf = Buffer.allocUnsafe(size);
    let read = 0;
    while (read < size) {
      const n = readSync(fd, buf, read, size - read, read);
      if (n === 0) break;
      read += n;
    }
    return buf.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

function text(bytes: Buffer | null): string | null {
  return bytes === null ? null : bytes.toString('utf8');
}

export function dumpSegment(path: string, withRecords: boolean, write: (line: string) => void): { batches: number; valid: boolean } {
  const buf = readWhole(path);
  let pos = 0;
  let batches = 0;
  while (pos < buf.length) {
    const size = batchSizeAt(buf, pos);
    try {
      checkBatch(buf, pos);
    } catch (error) {
      const why = error instanceof TributaryError ? error.message : String(error);
      write(JSON.stringify({ file: path, position: pos, error: why, trailingBytes: buf.length - pos }));
      return { batches, valid: false };
    }
    const h = readBatchHeader(buf, pos);
    write(
      JSON.stringify({
        baseOffset: h.baseOffset,
        lastOffset: h.baseOffset + h.lastOffsetDelta,
        count: h.recordCount,
        position: pos,
        size,
        leaderEpoch: h.partitionLeaderEpoch,
        producerId: h.producerId,
        producerEpoch: h.producerEpoch,
        baseSequence: h.baseSequence,
        compression: (h.attributes & COMPRESSION_MASK) === 1 ? 'gzip' : 'none',
        firstTimestamp: h.firstTimestamp,
        maxTimestamp: h.maxTimestamp,
        crc: h.crc,
      }),
    );
    if (withRecords) {
      for (const r of decodeBatchRecords(buf, pos)) {
        write(JSON.stringify({ offset: r.offset, timestamp: r.timestamp, key: text(r.key), value: text(r.value), headers: r.headers.map((x) => ({ key: x.key, value: text(x.value) })) }));
      }
    }
    batches++;
    pos += Math.max(size, BATCH_HEADER_BYTES);
  }
  return { batches, valid: true };
}

export const dumpLogCommand: CommandModule<object, DumpLogArgs> = {
  command: 'dump-log <files..>',
  describe: 'print the batches (and with --records, the records) of log segment files',
  builder: (y) =>
    y
      .positional('files', { type: 'string', array: true, demandOption: true, describe: 'segment .log files' })
      .option('records', { type: 'boolean', default: false, describe: 'also print every record' }) as never,
  handler: (args) => {
    let allValid = true;
    for (const file of args.files) {
      if (!file.endsWith('.log')) throw new UsageError(`${file}: expected a segment file ending in .log`);
      const { valid } = dumpSegment(file, args.records, (line) => process.stdout.write(line + '\n'));
      allValid &&= valid;
    }
    if (!allValid) process.exitCode = 1;
  },
};
