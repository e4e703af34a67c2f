/**
 * The file behind an in-memory index (offset or time index): which of the memory's entries the
 * file holds, so `persist` writes only the new ones, cuts the file back after a truncation, and
 * fsyncs only when asked and something changed. The index classes own the entry layout.
 */
import fs from 'node:fs';
import { writeFully } from './io.js';

export class IndexFile {
  /** Entries already in the file; persist() writes only the ones after. */
  private persistedCount = 0;
  /** Entries the file is known to hold (-1: unknown) and how many of them were fsynced. */
  private fileLength = -1;
  private syncedCount = -1;

  constructor(
    readonly path: string,
    private readonly entryBytes: number,
  ) {}

  /** The file's bytes, or null when it is missing or not a whole number of entries. */
  read(): Buffer | null {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return bytes.length % this.entryBytes === 0 ? bytes : null;
  }

  /** Memory now holds exactly the file's `count` entries. */
  markLoaded(count: number): void {
    this.persistedCount = count;
    this.fileLength = count;
  }

  /** Memory was cut back to `count` entries. */
  onTruncate(count: number): void {
    if (this.persistedCount > count) this.persistedCount = count;
    if (this.fileLength !== count) this.fileLength = -1;
  }

  /** Forget what the file holds, so the next persist rewrites it from scratch. */
  markStale(): void {
    this.persistedCount = 0;
    this.fileLength = -1;
  }

  /**
   * Bring the file up to date with memory's `entryCount` entries: cut it back if truncation
   * removed persisted entries, write the new ones (`encode` writes entry i at `pos` of `out`) in
   * one write, fsync when asked.
   */
  persist(entryCount: number, sync: boolean, encode: (out: Buffer, pos: number, i: number) => void): void {
    // Nothing new since the last (synced) write: skip the open, the write and the fsync.
    if (this.persistedCount === entryCount && this.fileLength === entryCount && (!sync || this.syncedCount === entryCount)) return;
    const fd = fs.openSync(this.path, fs.existsSync(this.path) ? 'r+' : 'w+');
    try {
      const expectedBytes = this.persistedCount * this.entryBytes;
      if (fs.fstatSync(fd).size !== expectedBytes) fs.ftruncateSync(fd, expectedBytes);
      if (entryCount > this.persistedCount) {
        const out = Buffer.allocUnsafe((entryCount - this.persistedCount) * this.entryBytes);
        let pos = 0;
        for (let i = this.persistedCount; i < entryCount; i++) {
          encode(out, pos, i);
          pos += this.entryBytes;
        }
        writeFully(fd, out, 0, out.length, expectedBytes);
        this.persistedCount = entryCount;
      }
      this.fileLength = this.persistedCount;
      if (sync) {
        fs.fsyncSync(fd);
        this.syncedCount = this.persistedCount;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}
