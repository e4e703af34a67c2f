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
import { assert } from '../../common/assert.js';
import { GrowableEntries } from './growable-entries.js';
import { IndexFile } from './index-file.js';

export const OFFSET_INDEX_ENTRY_BYTES = 8;

export class OffsetIndex {
  private readonly relativeOffsets = new GrowableEntries();
  private readonly positions = new GrowableEntries();
  private readonly indexFile: IndexFile;

  constructor(
    readonly baseOffset: number,
    readonly file: string,
  ) {
    this.indexFile = new IndexFile(file, OFFSET_INDEX_ENTRY_BYTES);
  }

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
    this.indexFile.onTruncate(count);
  }

  /**
   * Replace the in-memory entries with the file's. False (and empty) when the file is missing
   * or fails the sanity checks: size not a multiple of the entry size, entries not strictly
   * increasing, a position at or past the end of the log file.
   */
  load(logSizeBytes: number): boolean {
    this.clear();
    const bytes = this.indexFile.read();
    if (bytes === null) return false;
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
    this.indexFile.markLoaded(this.entryCount);
    return true;
  }

  /**
   * Bring the file up to date with memory: cut it back if truncation removed persisted entries,
   * write the new ones in one write, fsync when asked.
   */
  persist(sync: boolean): void {
    this.indexFile.persist(this.entryCount, sync, (out, pos, i) => {
        out.writeUInt32BE(this.relativeOffsets.get(i), pos);
        out.writeUInt32BE(this.positions.get(i), pos + 4);
    });
  }

  /** Forget what the file holds, so the next persist rewrites it from scratch. */
  markFileStale(): void {
    this.indexFile.markStale();
  }
}
