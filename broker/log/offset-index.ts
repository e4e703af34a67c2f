/**
 * The sparse offset index of one segment: `<baseOffset>.index`, a flat array of 8-byte entries
 *
 *   relativeOffset uint32 BE   batch baseOffset - segment baseOffset
 *   position       uint32 BE   byte position of that batch in the .log file
 *
 * one per `index.interval.bytes` of log, both columns strictly increasing. A lookup finds the
 * nearest entry at or below an offset and the reader scans batch headers forward from there.
 *
 * The active segment's index lives in memory and reaches the file only on roll, flush and close
 * (append stays one syscall). The file can therefore be stale or missing after a crash; `load`
 * rejects anything that is not plausibly ours and the segment then rebuilds it by scanning.
 */
import fs from 'node:fs';
import { assert } from '../../common/assert.js';
import { GrowableEntries } from './growable-entries.js';
import { writeFully } from './io.js';

export const OFFSET_INDEX_ENTRY_BYTES = 8;

export class OffsetIndex {
  private readonly relativeOffsets = new GrowableEntries();
  private readonly positions = new GrowableEntries();
  /** Entries already in the file; persist() writes only the ones after. */
  private persistedCount = 0;
  /** Entries the file is known to hold (-1: unknown) and how many of them were fsynced. */
  private fileLength = -1;
  private syncedCount = -1;

  constructor(
    readonly baseOffset: number,
    readonly file: string,
  ) {}

  get entryCount(): number {
    return this.relativeOffsets.length;
  }

  offsetAt(i: number): number {
    return this.baseOffset + this.relativeOffsets.get(i);
  }

  positionAt(i: number): number {
    return this.positions.get(i);
  }

  append(offset: number, position: number): void {
    const relative = offset - this.baseOffset;
    const n = this.entryCount;
    // Messages are built only on failure: this runs per index entry on the append path.
    if (!(relative >= 0 && relative <= 0xffffffff)) assert(false, `offset index: offset ${offset} outside the segment at ${this.baseOffset}`);
    if (!(position >= 0 && position <= 0xffffffff)) assert(false, `offset index: position ${position} beyond uint32`);
    if (n > 0 && !(relative > this.relativeOffsets.get(n - 1) && position > this.positions.get(n - 1))) {
      assert(false, `offset index: entry (${offset}, ${position}) does not increase`);
    }
    this.relativeOffsets.push(relative);
    this.positions.push(position);
  }

  /** Index of the last entry whose offset is <= `offset`, or -1 when every entry is above it. */
  lookup(offset: number): number {
    const relative = offset - this.baseOffset;
    let lo = 0;
    let hi = this.entryCount - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.relativeOffsets.get(mid) <= relative) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /** Drop every entry whose offset is >= `offset`. */
  truncateToOffset(offset: number): void {
    const keep = this.lookup(offset - 1) + 1;
    this.truncateToEntries(keep);
  }

  clear(): void {
    this.truncateToEntries(0);
  }

  private truncateToEntries(count: number): void {
    this.relativeOffsets.truncate(count);
    this.positions.truncate(count);
    if (this.persistedCount > count) this.persistedCount = count;
    if (this.fileLength !== count) this.fileLength = -1;
  }

  /**
   * Replace the in-memory entries with the file's. False (and empty) when the file is missing
   * or fails the sanity checks: size not a multiple of the entry size, entries not strictly
   * increasing, a position at or past the end of the log file.
   */
  load(logSizeBytes: number): boolean {
    this.clear();
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    if (bytes.length % OFFSET_INDEX_ENTRY_BYTES !== 0) return false;
    let lastRelative = -1;
    let lastPosition = -1;
    for (let pos = 0; pos < bytes.length; pos += OFFSET_INDEX_ENTRY_BYTES) {
      const relative = bytes.readUInt32BE(pos);
      const position = bytes.readUInt32BE(pos + 4);
      if (relative <= lastRelative || position <= lastPosition || position >= logSizeBytes) {
        this.clear();
        return false;
      }
      this.relativeOffsets.push(relative);
      this.positions.push(position);
      lastRelative = relative;
      lastPosition = position;
    }
    this.persistedCount = this.entryCount;
    this.fileLength = this.entryCount;
    return true;
  }

  /**
   * Bring the file up to date with memory: cut it back if truncation removed persisted entries,
   * write the new ones in one write, fsync when asked.
   */
  persist(sync: boolean): void {
    const n0 = this.entryCount;
    // Nothing new since the last (synced) write: skip the open, the write and the fsync.
    if (this.persistedCount === n0 && this.fileLength === n0 && (!sync || this.syncedCount === n0)) return;
    const fd = fs.openSync(this.file, fs.existsSync(this.file) ? 'r+' : 'w+');
    try {
      const expectedBytes = this.persistedCount * OFFSET_INDEX_ENTRY_BYTES;
      if (fs.fstatSync(fd).size !== expectedBytes) fs.ftruncateSync(fd, expectedBytes);
      const n = this.entryCount;
      if (n > this.persistedCount) {
        const out = Buffer.allocUnsafe((n - this.persistedCount) * OFFSET_INDEX_ENTRY_BYTES);
        let pos = 0;
        for (let i = this.persistedCount; i < n; i++) {
          out.writeUInt32BE(this.relativeOffsets.get(i), pos);
          out.writeUInt32BE(this.positions.get(i), pos + 4);
          pos += OFFSET_INDEX_ENTRY_BYTES;
        }
        writeFully(fd, out, 0, out.length, expectedBytes);
        this.persistedCount = n;
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

  /** Forget what the file holds, so the next persist rewrites it from scratch. */
  markFileStale(): void {
    this.persistedCount = 0;
    this.fileLength = -1;
  }
}
