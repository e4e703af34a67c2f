/**
 * The newest bytes of the log, in memory, so followers and tailing consumers — nearly every read
 * on a healthy cluster — are served without touching the file. It covers a contiguous suffix of
 * the log, one chunk per append run, oldest chunks evicted once the total passes `bytesMax`.
 *
 * Zero-copy both ways: a chunk is a view of the caller's append buffer (the produce request or
 * the fetched response, which nobody writes after the append), and a read returns a view of a
 * chunk when it fits in one (a copy only when it spans several). We measured the alternatives on
 * the bench machine: a fresh copy per append halved append throughput (new pages are faulted in
 * and zeroed while the page cache wants the same memory), and copying into a reused ring cost
 * about 20% at page-cache write speed, plus a copy for every read. The price is a rule: bytes
 * given to append() and returned by read() are immutable from then on (Log documents it).
 *
 * A view keeps its whole parent ArrayBuffer alive, so a chunk whose parent is more than twice
 * its size (a small slice of a big or pooled buffer) is copied once into its own buffer, so the
 * memory held stays within about twice bytesMax.
 *
 * Two bounds apply: each log's own `bytesMax`, and an optional TailCacheBudget shared by every log
 * of the broker, which evicts the broker's oldest chunks first. Without the shared one, memory
 * grew with the partition count (8 MiB per partition: 800 MiB for 100 partitions under load).
 */
import { assert } from '../../common/assert.js';
import { BATCH_HEADER_BYTES, batchLastOffset, batchSizeAt } from '../../protocol/record-batch.js';

const EMPTY = Buffer.alloc(0);
/** Compact the chunk arrays once this many evicted slots sit at the front. */
const COMPACT_AFTER_SLOTS = 1024;

/**
 * A byte budget shared by the tail caches of one broker: when their total passes `bytesMax`, the
 * oldest chunks of the whole broker go first (chunks are queued in append order; an entry whose
 * chunk is already gone, evicted by its own cache, truncated or cleared, is skipped).
 */
export class TailCacheBudget {
  private bytesHeld = 0;
  private chunksHeld = 0;
  private queue: Array<{ cache: TailCache; id: number }> = [];
  private nextId = 1;
  private head = 0;

  constructor(readonly bytesMax: number) {}

  get sizeBytes(): number {
    return this.bytesHeld;
  }

  /** @internal TailCache calls: a chunk is being added. Returns its id (unique per budget). */
  added(cache: TailCache, length: number): number {
    const id = this.nextId++;
    this.bytesHeld += length;
    this.chunksHeld++;
    this.queue.push({ cache, id });
    return id;
  }

  /** @internal TailCache calls after adding: evict the broker's oldest chunks while over budget. */
  enforce(): void {
    while (this.bytesHeld > this.bytesMax && this.head < this.queue.length) {
      const oldest = this.queue[this.head]!;
      this.queue[this.head++] = STALE;
      oldest.cache.evictIfOldest(oldest.id);
    }
    // Entries of chunks that left by other ways pile up only until they outnumber the live ones.
    if (this.head >= COMPACT_AFTER_SLOTS && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    } else if (this.queue.length - this.head > 2 * this.chunksHeld + COMPACT_AFTER_SLOTS) {
      this.queue = this.queue.slice(this.head).filter((e) => e.cache.holdsChunk(e.id));
      this.head = 0;
    }
  }

  /** @internal TailCache calls: bytes (and whole chunks) left a cache. */
  released(bytes: number, chunks: number): void {
    this.bytesHeld -= bytes;
    this.chunksHeld -= chunks;
  }
}

const STALE = { cache: undefined as unknown as TailCache, id: 0 };

export class TailCache {
  private baseOffsets: number[] = [];
  /** The budget's id of each chunk (0 without a budget); ids only grow along the array. */
  private ids: number[] = [];
  /** lastOffset + 1 of each chunk. */
  private endOffsets: number[] = [];
  private chunks: Buffer[] = [];
  private head = 0;
  private bytes = 0;

  constructor(
    readonly bytesMax: number,
    private readonly budget?: TailCacheBudget,
  ) {}

  get sizeBytes(): number {
    return this.bytes;
  }

  private get chunkCount(): number {
    return this.chunks.length - this.head;
  }

  /**
   * Evict the oldest chunk if it is chunk `id` (the shared budget's call). By id, not offset: a
   * chunk truncated away and appended again at the same offset is a new chunk, and the old
   * one's queue entry must not evict it.
   */
  evictIfOldest(id: number): void {
    if (!this.isEmpty && this.ids[this.head] === id) this.evictOldest();
  }

  /** Whether chunk `id` is held. */
  holdsChunk(id: number): boolean {
    let lo = this.head;
    let hi = this.ids.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const at = this.ids[mid]!;
      if (at === id) return true;
      if (at < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }

  get isEmpty(): boolean {
    return this.head === this.chunks.length;
  }

  /**
   * Hold buf[start, end) — whole batches from baseOffset to endOffset - 1, continuing the cached
   * suffix. A run larger than the whole budget empties the cache instead, since the cache must
   * stay a contiguous suffix of the log.
   */
  append(buf: Buffer, start: number, end: number, baseOffset: number, endOffset: number): void {
    const length = end - start;
    if (length > this.bytesMax) {
      this.clear();
      return;
    }
    if (!this.isEmpty) assert(this.endOffsets[this.endOffsets.length - 1] === baseOffset, 'tail cache: chunk is not contiguous');
    let chunk = buf.subarray(start, end);
    if (chunk.buffer.byteLength > 2 * length) {
      chunk = Buffer.allocUnsafeSlow(length);
      buf.copy(chunk, 0, start, end);
    }
    this.ids.push(this.budget?.added(this, length) ?? 0);
    this.baseOffsets.push(baseOffset);
    this.endOffsets.push(endOffset);
    this.chunks.push(chunk);
    this.bytes += length;
    while (this.bytes > this.bytesMax) this.evictOldest();
    this.budget?.enforce();
  }

  private evictOldest(): void {
    const length = this.chunks[this.head]!.length;
    this.bytes -= length;
    this.budget?.released(length, 1);
    this.chunks[this.head] = EMPTY;
    this.head++;
    if (this.isEmpty) {
      this.clear();
      return;
    }
    if (this.head >= COMPACT_AFTER_SLOTS && this.head * 2 >= this.chunks.length) {
      this.baseOffsets.splice(0, this.head);
      this.ids.splice(0, this.head);
      this.endOffsets.splice(0, this.head);
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
  }

  clear(): void {
    this.budget?.released(this.bytes, this.chunkCount);
    this.baseOffsets = [];
    this.ids = [];
    this.endOffsets = [];
    this.chunks = [];
    this.head = 0;
    this.bytes = 0;
  }

  /**
   * Whole batches from the one containing `offset` (KIP-74: at least one, then up to maxBytes),
   * none with lastOffset >= maxOffsetExclusive. Null when the cache does not hold `offset`.
   */
  read(offset: number, maxBytes: number, maxOffsetExclusive: number): Buffer | null {
    const n = this.chunks.length;
    if (this.isEmpty || offset < this.baseOffsets[this.head]! || offset >= this.endOffsets[n - 1]!) return null;
    let lo = this.head;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.baseOffsets[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    let start = 0;
    const first = this.chunks[lo]!;
    while (batchLastOffset(first, start) < offset) start += batchSizeAt(first, start);

    let pieces: Buffer[] | null = null;
    let total = 0;
    for (let i = lo; i < n; i++) {
      const chunk = this.chunks[i]!;
      const from = i === lo ? start : 0;
      let pos = from;
      let stop = false;
      while (pos < chunk.length) {
        const size = batchSizeAt(chunk, pos);
        if (batchLastOffset(chunk, pos) >= maxOffsetExclusive || (total > 0 && total + size > maxBytes)) {
          stop = true;
          break;
        }
        pos += size;
        total += size;
      }
      if (pos > from) {
        const piece = chunk.subarray(from, pos);
        if (pieces === null && (stop || i === n - 1)) return piece; // one chunk: no copy
        (pieces ??= []).push(piece);
      }
      if (stop) break;
    }
    if (pieces === null) return EMPTY;
    return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, total);
  }

  /** Drop every batch at or after `endOffset` (the log's new end, a batch boundary). */
  truncateTo(endOffset: number): void {
    let n = this.chunks.length;
    while (n > this.head && this.baseOffsets[n - 1]! >= endOffset) {
      const length = this.chunks[n - 1]!.length;
      this.bytes -= length;
      this.budget?.released(length, 1);
      n--;
    }
    this.baseOffsets.length = n;
    this.ids.length = n;
    this.endOffsets.length = n;
    this.chunks.length = n;
    if (this.isEmpty) {
      this.clear();
      return;
    }
    const last = n - 1;
    if (this.endOffsets[last]! > endOffset) {
      const chunk = this.chunks[last]!;
      let pos = 0;
      while (pos + BATCH_HEADER_BYTES <= chunk.length && batchLastOffset(chunk, pos) < endOffset) pos += batchSizeAt(chunk, pos);
      this.bytes -= chunk.length - pos;
      this.budget?.released(chunk.length - pos, 0);
      // A view of the kept prefix: the bytes themselves are never written.
      this.chunks[last] = chunk.subarray(0, pos);
      this.endOffsets[last] = endOffset;
      if (pos === 0) this.truncateTo(this.baseOffsets[last]!);
    }
  }

  /** Drop chunks wholly below `offset` (retention moved the log start past them). */
  dropBefore(offset: number): void {
    while (!this.isEmpty && this.endOffsets[this.head]! <= offset) this.evictOldest();
  }
}
