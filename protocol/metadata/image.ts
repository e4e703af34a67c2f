/**
 * The metadata image: the cluster as the metadata log says it is at some applied index, and the
 * pure fold `applyRecord(image, record, index)` that builds it. Controllers and brokers run the
 * same fold over the same log, so they agree on leaders, epochs and ISRs at every index.
 *
 * Images are immutable: applyRecord returns a new image that shares every part it did not
 * change, so a reader holding an old image (a request in flight) never sees it move.
 */
import type { LeaderChangeTrigger, MetadataRecord } from './records.js';

export interface BrokerImage {
  readonly brokerId: number;
  readonly incarnationId: string;
  readonly address: string;
  /** The metadata log index of its registration: unique, increasing per registration. */
  readonly brokerEpoch: number;
  readonly fenced: boolean;
  readonly registeredAtMs: number;
}

export interface PartitionImage {
  readonly topic: string;
  readonly partition: number;
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
  /** -1 when the partition is offline */
  readonly leader: number;
  /** Bumped on every leader change; fences requests from or to an older leader. */
  readonly leaderEpoch: number;
  /** Bumped on every change (leader or ISR); AlterPartition must name the current one. */
  readonly partitionEpoch: number;
}

export interface TopicImage {
  readonly name: string;
  readonly topicId: string;
  readonly configs: Readonly<Record<string, string>>;
  readonly partitions: readonly PartitionImage[];
  readonly createdAtMs: number;
}

export interface FailoverEntry {
  /** The metadata log index of the change: orders the failover log. */
  readonly index: number;
  readonly timeMs: number;
  readonly topic: string;
  readonly partition: number;
  readonly oldLeader: number;
  readonly newLeader: number;
  readonly leaderEpoch: number;
  readonly trigger: LeaderChangeTrigger;
  readonly lagAtPromotion: number;
  readonly recordsLost: number;
}

export interface MetadataImage {
  /** Index of the last record applied (0 = empty). */
  readonly appliedIndex: number;
  readonly brokers: ReadonlyMap<number, BrokerImage>;
  readonly topics: ReadonlyMap<string, TopicImage>;
  readonly nextProducerId: number;
  /** The most recent leadership changes, oldest first, at most FAILOVER_LOG_ENTRIES_MAX. */
  readonly failovers: readonly FailoverEntry[];
}

/** Bound on the failover log kept in the image; SQLite keeps the full history. */
export const FAILOVER_LOG_ENTRIES_MAX = 10_000;

export const EMPTY_IMAGE: MetadataImage = Object.freeze({
  appliedIndex: 0,
  brokers: new Map(),
  topics: new Map(),
  nextProducerId: 1,
  failovers: [],
});

/** Thrown when a record contradicts the image: a bug in whoever proposed it, never the world. */
export class MetadataApplyError extends Error {
  constructor(index: number, record: MetadataRecord, why: string) {
    super(`metadata record ${index} (${record.type}) cannot apply: ${why}`);
    this.name = 'MetadataApplyError';
  }
}

function withBroker(image: MetadataImage, broker: BrokerImage): ReadonlyMap<number, BrokerImage> {
  const brokers = new Map(image.brokers);
  brokers.set(broker.brokerId, broker);
  return brokers;
}

function pushFailover(failovers: readonly FailoverEntry[], entry: FailoverEntry): readonly FailoverEntry[] {
  const next = failovers.length >= FAILOVER_LOG_ENTRIES_MAX ? failovers.slice(failovers.length - FAILOVER_LOG_ENTRIES_MAX + 1) : failovers.slice();
  next.push(entry);
  return next;
}

/**
 * Fold one record into the image. `index` is the record's position in the metadata log (Raft
 * index); it becomes the broker epoch of a registration and orders the failover log.
 */
export function applyRecord(image: MetadataImage, record: MetadataRecord, index: number): MetadataImage {
  if (index <= image.appliedIndex) throw new MetadataApplyError(index, record, `already applied up to ${image.appliedIndex}`);
  const base = { ...image, appliedIndex: index };
  switch (record.type) {
    case 'Noop':
      return base;

    case 'RegisterBroker': {
      // A (re-)registration starts fenced: the broker is unfenced once it has caught up with the
      // metadata log and heartbeats, so it never leads with a stale view.
      const broker: BrokerImage = {
        brokerId: record.brokerId,
        incarnationId: record.incarnationId,
        address: record.address,
        brokerEpoch: index,
        fenced: true,
        registeredAtMs: record.timeMs,
      };
      return { ...base, brokers: withBroker(image, broker) };
    }

    case 'FenceBroker':
    case 'UnfenceBroker': {
      const broker = image.brokers.get(record.brokerId);
      if (broker === undefined) throw new MetadataApplyError(index, record, `unknown broker ${record.brokerId}`);
      // A record about an older registration is a no-op: the broker has since re-registered.
      if (broker.brokerEpoch !== record.brokerEpoch) return base;
      return { ...base, brokers: withBroker(image, { ...broker, fenced: record.type === 'FenceBroker' }) };
    }

    case 'CreateTopic': {
      if (image.topics.has(record.name)) throw new MetadataApplyError(index, record, `topic ${record.name} exists`);
      const { assignments, leaders, isrs } = record;
      if (assignments.length === 0 || leaders.length !== assignments.length || isrs.length !== assignments.length) {
        throw new MetadataApplyError(index, record, 'assignments, leaders and isrs must have one entry per partition');
      }
      let failovers = image.failovers;
      const partitions: PartitionImage[] = assignments.map((replicas, partition) => {
        const leader = leaders[partition]!;
        if (leader !== -1) {
          failovers = pushFailover(failovers, {
            index, timeMs: record.timeMs, topic: record.name, partition, oldLeader: -1, newLeader: leader,
            leaderEpoch: 0, trigger: 'created', lagAtPromotion: 0, recordsLost: 0,
          });
        }
        return { topic: record.name, partition, replicas: replicas.slice(), isr: isrs[partition]!.slice(), leader, leaderEpoch: 0, partitionEpoch: 0 };
      });
      const topics = new Map(image.topics);
      topics.set(record.name, { name: record.name, topicId: record.topicId, configs: { ...record.configs }, partitions, createdAtMs: record.timeMs });
      return { ...base, topics, failovers };
    }

    case 'DeleteTopic': {
      if (!image.topics.has(record.name)) throw new MetadataApplyError(index, record, `no topic ${record.name}`);
      const topics = new Map(image.topics);
      topics.delete(record.name);
      return { ...base, topics };
    }

    case 'AlterTopicConfigs': {
      const topic = image.topics.get(record.name);
      if (topic === undefined) throw new MetadataApplyError(index, record, `no topic ${record.name}`);
      const configs: Record<string, string> = { ...topic.configs };
      for (const [key, value] of Object.entries(record.configs)) {
        if (value === null) delete configs[key];
        else configs[key] = value;
      }
      const topics = new Map(image.topics);
      topics.set(record.name, { ...topic, configs });
      return { ...base, topics };
    }

    case 'ChangePartition': {
      const topic = image.topics.get(record.topic);
      const current = topic?.partitions[record.partition];
      if (topic === undefined || current === undefined) {
        throw new MetadataApplyError(index, record, `no partition ${record.topic}-${record.partition}`);
      }
      const leaderChanged = record.leader !== undefined && record.leader !== current.leader;
      const next: PartitionImage = {
        ...current,
        leader: record.leader ?? current.leader,
        isr: record.isr !== undefined ? record.isr.slice() : current.isr,
        leaderEpoch: leaderChanged ? current.leaderEpoch + 1 : current.leaderEpoch,
        partitionEpoch: current.partitionEpoch + 1,
      };
      const partitions = topic.partitions.slice();
      partitions[record.partition] = next;
      const topics = new Map(image.topics);
      topics.set(record.topic, { ...topic, partitions });
      let failovers = image.failovers;
      if (leaderChanged) {
        failovers = pushFailover(failovers, {
          index, timeMs: record.timeMs, topic: record.topic, partition: record.partition,
          oldLeader: current.leader, newLeader: next.leader, leaderEpoch: next.leaderEpoch,
          trigger: record.trigger ?? (next.leader === -1 ? 'offline' : 'fenced'),
          lagAtPromotion: record.lagAtPromotion ?? 0, recordsLost: record.recordsLost ?? 0,
        });
      }
      return { ...base, topics, failovers };
    }

    case 'AllocateProducerIds': {
      if (!Number.isSafeInteger(record.count) || record.count < 1) throw new MetadataApplyError(index, record, `count ${record.count} must be a positive integer`);
      if (record.firstProducerId !== image.nextProducerId) {
        throw new MetadataApplyError(index, record, `block starts at ${record.firstProducerId}, next free is ${image.nextProducerId}`);
      }
      return { ...base, nextProducerId: record.firstProducerId + record.count };
    }
  }
}

/**
 * Fold a committed record, or skip it when it contradicts the image. A committed record cannot be
 * taken back, and every node folds the same log the same way, so each node skips the same record
 * and they stay identical; throwing instead would stop every controller at once. Validation before
 * proposing makes this a should-never-happen path; `onSkip` logs it loudly.
 */
export function applyRecordOrSkip(image: MetadataImage, record: MetadataRecord, index: number, onSkip: (error: MetadataApplyError) => void): MetadataImage {
  if (index <= image.appliedIndex) throw new MetadataApplyError(index, record, `already applied up to ${image.appliedIndex}`);
  try {
    return applyRecord(image, record, index);
  } catch (error) {
    if (!(error instanceof MetadataApplyError)) throw error;
    onSkip(error);
    return { ...image, appliedIndex: index };
  }
}

/** Fold a run of records starting at `firstIndex`. */
export function applyRecords(image: MetadataImage, records: readonly MetadataRecord[], firstIndex: number): MetadataImage {
  let out = image;
  for (let i = 0; i < records.length; i++) out = applyRecord(out, records[i]!, firstIndex + i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Snapshots: the image as plain data (msgpack/JSON friendly), for Raft snapshots and for brokers
// that join after the log was compacted.

export interface ImageSnapshot {
  appliedIndex: number;
  brokers: BrokerImage[];
  topics: TopicImage[];
  nextProducerId: number;
  failovers: FailoverEntry[];
}

export function snapshotOf(image: MetadataImage): ImageSnapshot {
  return {
    appliedIndex: image.appliedIndex,
    brokers: [...image.brokers.values()],
    topics: [...image.topics.values()],
    nextProducerId: image.nextProducerId,
    failovers: image.failovers.slice(),
  };
}

export function imageFromSnapshot(snapshot: ImageSnapshot): MetadataImage {
  return {
    appliedIndex: snapshot.appliedIndex,
    brokers: new Map(snapshot.brokers.map((b) => [b.brokerId, b])),
    topics: new Map(snapshot.topics.map((t) => [t.name, t])),
    nextProducerId: snapshot.nextProducerId,
    failovers: snapshot.failovers.slice(),
  };
}

// ---------------------------------------------------------------------------------------------
// Queries every reader needs.

export function partitionOf(image: MetadataImage, topic: string, partition: number): PartitionImage | undefined {
  return image.topics.get(topic)?.partitions[partition];
}

export function liveBrokerIds(image: MetadataImage): number[] {
  const out: number[] = [];
  for (const b of image.brokers.values()) if (!b.fenced) out.push(b.brokerId);
  return out.sort((a, b) => a - b);
}
