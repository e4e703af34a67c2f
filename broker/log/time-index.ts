/**
 * The sparse time index of one segment: `<baseOffset>.timeindex`, a flat array of 12-byte entries
 *
 *   timestamp      int64 BE   the segment's largest batch maxTimestamp so far (ms)
 *   relativeOffset uint32 BE   offset of the first batch that reached it - segment baseOffset
 *
 * An entry is added beside an offset-index entry only when the largest timestamp has grown, so
 * timestamps are strictly increasing and so are offsets. Every batch before the entry's offset
 * has maxTimestamp < the entry's timestamp, which is what makes the lookup in
 * LogSegment.findOffsetByTimestamp exact. Held in memory and persisted like the offset index.
 */
import { assert } from '../../common/assert.js';
import { readInt64, writeInt64 } from '../../protocol/record-batch.js';
import { GrowableEntries } from './growable-entries.js';
import { IndexFile } from './index-file.js';

export const TIME_INDEX_ENTRY_BYTES = 12;

export class TimeIndex {
  private readonly timestamps = new GrowableEntries();
  private readonly relativeOffsets = new GrowableEntries();
  private readonly indexFile: IndexFile;

  constructor(
    readonly baseOffset: number,
    readonly file: string,
  ) {
    this.indexFile = new IndexFile(file, TIME_INDEX_ENTRY_BYTES);
  }

  get entryCount(): number {
    return this.timestamps.length;
  }

  timestampAt(i: number): number {
    return this.timestamps.get(i);
  }

  offsetAt(i: number): number {
    return this.baseOffset + this.relativeOffsets.get(i);
  }

  /** Largest timestamp recorded, or -1 when empty. */
  lastTimestamp(): number {
    return this.entryCount === 0 ? -1 : this.timestamps.last();
  }

  /** Add (timestamp, offset) if the timestamp is larger than the last entry's; otherwise no-op. */
  maybeAppend(timestamp: number, offset: number): void {
    const n = this.entryCount;
    if (n > 0 && timestamp <= this.timestamps.last()) return;
    const relative = offset - this.baseOffset;
    if (!(relative >= 0 && relative <= 0xffffffff)) assert(false, `time index: offset ${offset} outside the segment at ${this.baseOffset}`);
    if (n > 0 && relative <= this.relativeOffsets.last()) assert(false, `time index: offset ${offset} does not increase`);
    this.timestamps.push(timestamp);
    this.relativeOffsets.push(relative);
  }

  /** Index of the last entry whose timestamp is <= `timestamp`, or -1. */
  lookup(timestamp: number): number {
    let lo = 0;
    let hi = this.entryCount - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.timestamps.get(mid) <= timestamp) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /** Drop every entry whose offset is >= `offset`. */
  truncateToOffset(offset: number): void {
    let keep = this.entryCount;
    while (keep > 0 && this.offsetAt(keep - 1) >= offset) keep--;
    this.truncateToEntries(keep);
  }

  clear(): void {
    this.truncateToEntries(0);
  }

  private truncateToEntries(count: number): void {
    this.timestamps.truncate(count);
    this.relativeOffsets.truncate(count);
    this.indexFile.onTruncate(count);
  }

  /**
   * Replace memory with the file's entries. False (and empty) when missing or implausible: size
   * not a multiple of 12, timestamps or offsets not strictly increasing, an offset at or past
   * `nextOffset` (the end of the segment's data).
   */
  load(nextOffset: number): boolean {
    this.clear();
    const bytes = this.indexFile.read();
    if (bytes === null) return false;
    let lastTimestamp = -Infinity;
    let lastRelative = -1;
    for (let pos = 0; pos < bytes.length; pos += TIME_INDEX_ENTRY_BYTES) {
      const timestamp = readInt64(bytes, pos);
      const relative = bytes.readUInt32BE(pos + 8);
      if (timestamp <= lastTimestamp || relative <= lastRelative || this.baseOffset + relative >= nextOffset) {
        this.clear();
        return false;
      }
      this.timestamps.push(timestamp);
      this.relativeOffsets.push(relative);
      lastTimestamp = timestamp;
      lastRelative = relative;
    }
    this.indexFile.markLoaded(this.entryCount);
    return true;
  }

  persist(sync: boolean): void {
    this.indexFile.persist(this.entryCount, sync, (out, pos, i) => {
        writeInt64(out, pos, this.timestamps.get(i));
        out.writeUInt32BE(this.relativeOffsets.get(i), pos + 8);
    });
  }

  markFileStale(): void {
    this.indexFile.markStale();
  }
}
