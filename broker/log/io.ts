/**
 * Positional sync IO helpers. Sync on purpose: a write of a batch into the page cache takes
 * microseconds, less than a hop to the libuv threadpool and back (Kafka also writes from the
 * request thread). Short reads and writes are legal for pread/pwrite, so both loop.
 */
import fs from 'node:fs';
import { TributaryError } from '../../protocol/errors.js';

export function writeFully(fd: number, buf: Uint8Array, offset: number, length: number, position: number): void {
  let done = 0;
  while (done < length) {
    done += fs.writeSync(fd, buf, offset + done, length - done, position + done);
  }
}

/** Read up to `length` bytes; returns how many were read (fewer only at end of file). */
export function readFully(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, offset + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * A window onto a file for walking batch headers: `at(pos, n)` makes bytes [pos, pos+n) present
 * in `buf` and returns where they start in it, reading a whole window at a time so a scan over
 * small batches costs one syscall per window rather than one per batch.
 */
export class FileWindow {
  private start = 0;
  private length = 0;

  constructor(
    private readonly fd: number,
    private readonly fileBytes: number,
    public buf: Buffer,
  ) {}

  /** Caller guarantees pos + n <= fileBytes. */
  at(pos: number, n: number): number {
    if (pos >= this.start && pos + n <= this.start + this.length) return pos - this.start;
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
    const want = Math.min(this.buf.length, this.fileBytes - pos);
    this.length = readFully(this.fd, this.buf, 0, want, pos);
    this.start = pos;
    // Someone cut the file under us: the disk, not a bug in the caller.
    if (this.length < n) throw new TributaryError('KAFKA_STORAGE_ERROR', `file shrank: wanted ${n} bytes at ${pos}, read ${this.length}`);
    return 0;
  }
}
