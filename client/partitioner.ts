/**
 * Choosing a partition for a record, the way Kafka's Java client does, so a key lands on the
 * partition Kafka users expect:
 *
 *   explicit `partition`     → that partition
 *   key (not null)           → toPositive(murmur2(keyBytes)) % numPartitions   (BuiltInPartitioner)
 *   no key                   → the topic's sticky partition (KIP-480): every keyless record goes
 *                              to one partition until a batch for it is sent, then it switches.
 *
 * `murmur2` is a line-for-line port of org.apache.kafka.common.utils.Utils.murmur2, with Math.imul
 * for Java's wrapping int multiply and `>>>` for Java's unsigned shift.
 */

/** Kafka's `Utils.murmur2`: a signed 32-bit hash of the bytes. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  const seed = 0x9747b28c;
  const m = 0x5bd1e995;
  const r = 24;
  let h = (seed ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = length & ~3;
  // Java's switch falls through 3 → 2 → 1; spelled out as ifs (noFallthroughCasesInSwitch).
  const rest = length % 4;
  if (rest >= 3) h ^= data[tail + 2]! << 16;
  if (rest >= 2) h ^= data[tail + 1]! << 8;
  if (rest >= 1) {
    h ^= data[tail]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's `Utils.toPositive`: clears the sign bit (not Math.abs, which differs for MIN_VALUE). */
export function toPositive(n: number): number {
  return n & 0x7fffffff;
}

/** The partition Kafka's default partitioner gives a keyed record. */
export function partitionForKey(key: Uint8Array, numPartitions: number): number {
  return toPositive(murmur2(key)) % numPartitions;
}

/** A source of randomness, injectable so tests are deterministic. Returns an integer in [0, n). */
export type RandomInt = (n: number) => number;

export const mathRandomInt: RandomInt = (n) => Math.floor(Math.random() * n);

/**
 * Sticky partition per topic (KIP-480). `current` picks one lazily; `next` is called when a batch
 * of the sticky partition is closed, and moves to a different partition (when there are several).
 */
export class StickyPartitioner {
  private readonly sticky = new Map<string, number>();

  constructor(private readonly random: RandomInt = mathRandomInt) {}

  current(topic: string, numPartitions: number): number {
    const p = this.sticky.get(topic);
    if (p !== undefined && p < numPartitions) return p;
    const chosen = this.random(numPartitions);
    this.sticky.set(topic, chosen);
    return chosen;
  }

  /** A batch of `partition` was closed: if it was the sticky one, stick to another. */
  onBatchClosed(topic: string, partition: number, numPartitions: number): void {
    if (this.sticky.get(topic) !== partition) return;
    if (numPartitions <= 1) return;
    let next = this.random(numPartitions - 1);
    if (next >= partition) next++; // uniform over the other partitions
    this.sticky.set(topic, next);
  }
}
