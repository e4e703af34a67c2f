/**
 * The group coordinator's shell without processes: a fake replica manager whose one
 * `__consumer_offsets` partition is an in-memory log (batches stamped with their offsets, so a
 * second coordinator can load what the first wrote), and a fake controller link holding the image
 * the test hands in. The real-process story is in test/integration/groups-coordinator.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../common/clock.js';
import { createLogger } from '../../common/logger.js';
import { waitFor } from '../../common/wait.js';
import type { GroupCoordinatorConfig } from '../../broker/config.js';
import type { ControllerLink } from '../../broker/controller-link.js';
import { GroupCoordinator } from '../../broker/groups/group-coordinator.js';
import { decodeRecord, OFFSETS_TOPIC, type OffsetsRecord } from '../../broker/groups/offsets-topic.js';
import type { BrokerMetrics } from '../../broker/metrics.js';
import type { ReplicaManager } from '../../broker/replica-manager.js';
import type { ProduceRequest, ProduceResponse } from '../../protocol/apis/produce.js';
import { ERRORS, errorNameOf, type ErrorName } from '../../protocol/errors.js';
import type { MetadataImage, TopicImage } from '../../protocol/metadata/image.js';
import { decodeBatchRecords, iterateBatches, OFF_BASE_OFFSET, readBatchHeader, writeInt64 } from '../../protocol/record-batch.js';

const CONFIG: GroupCoordinatorConfig = {
  sessionTimeoutMs: 45_000,
  heartbeatIntervalMs: 1000,
  membersMax: 10,
  subscribedTopicsMax: 100_000,
  groupsMax: 100,
  offsetsTopicPartitions: 1,
  offsetsTopicReplicationFactor: 1,
  commitTimeoutMs: 1000,
  lagRefreshIntervalMs: 60_000,
};

const BROKER = 1;

function topicImage(name: string, topicId: string, partitions: number): TopicImage {
  return {
    name,
    topicId,
    configs: {},
    createdAtMs: 0,
    partitions: Array.from({ length: partitions }, (_, partition) => ({ topic: name, partition, replicas: [BROKER], isr: [BROKER], leader: BROKER, leaderEpoch: 1, partitionEpoch: 1 })),
  };
}

let nextIndex = 1;
function image(...topics: TopicImage[]): MetadataImage {
  const all = [topicImage(OFFSETS_TOPIC, 'offsets-id', 1), ...topics];
  return {
    appliedIndex: nextIndex++,
    brokers: new Map([[BROKER, { brokerId: BROKER, incarnationId: 'i', address: 'ws://127.0.0.1:1', brokerEpoch: 1, fenced: false, registeredAtMs: 0 }]]),
    topics: new Map(all.map((t) => [t.name, t])),
    nextProducerId: 0,
    failovers: [],
  };
}

/** The one __consumer_offsets partition: batches as appended, each stamped with its base offset. */
class MemoryLog {
  readonly batches: Buffer[] = [];
  logStartOffset = 0;
  logEndOffset = 0;
  isClosed = false;
  readonly config = { maxMessageBytes: 1024 * 1024 + 12 };
  get highWatermark(): number {
    return this.logEndOffset;
  }
  append(records: Buffer): void {
    for (const { pos } of iterateBatches(records)) {
      const header = readBatchHeader(records, pos);
      const batch = Buffer.from(records.subarray(pos, pos + header.batchLength + 12));
      writeInt64(batch, OFF_BASE_OFFSET, this.logEndOffset);
      this.logEndOffset += header.lastOffsetDelta + 1;
      this.batches.push(batch);
    }
  }
  read(offset: number): Buffer {
    return Buffer.concat(this.batches.filter((b) => readBatchHeader(b, 0).baseOffset >= offset));
  }
  /** Every record written, decoded, in order. */
  records(): OffsetsRecord[] {
    return this.batches.flatMap((b) => decodeBatchRecords(b, 0).map((r) => decodeRecord(r.key!, r.value)));
  }
}

class Fixture {
  readonly log = new MemoryLog();
  /** The next produce fails with this code before appending anything (e.g. NOT_ENOUGH_REPLICAS). */
  failNext: ErrorName | null = null;
  /** The gauges throw when reset (a bug in the metrics path). */
  gaugesFail = false;
  produces = 0;
  current: MetadataImage;
  readonly coordinator: GroupCoordinator;

  constructor(first: MetadataImage, log?: MemoryLog) {
    if (log !== undefined) for (const b of log.batches) this.log.append(b);
    this.current = first;
    const partition = { key: `${OFFSETS_TOPIC}-0`, isLeader: true, leaderEpoch: 1, minInsyncReplicas: 1, leaderState: { isr: [BROKER] }, log: this.log };
    const replicas = {
      partitions: new Map([[partition.key, partition]]),
      produce: async (request: ProduceRequest): Promise<ProduceResponse> => {
        this.produces++;
        const pd = request.topicData[0]!.partitionData[0]!;
        const out = { index: pd.index, errorCode: 0, errorMessage: null as string | null, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: 0 };
        const batches = [...iterateBatches(pd.records)].map(({ pos }) => readBatchHeader(pd.records, pos).batchLength + 12);
        if (this.failNext === null && batches.some((bytes) => bytes > this.log.config.maxMessageBytes)) this.failNext = 'MESSAGE_TOO_LARGE'; // as Log.appendAsLeader
        if (this.failNext !== null) {
          out.errorCode = ERRORS[this.failNext].code;
          out.errorMessage = `${this.failNext}: injected`;
          this.failNext = null;
        } else {
          out.baseOffset = this.log.logEndOffset;
          this.log.append(Buffer.from(pd.records.buffer, pd.records.byteOffset, pd.records.byteLength));
        }
        return { throttleTimeMs: 0, responses: [{ name: OFFSETS_TOPIC, partitionResponses: [out] }] } as unknown as ProduceResponse;
      },
    };
    const link = { get image() { return fixture.current; }, hasLease: () => true, controllerChannel: null };
    const counter = {
      inc: () => undefined,
      set: () => undefined,
      reset: () => {
        if (this.gaugesFail) throw new Error('gauge broken');
      },
    };
    const metrics = { groupRebalances: counter, groupMembers: counter, groupEpoch: counter, groupLag: counter };
    const fixture = this;
    this.coordinator = new GroupCoordinator(CONFIG, BROKER, new ManualClock(), createLogger('test'), replicas as unknown as ReplicaManager, link as unknown as ControllerLink, metrics as unknown as BrokerMetrics);
  }

  /** Hand in a new image (the broker reconciled to it) and wait until shard 0 is active. */
  async apply(next: MetadataImage): Promise<void> {
    this.current = next;
    this.coordinator.onImage(next);
    await waitFor('shard 0 loaded', () => (this.coordinator.offsetFetch({ groupId: 'probe', topics: [] }).errorCode === 0 ? true : undefined), { timeoutMs: 5000, intervalMs: 1 });
  }

  async adminCommit(groupId: string, topic: string, partition: number, offset: number): Promise<string> {
    const r = await this.coordinator.offsetCommit({ groupId, memberId: '', memberEpoch: -1, topics: [{ name: topic, partitions: [{ partitionIndex: partition, committedOffset: offset, committedLeaderEpoch: -1, committedMetadata: null }] }] } as never);
    return errorNameOf(r.topics[0]!.partitions[0]!.errorCode);
  }

  fetched(groupId: string, topic: string, partition: number): number {
    const r = this.coordinator.offsetFetch({ groupId, topics: [{ name: topic, partitionIndexes: [partition] }] });
    assert.equal(r.errorCode, 0);
    return r.topics[0]!.partitions[0]!.committedOffset;
  }

  async heartbeat(request: Record<string, unknown>): Promise<{ code: string; message: string | null; memberId: string | null; memberEpoch: number }> {
    const r = await this.coordinator.heartbeat({ groupId: 'g', memberId: '', memberEpoch: 0, instanceId: null, rackId: null, clientId: 'c', rebalanceTimeoutMs: -1, subscribedTopicNames: null, serverAssignor: null, ownedPartitions: null, ...request } as never);
    return { code: errorNameOf(r.errorCode), message: r.errorMessage, memberId: r.memberId, memberEpoch: r.memberEpoch };
  }

  async close(): Promise<void> {
    await this.coordinator.close();
  }
}

test('a deleted topic takes its committed offsets with it: fetch answers -1 and tombstones are written', async () => {
  const f = new Fixture(image(topicImage('T', 'id-1', 2), topicImage('U', 'id-u', 1)));
  await f.apply(f.current);
  assert.equal(await f.adminCommit('G', 'T', 0, 5000), 'NONE');
  assert.equal(await f.adminCommit('G', 'U', 0, 7), 'NONE');
  assert.equal(await f.adminCommit('H', 'T', 1, 9), 'NONE');
  assert.equal(f.fetched('G', 'T', 0), 5000);

  await f.apply(image(topicImage('U', 'id-u', 1))); // T deleted
  assert.equal(f.fetched('G', 'T', 0), -1);
  assert.equal(f.fetched('H', 'T', 1), -1);
  assert.equal(f.fetched('G', 'U', 0), 7, 'offsets of other topics stay');
  await waitFor('tombstones written', () => {
    const recs = f.log.records();
    const tombstones = recs.filter((r) => r.type === 'offset' && r.topic === 'T' && r.value === null).map((r) => `${r.groupId}/${r.type === 'offset' ? r.partition : ''}`);
    return tombstones.length === 2 ? tombstones.sort() : undefined;
  }, { timeoutMs: 5000, intervalMs: 1 });
  // H had nothing else: the group itself is gone.
  assert.deepEqual(f.coordinator.listGroups({ statesFilter: [] }).groups.map((g) => g.groupId), ['G']);

  // A new coordinator loading this log has no offsets for T either.
  const g = new Fixture(image(topicImage('T', 'id-2', 2), topicImage('U', 'id-u', 1)), f.log);
  await g.apply(g.current);
  assert.equal(g.fetched('G', 'T', 0), -1);
  assert.equal(g.fetched('G', 'U', 0), 7);
  await f.close();
  await g.close();
});

test('a topic deleted and recreated between two images (new topic id) loses its offsets', async () => {
  const f = new Fixture(image(topicImage('T', 'id-1', 1)));
  await f.apply(f.current);
  assert.equal(await f.adminCommit('G', 'T', 0, 5000), 'NONE');
  await f.apply(image(topicImage('T', 'id-2', 1)));
  assert.equal(f.fetched('G', 'T', 0), -1, 'the recreated topic must be read from its start, not from 5000');
  // An image that changes nothing about T (same id) keeps a new commit.
  assert.equal(await f.adminCommit('G', 'T', 0, 10), 'NONE');
  await f.apply(image(topicImage('T', 'id-2', 1)));
  assert.equal(f.fetched('G', 'T', 0), 10);
  await f.close();
});

test('a coordinator loading a shard drops offsets of topics that are gone from its image', async () => {
  const f = new Fixture(image(topicImage('T', 'id-1', 1), topicImage('U', 'id-u', 1)));
  await f.apply(f.current);
  assert.equal(await f.adminCommit('G', 'T', 0, 5000), 'NONE');
  assert.equal(await f.adminCommit('G', 'U', 0, 3), 'NONE');
  // T is deleted while no coordinator watches this shard: the next one loads the old records.
  const g = new Fixture(image(topicImage('U', 'id-u', 1)), f.log);
  await g.apply(g.current);
  assert.equal(g.fetched('G', 'T', 0), -1);
  assert.equal(g.fetched('G', 'U', 0), 3);
  await waitFor('tombstone written by the loader', () => (g.log.records().some((r) => r.type === 'offset' && r.topic === 'T' && r.value === null) ? true : undefined), { timeoutMs: 5000, intervalMs: 1 });
  await f.close();
  await g.close();
});

test('the per-broker groups limit is not retriable (a client must not retry it forever)', async () => {
  const f = new Fixture(image(topicImage('T', 'id-1', 1)));
  await f.apply(f.current);
  for (let i = 0; i < CONFIG.groupsMax; i++) assert.equal(await f.adminCommit(`g${i}`, 'T', 0, 1), 'NONE');
  const code = await f.adminCommit('one-too-many', 'T', 0, 1);
  assert.equal(code, 'POLICY_VIOLATION');
  assert.equal(ERRORS.POLICY_VIOLATION.retriable, false);
  await f.close();
});

test('a subscription whose member record would not fit max.message.bytes is INVALID_REQUEST, written nowhere, and the shard keeps serving', async () => {
  const f = new Fixture(image(topicImage('T', 'id-1', 1)));
  await f.apply(f.current);
  assert.equal(await f.adminCommit('other', 'T', 0, 42), 'NONE');
  const produces = f.produces;
  const huge = Array.from({ length: 10_000 }, (_, i) => `${'t'.repeat(100)}-${i}`);
  const join = await f.heartbeat({ groupId: 'g', subscribedTopicNames: huge });
  assert.equal(join.code, 'INVALID_REQUEST', String(join.message));
  assert.match(join.message ?? '', /max\.message\.bytes/);
  assert.equal(f.produces, produces, 'nothing was sent to the log');
  // No reload: the other group is served at once, and no empty group g was left behind.
  assert.equal(f.fetched('other', 'T', 0), 42);
  assert.deepEqual(f.coordinator.listGroups({ statesFilter: [] }).groups.map((g) => g.groupId), ['other']);

  // A member of g with a sane subscription that then asks for the huge one is refused the same way
  // and keeps its place.
  const ok = await f.heartbeat({ groupId: 'g', subscribedTopicNames: ['T'] });
  assert.equal(ok.code, 'NONE');
  const grow = await f.heartbeat({ groupId: 'g', memberId: ok.memberId, memberEpoch: ok.memberEpoch, subscribedTopicNames: huge });
  assert.equal(grow.code, 'INVALID_REQUEST');
  const again = await f.heartbeat({ groupId: 'g', memberId: ok.memberId, memberEpoch: ok.memberEpoch, subscribedTopicNames: ['T'] });
  assert.equal(again.code, 'NONE');
  assert.equal(again.memberEpoch, ok.memberEpoch);

  // Names that are not topic names are refused too.
  const bad = await f.heartbeat({ groupId: 'g2', subscribedTopicNames: ['a b'] });
  assert.equal(bad.code, 'INVALID_REQUEST');
  assert.match(bad.message ?? '', /subscribedTopicNames\[0\]/);
  await f.close();
});

test('a write refused before anything was appended (NOT_ENOUGH_REPLICAS) rolls back only its group; the shard keeps serving', async () => {
  const f = new Fixture(image(topicImage('T', 'id-1', 2)));
  await f.apply(f.current);
  assert.equal(await f.adminCommit('G', 'T', 0, 5000), 'NONE');
  assert.equal(await f.adminCommit('other', 'T', 0, 42), 'NONE');

  f.failNext = 'NOT_ENOUGH_REPLICAS';
  assert.equal(await f.adminCommit('G', 'T', 0, 6000), 'COORDINATOR_NOT_AVAILABLE');
  // Not reloading (that would answer COORDINATOR_LOAD_IN_PROGRESS here), and G is as the log has it.
  assert.equal(f.fetched('G', 'T', 0), 5000);
  assert.equal(f.fetched('other', 'T', 0), 42);
  assert.equal(await f.adminCommit('G', 'T', 0, 6000), 'NONE', 'the retry succeeds');
  assert.equal(f.fetched('G', 'T', 0), 6000);

  // A refused join leaves no member (and no group) behind.
  f.failNext = 'NOT_ENOUGH_REPLICAS';
  const join = await f.heartbeat({ groupId: 'fresh', subscribedTopicNames: ['T'] });
  assert.equal(join.code, 'COORDINATOR_NOT_AVAILABLE');
  assert.deepEqual(f.coordinator.listGroups({ statesFilter: [] }).groups.map((g) => g.groupId), ['G', 'other']);

  // A member whose rebalance write is refused keeps the epoch the log has for it.
  const a = await f.heartbeat({ groupId: 'fresh', subscribedTopicNames: ['T'] });
  assert.equal(a.code, 'NONE');
  f.failNext = 'NOT_ENOUGH_REPLICAS';
  const b = await f.heartbeat({ groupId: 'fresh', subscribedTopicNames: ['T'] });
  assert.equal(b.code, 'COORDINATOR_NOT_AVAILABLE');
  const desc = await f.coordinator.describe({ groupIds: ['fresh'] } as never);
  assert.deepEqual(desc.groups[0]!.members.map((m) => m.memberId), [a.memberId]);
  assert.equal(desc.groups[0]!.groupEpoch, 1);

  // What the log holds agrees with memory: a new coordinator loading it sees the same.
  const g = new Fixture(f.current, f.log);
  await g.apply(g.current);
  assert.equal(g.fetched('G', 'T', 0), 6000);
  const reloaded = await g.coordinator.describe({ groupIds: ['fresh'] } as never);
  assert.deepEqual(reloaded.groups[0]!.members.map((m) => m.memberId), [a.memberId]);
  await f.close();
  await g.close();
});

test('the lag timer\'s refresh never rejects: a failure is logged, not an unhandled rejection that would end the broker', async () => {
  const f = new Fixture(image(topicImage('T', 'id-1', 1)));
  await f.apply(f.current);
  assert.equal(await f.adminCommit('G', 'T', 0, 1), 'NONE');
  f.gaugesFail = true;
  await assert.rejects(f.coordinator.refreshGauges(), /gauge broken/);
  await assert.doesNotReject(f.coordinator.refreshGaugesLogged());
  await f.close();
});
