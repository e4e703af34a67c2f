/**
 * The coordinator's assignor (KIP-848: the server computes the target assignment). Pure and
 * deterministic: the same members, subscriptions, partition counts and current target always give
 * the same new target, whatever order the inputs came in.
 *
 * What it guarantees (test/groups/assignor.test.ts checks each with fast-check):
 *   1. every partition of every subscribed topic goes to exactly one member subscribed to it;
 *   2. balance as far as subscriptions allow: whenever member A has at least two partitions more
 *      than member B, none of A's partitions is of a topic B subscribes to (so members with the
 *      same subscriptions differ by at most one);
 *   3. stickiness: a partition stays with its current owner unless it must move (its topic or the
 *      owner's subscription went away) or the move is needed for balance; and with identical
 *      subscriptions no member both loses and gains partitions.
 *
 * How, in three steps:
 *   keep     — each member keeps the partitions of its current target that still exist and that
 *              it still subscribes to;
 *   place    — every other partition goes to the least-loaded member subscribed to its topic
 *              (ties: fewest of that topic, then member id);
 *   balance  — while some member has ≥ 2 more partitions than another that could take one of
 *              them, move one from the most-loaded donor to the least-loaded receiver. Each move
 *              lowers the sum of squared counts, so the loop ends; it is also capped.
 */
import { compareKeys, topicOf, tpKey, type TopicPartitionKey } from './topic-partitions.js';

export interface AssignorMember {
  readonly memberId: string;
  readonly subscribedTopics: readonly string[];
}

export interface AssignorInput {
  readonly members: readonly AssignorMember[];
  /** Partition count per topic; a subscribed topic missing here (not created yet) has none. */
  readonly partitionCounts: ReadonlyMap<string, number>;
  /** The current target: member id → its partitions. Members not in `members` are ignored. */
  readonly currentTarget: ReadonlyMap<string, ReadonlySet<TopicPartitionKey>>;
}

interface Slot {
  readonly memberId: string;
  readonly subscribed: ReadonlySet<string>;
  readonly owned: Set<TopicPartitionKey>;
  /** Partitions owned per topic, for tie-breaking and finding movable partitions. */
  readonly perTopic: Map<string, number>;
}

function add(slot: Slot, key: TopicPartitionKey): void {
  slot.owned.add(key);
  const topic = topicOf(key);
  slot.perTopic.set(topic, (slot.perTopic.get(topic) ?? 0) + 1);
}

function remove(slot: Slot, key: TopicPartitionKey): void {
  slot.owned.delete(key);
  const topic = topicOf(key);
  const n = (slot.perTopic.get(topic) ?? 1) - 1;
  if (n === 0) slot.perTopic.delete(topic);
  else slot.perTopic.set(topic, n);
}

function byLoad(a: Slot, b: Slot): number {
  return a.owned.size - b.owned.size || (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0);
}

/** The new target assignment: member id → partitions (every member present, maybe empty). */
export function computeTargetAssignment(input: AssignorInput): Map<string, Set<TopicPartitionKey>> {
  const slots = [...input.members]
    .sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0))
    .map((m): Slot => ({ memberId: m.memberId, subscribed: new Set(m.subscribedTopics), owned: new Set(), perTopic: new Map() }));

  // Every partition that must be assigned, and who subscribes to each topic.
  const subscribers = new Map<string, Slot[]>();
  for (const slot of slots) {
    for (const topic of slot.subscribed) {
      if ((input.partitionCounts.get(topic) ?? 0) <= 0) continue;
      let list = subscribers.get(topic);
      if (list === undefined) subscribers.set(topic, (list = []));
      list.push(slot);
    }
  }

  // keep
  const taken = new Set<TopicPartitionKey>();
  for (const slot of slots) {
    const current = [...(input.currentTarget.get(slot.memberId) ?? [])].sort(compareKeys);
    for (const key of current) {
      const topic = topicOf(key);
      const partition = Number(key.slice(topic.length + 1));
      if (!slot.subscribed.has(topic) || partition >= (input.partitionCounts.get(topic) ?? 0) || taken.has(key)) continue;
      taken.add(key);
      add(slot, key);
    }
  }

  // place
  for (const topic of [...subscribers.keys()].sort()) {
    const candidates = subscribers.get(topic)!;
    const count = input.partitionCounts.get(topic)!;
    for (let p = 0; p < count; p++) {
      const key = tpKey(topic, p);
      if (taken.has(key)) continue;
      let best = candidates[0]!;
      for (let i = 1; i < candidates.length; i++) {
        const c = candidates[i]!;
        const d = c.owned.size - best.owned.size || (c.perTopic.get(topic) ?? 0) - (best.perTopic.get(topic) ?? 0);
        if (d < 0) best = c; // candidates are in member id order, so ties keep the lower id
      }
      taken.add(key);
      add(best, key);
    }
  }

  // balance
  const movesMax = taken.size * Math.max(1, slots.length);
  for (let moves = 0; moves < movesMax; moves++) {
    if (!moveOne(slots)) break;
  }

  const out = new Map<string, Set<TopicPartitionKey>>();
  for (const slot of slots) out.set(slot.memberId, slot.owned);
  return out;
}

/** One balancing move from the most-loaded possible donor to the least-loaded receiver. */
function moveOne(slots: Slot[]): boolean {
  const ordered = [...slots].sort(byLoad);
  for (const receiver of ordered) {
    for (let d = ordered.length - 1; d >= 0; d--) {
      const donor = ordered[d]!;
      if (donor.owned.size <= receiver.owned.size + 1) break;
      // The donor's topic the receiver subscribes to where the donor holds the most (then by name).
      let topic: string | undefined;
      for (const [t, n] of donor.perTopic) {
        if (!receiver.subscribed.has(t)) continue;
        if (topic === undefined || n > donor.perTopic.get(topic)! || (n === donor.perTopic.get(topic)! && t < topic)) topic = t;
      }
      if (topic === undefined) continue;
      // Its highest-numbered partition of that topic, so low partitions stay put.
      let key: TopicPartitionKey | undefined;
      let high = -1;
      for (const k of donor.owned) {
        if (topicOf(k) !== topic) continue;
        const p = Number(k.slice(topic.length + 1));
        if (p > high) {
          high = p;
          key = k;
        }
      }
      remove(donor, key!);
      add(receiver, key!);
      return true;
    }
  }
  return false;
}
