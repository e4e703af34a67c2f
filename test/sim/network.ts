/**
 * The simulated network: every message gets a random delay (which also reorders), may be lost
 * or duplicated, and is dropped when a partition blocks its link at send or delivery time.
 * Everything is drawn from one seeded Random, so a run replays exactly.
 */
import type { Random } from '../../controller/raft/random.js';
import type { NodeId, RaftMessage } from '../../controller/raft/types.js';

export interface NetworkFaults {
  /** Probability that a message is lost. */
  lossRate: number;
  /** Probability that a message is delivered twice (the copy with its own delay). */
  duplicateRate: number;
  /** Delays are drawn from [1, delayTicksMax]; a longDelayRate share gets up to 4x that. */
  delayTicksMax: number;
  longDelayRate: number;
}

export const HEALTHY_NETWORK: NetworkFaults = Object.freeze({ lossRate: 0, duplicateRate: 0, delayTicksMax: 1, longDelayRate: 0 });

export interface InFlightMessage {
  readonly deliverAtTick: number;
  /** Send order; breaks ties so delivery order never depends on heap internals. */
  readonly sequence: number;
  readonly message: RaftMessage;
}

/** A binary min-heap on (deliverAtTick, sequence). */
class DeliveryQueue {
  private readonly heap: InFlightMessage[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(item: InFlightMessage): void {
    const heap = this.heap;
    heap.push(item);
    let child = heap.length - 1;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (!before(heap[child]!, heap[parent]!)) break;
      [heap[child], heap[parent]] = [heap[parent]!, heap[child]!];
      child = parent;
    }
  }

  peek(): InFlightMessage | undefined {
    return this.heap[0];
  }

  pop(): InFlightMessage | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      let parent = 0;
      for (;;) {
        const left = 2 * parent + 1;
        const right = left + 1;
        let smallest = parent;
        if (left < heap.length && before(heap[left]!, heap[smallest]!)) smallest = left;
        if (right < heap.length && before(heap[right]!, heap[smallest]!)) smallest = right;
        if (smallest === parent) break;
        [heap[parent], heap[smallest]] = [heap[smallest]!, heap[parent]!];
        parent = smallest;
      }
    }
    return top;
  }
}

function before(a: InFlightMessage, b: InFlightMessage): boolean {
  return a.deliverAtTick < b.deliverAtTick || (a.deliverAtTick === b.deliverAtTick && a.sequence < b.sequence);
}

export class SimNetwork {
  private readonly queue = new DeliveryQueue();
  private readonly blockedLinks = new Set<number>();
  private nextSequence = 0;
  faults: NetworkFaults;
  sentCount = 0;
  droppedCount = 0;
  duplicatedCount = 0;

  constructor(
    private readonly random: Random,
    faults: NetworkFaults,
  ) {
    this.faults = faults;
  }

  get inFlightCount(): number {
    return this.queue.size;
  }

  send(message: RaftMessage, nowTick: number): void {
    this.sentCount++;
    if (this.isBlocked(message.from, message.to) || this.random.nextFloat() < this.faults.lossRate) {
      this.droppedCount++;
      return;
    }
    this.enqueue(message, nowTick);
    if (this.faults.duplicateRate > 0 && this.random.nextFloat() < this.faults.duplicateRate) {
      this.duplicatedCount++;
      this.enqueue(message, nowTick);
    }
  }

  /** The next message due at or before nowTick whose link is open; blocked ones are dropped. */
  nextDue(nowTick: number): RaftMessage | undefined {
    for (;;) {
      const head = this.queue.peek();
      if (head === undefined || head.deliverAtTick > nowTick) return undefined;
      this.queue.pop();
      if (this.isBlocked(head.message.from, head.message.to)) {
        this.droppedCount++;
        continue;
      }
      return head.message;
    }
  }

  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blockedLinks.size > 0 && this.blockedLinks.has(linkKey(from, to));
  }

  blockLink(from: NodeId, to: NodeId): void {
    this.blockedLinks.add(linkKey(from, to));
  }

  /** Symmetric partition: nothing crosses between the two sides. */
  partition(sideA: readonly NodeId[], sideB: readonly NodeId[]): void {
    for (const a of sideA) {
      for (const b of sideB) {
        this.blockLink(a, b);
        this.blockLink(b, a);
      }
    }
  }

  healPartitions(): void {
    this.blockedLinks.clear();
  }

  describeBlockedLinks(): string {
    return [...this.blockedLinks].sort((a, b) => a - b).map((key) => `${Math.floor(key / 1024)}->${key % 1024}`).join(',');
  }

  private enqueue(message: RaftMessage, nowTick: number): void {
    let delayTicks = 1 + this.random.nextInt(this.faults.delayTicksMax);
    if (this.faults.longDelayRate > 0 && this.random.nextFloat() < this.faults.longDelayRate) {
      delayTicks += this.random.nextInt(4 * this.faults.delayTicksMax);
    }
    this.queue.push({ deliverAtTick: nowTick + delayTicks, sequence: this.nextSequence++, message });
  }
}

function linkKey(from: NodeId, to: NodeId): number {
  return from * 1024 + to;
}
