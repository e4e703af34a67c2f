import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EMPTY_IMAGE,
  FAILOVER_LOG_ENTRIES_MAX,
  MetadataApplyError,
  applyRecord,
  applyRecords,
  imageFromSnapshot,
  liveBrokerIds,
  partitionOf,
  snapshotOf,
  type MetadataImage,
} from '../../protocol/metadata/image.js';
import type { ChangePartitionRecord, CreateTopicRecord, MetadataRecord } from '../../protocol/metadata/records.js';

const T0 = 1_700_000_000_000;

/** Freeze every object, array and (by shadowing their mutators) every Map reachable from `value`. */
function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  if (value instanceof Map) {
    for (const [k, v] of value) {
      deepFreeze(k);
      deepFreeze(v);
    }
    const refuse = () => {
      throw new TypeError('frozen map mutated');
    };
    Object.defineProperty(value, 'set', { value: refuse });
    Object.defineProperty(value, 'delete', { value: refuse });
    Object.defineProperty(value, 'clear', { value: refuse });
  } else {
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return Object.freeze(value);
}

class Log {
  image: MetadataImage = EMPTY_IMAGE;
  index = 0;
  apply(record: MetadataRecord): MetadataImage {
    this.index++;
    this.image = applyRecord(this.image, record, this.index);
    return this.image;
  }
}

function register(brokerId: number, incarnationId = `inc-${brokerId}`): MetadataRecord {
  return { type: 'RegisterBroker', brokerId, incarnationId, address: `ws://127.0.0.1:${9090 + brokerId}`, timeMs: T0 };
}

function createTopic(name: string, assignments: number[][], leaders?: number[], isrs?: number[][]): CreateTopicRecord {
  return {
    type: 'CreateTopic',
    name,
    topicId: `id-${name}`,
    configs: { 'retention.ms': '1000' },
    assignments,
    leaders: leaders ?? assignments.map((r) => r[0]!),
    isrs: isrs ?? assignments.map((r) => r.slice()),
    timeMs: T0 + 1,
  };
}

/** Three registered, unfenced brokers and topic "orders" with 3 partitions, RF 3. */
function cluster(): Log {
  const log = new Log();
  for (const id of [1, 2, 3]) log.apply(register(id));
  for (const id of [1, 2, 3]) {
    const epoch = log.image.brokers.get(id)!.brokerEpoch;
    log.apply({ type: 'UnfenceBroker', brokerId: id, brokerEpoch: epoch, timeMs: T0 });
  }
  log.apply(createTopic('orders', [[1, 2, 3], [2, 3, 1], [3, 1, 2]]));
  return log;
}

function change(topic: string, partition: number, fields: Partial<ChangePartitionRecord>): ChangePartitionRecord {
  return { type: 'ChangePartition', topic, partition, timeMs: T0 + 50, ...fields };
}

test('registration takes the log index as broker epoch and starts fenced', () => {
  const log = new Log();
  log.apply({ type: 'Noop' });
  log.apply({ type: 'Noop' });
  const image = log.apply(register(7));
  const b = image.brokers.get(7)!;
  assert.equal(b.brokerEpoch, 3);
  assert.equal(b.fenced, true);
  assert.equal(b.address, 'ws://127.0.0.1:9097');
  assert.equal(b.registeredAtMs, T0);
  assert.deepEqual(liveBrokerIds(image), []);

  // Re-registration: a new epoch, fenced again even if it was unfenced.
  log.apply({ type: 'UnfenceBroker', brokerId: 7, brokerEpoch: 3, timeMs: T0 });
  assert.equal(log.image.brokers.get(7)!.fenced, false);
  const again = log.apply(register(7, 'inc-7b'));
  assert.equal(again.brokers.get(7)!.brokerEpoch, 5);
  assert.equal(again.brokers.get(7)!.incarnationId, 'inc-7b');
  assert.equal(again.brokers.get(7)!.fenced, true);
});

test('unfence and fence take effect only with the current broker epoch', () => {
  const log = new Log();
  log.apply(register(1)); // epoch 1
  log.apply(register(1)); // epoch 2: the first registration is stale

  log.apply({ type: 'UnfenceBroker', brokerId: 1, brokerEpoch: 1, timeMs: T0 });
  assert.equal(log.image.brokers.get(1)!.fenced, true, 'stale unfence is a no-op');
  assert.equal(log.image.appliedIndex, 3, 'a no-op record still advances the applied index');

  log.apply({ type: 'UnfenceBroker', brokerId: 1, brokerEpoch: 2, timeMs: T0 });
  assert.equal(log.image.brokers.get(1)!.fenced, false);
  assert.deepEqual(liveBrokerIds(log.image), [1]);

  const before = log.image.brokers;
  log.apply({ type: 'FenceBroker', brokerId: 1, brokerEpoch: 1, reason: 'session_timeout', timeMs: T0 });
  assert.equal(log.image.brokers.get(1)!.fenced, false, 'stale fence is a no-op');
  assert.equal(log.image.brokers, before, 'a no-op shares the broker map');

  log.apply({ type: 'FenceBroker', brokerId: 1, brokerEpoch: 2, reason: 'session_timeout', timeMs: T0 });
  assert.equal(log.image.brokers.get(1)!.fenced, true);

  assert.throws(() => log.apply({ type: 'FenceBroker', brokerId: 9, brokerEpoch: 1, reason: 'session_timeout', timeMs: T0 }), MetadataApplyError);
});

test('CreateTopic builds partitions at epoch 0 with a "created" failover entry per led partition', () => {
  const log = new Log();
  for (const id of [1, 2, 3]) log.apply(register(id));
  const image = log.apply(createTopic('t', [[1, 2], [2, 3], [3, 1]], [1, 2, -1], [[1, 2], [2, 3], [3, 1]]));
  const topic = image.topics.get('t')!;
  assert.equal(topic.topicId, 'id-t');
  assert.equal(topic.createdAtMs, T0 + 1);
  assert.deepEqual(topic.configs, { 'retention.ms': '1000' });
  assert.deepEqual(
    topic.partitions.map((p) => ({ ...p })),
    [
      { topic: 't', partition: 0, replicas: [1, 2], isr: [1, 2], leader: 1, leaderEpoch: 0, partitionEpoch: 0 },
      { topic: 't', partition: 1, replicas: [2, 3], isr: [2, 3], leader: 2, leaderEpoch: 0, partitionEpoch: 0 },
      { topic: 't', partition: 2, replicas: [3, 1], isr: [3, 1], leader: -1, leaderEpoch: 0, partitionEpoch: 0 },
    ],
  );
  assert.deepEqual(image.failovers, [
    { index: 4, timeMs: T0 + 1, topic: 't', partition: 0, oldLeader: -1, newLeader: 1, leaderEpoch: 0, trigger: 'created', lagAtPromotion: 0, recordsLost: 0 },
    { index: 4, timeMs: T0 + 1, topic: 't', partition: 1, oldLeader: -1, newLeader: 2, leaderEpoch: 0, trigger: 'created', lagAtPromotion: 0, recordsLost: 0 },
  ]);
});

test('CreateTopic refuses a duplicate name and mismatched per-partition arrays', () => {
  const log = cluster();
  assert.throws(() => log.apply(createTopic('orders', [[1]])), MetadataApplyError);
  assert.throws(() => log.apply(createTopic('x', [])), MetadataApplyError);
  assert.throws(() => log.apply(createTopic('x', [[1], [2]], [1])), MetadataApplyError);
  assert.throws(() => log.apply(createTopic('x', [[1], [2]], [1, 2], [[1]])), MetadataApplyError);
});

test('CreateTopic copies the record: mutating the record afterwards does not reach the image', () => {
  const log = new Log();
  const record = createTopic('t', [[1, 2]]);
  log.apply(record);
  record.assignments[0]!.push(9);
  record.isrs[0]!.push(9);
  record.configs['retention.ms'] = '5';
  const p = partitionOf(log.image, 't', 0)!;
  assert.deepEqual(p.replicas, [1, 2]);
  assert.deepEqual(p.isr, [1, 2]);
  assert.equal(log.image.topics.get('t')!.configs['retention.ms'], '1000');
});

test('ChangePartition: ISR-only change bumps the partition epoch, not the leader epoch, and logs no failover', () => {
  const log = cluster();
  const failoversBefore = log.image.failovers.length;
  log.apply(change('orders', 0, { isr: [1, 2] }));
  const p = partitionOf(log.image, 'orders', 0)!;
  assert.deepEqual(p.isr, [1, 2]);
  assert.equal(p.leader, 1);
  assert.equal(p.leaderEpoch, 0);
  assert.equal(p.partitionEpoch, 1);
  assert.equal(log.image.failovers.length, failoversBefore);

  // Naming the same leader again is not a leader change.
  log.apply(change('orders', 0, { leader: 1, isr: [1, 2, 3], trigger: 'preferred' }));
  const q = partitionOf(log.image, 'orders', 0)!;
  assert.equal(q.leaderEpoch, 0);
  assert.equal(q.partitionEpoch, 2);
  assert.equal(log.image.failovers.length, failoversBefore);

  // Other partitions are untouched (and shared).
  const before = cluster().image;
  assert.deepEqual(partitionOf(log.image, 'orders', 1), partitionOf(before, 'orders', 1));
});

test('ChangePartition: a leader change bumps both epochs and appends one failover entry', () => {
  const log = cluster();
  const n = log.image.failovers.length;
  log.apply(change('orders', 1, { leader: 3, isr: [3, 1], trigger: 'fenced', lagAtPromotion: 4, recordsLost: 0 }));
  let p = partitionOf(log.image, 'orders', 1)!;
  assert.equal(p.leader, 3);
  assert.deepEqual(p.isr, [3, 1]);
  assert.equal(p.leaderEpoch, 1);
  assert.equal(p.partitionEpoch, 1);
  assert.equal(log.image.failovers.length, n + 1);
  assert.deepEqual(log.image.failovers.at(-1), {
    index: log.index, timeMs: T0 + 50, topic: 'orders', partition: 1, oldLeader: 2, newLeader: 3, leaderEpoch: 1,
    trigger: 'fenced', lagAtPromotion: 4, recordsLost: 0,
  });

  // To offline, without a trigger: defaults to 'offline'.
  log.apply(change('orders', 1, { leader: -1, isr: [3] }));
  p = partitionOf(log.image, 'orders', 1)!;
  assert.equal(p.leader, -1);
  assert.equal(p.leaderEpoch, 2);
  assert.equal(p.partitionEpoch, 2);
  assert.equal(log.image.failovers.length, n + 2);
  assert.equal(log.image.failovers.at(-1)!.trigger, 'offline');
  assert.equal(log.image.failovers.at(-1)!.oldLeader, 3);
  assert.equal(log.image.failovers.at(-1)!.newLeader, -1);

  // Unclean promotion records the loss.
  log.apply(change('orders', 1, { leader: 2, isr: [2], trigger: 'unclean', lagAtPromotion: 7, recordsLost: 7 }));
  p = partitionOf(log.image, 'orders', 1)!;
  assert.equal(p.leaderEpoch, 3);
  assert.equal(p.partitionEpoch, 3);
  const last = log.image.failovers.at(-1)!;
  assert.equal(last.trigger, 'unclean');
  assert.equal(last.oldLeader, -1);
  assert.equal(last.newLeader, 2);
  assert.equal(last.leaderEpoch, 3);
  assert.equal(last.recordsLost, 7);
  assert.equal(last.lagAtPromotion, 7);
});

test('ChangePartition of an unknown topic or partition throws', () => {
  const log = cluster();
  assert.throws(() => log.apply(change('nope', 0, { isr: [1] })), MetadataApplyError);
  assert.throws(() => log.apply(change('orders', 3, { isr: [1] })), MetadataApplyError);
  assert.throws(() => log.apply(change('orders', -1, { isr: [1] })), MetadataApplyError);
});

test('AlterTopicConfigs sets keys and null removes them; DeleteTopic removes the topic', () => {
  const log = cluster();
  log.apply({ type: 'AlterTopicConfigs', name: 'orders', configs: { 'cleanup.policy': 'compact', 'retention.ms': null }, timeMs: T0 });
  assert.deepEqual(log.image.topics.get('orders')!.configs, { 'cleanup.policy': 'compact' });
  assert.equal(Object.hasOwn(log.image.topics.get('orders')!.configs, 'retention.ms'), false);
  assert.equal(log.image.topics.get('orders')!.partitions.length, 3, 'partitions kept');
  assert.throws(() => log.apply({ type: 'AlterTopicConfigs', name: 'nope', configs: {}, timeMs: T0 }), MetadataApplyError);

  log.apply({ type: 'DeleteTopic', name: 'orders', timeMs: T0 });
  assert.equal(log.image.topics.has('orders'), false);
  assert.equal(partitionOf(log.image, 'orders', 0), undefined);
  assert.throws(() => log.apply({ type: 'DeleteTopic', name: 'orders', timeMs: T0 }), MetadataApplyError);
  // The name can be used again, starting from epoch 0.
  log.apply(createTopic('orders', [[2, 3]]));
  assert.equal(partitionOf(log.image, 'orders', 0)!.leaderEpoch, 0);
  assert.equal(partitionOf(log.image, 'orders', 0)!.leader, 2);
});

test('AllocateProducerIds must start at nextProducerId and advances it by the count', () => {
  const log = new Log();
  assert.equal(log.image.nextProducerId, 1);
  log.apply({ type: 'AllocateProducerIds', brokerId: 1, firstProducerId: 1, count: 1000, timeMs: T0 });
  assert.equal(log.image.nextProducerId, 1001);
  assert.throws(() => log.apply({ type: 'AllocateProducerIds', brokerId: 2, firstProducerId: 1, count: 1000, timeMs: T0 }), MetadataApplyError);
  assert.throws(() => log.apply({ type: 'AllocateProducerIds', brokerId: 2, firstProducerId: 1002, count: 1000, timeMs: T0 }), MetadataApplyError);
  log.index -= 2; // the failed applies did not take an index
  log.apply({ type: 'AllocateProducerIds', brokerId: 2, firstProducerId: 1001, count: 10, timeMs: T0 });
  assert.equal(log.image.nextProducerId, 1011);
});

test('applying an index at or below appliedIndex throws', () => {
  const log = cluster();
  const at = log.image.appliedIndex;
  assert.throws(() => applyRecord(log.image, { type: 'Noop' }, at), MetadataApplyError);
  assert.throws(() => applyRecord(log.image, { type: 'Noop' }, at - 1), MetadataApplyError);
  assert.throws(() => applyRecord(log.image, { type: 'Noop' }, 0), MetadataApplyError);
  assert.equal(applyRecord(log.image, { type: 'Noop' }, at + 1).appliedIndex, at + 1);
  // Gaps are allowed (indexes of records that are not metadata, e.g. Raft configuration entries).
  assert.equal(applyRecord(log.image, { type: 'Noop' }, at + 10).appliedIndex, at + 10);
  assert.throws(() => applyRecords(log.image, [{ type: 'Noop' }, { type: 'Noop' }], at), MetadataApplyError);
});

test('applyRecord never mutates the image it is given', () => {
  const log = cluster();
  log.apply({ type: 'AllocateProducerIds', brokerId: 1, firstProducerId: 1, count: 5, timeMs: T0 });
  const records: MetadataRecord[] = [
    { type: 'Noop' },
    register(4),
    register(1),
    { type: 'UnfenceBroker', brokerId: 2, brokerEpoch: 2, timeMs: T0 },
    { type: 'FenceBroker', brokerId: 3, brokerEpoch: 3, reason: 'session_timeout', timeMs: T0 },
    createTopic('other', [[1, 2]]),
    { type: 'DeleteTopic', name: 'orders', timeMs: T0 },
    { type: 'AlterTopicConfigs', name: 'orders', configs: { 'retention.ms': null, 'cleanup.policy': 'compact' }, timeMs: T0 },
    change('orders', 2, { isr: [3, 1] }),
    change('orders', 2, { leader: 1, isr: [1, 2], trigger: 'fenced' }),
    { type: 'AllocateProducerIds', brokerId: 1, firstProducerId: 6, count: 5, timeMs: T0 },
  ];
  const snapshotBefore = structuredClone(log.image);
  const frozen = deepFreeze(log.image);
  for (const record of records) {
    const next = applyRecord(frozen, record, frozen.appliedIndex + 1);
    assert.notEqual(next, frozen);
    assert.equal(next.appliedIndex, frozen.appliedIndex + 1);
  }
  assert.deepStrictEqual(structuredClone(frozen), snapshotBefore);
});

test('an old image does not move when later records are applied', () => {
  const log = cluster();
  const old = log.image;
  const oldClone = structuredClone(old);
  log.apply(change('orders', 0, { leader: 2, isr: [2, 3], trigger: 'fenced' }));
  log.apply({ type: 'FenceBroker', brokerId: 1, brokerEpoch: 1, reason: 'session_timeout', timeMs: T0 });
  log.apply({ type: 'AlterTopicConfigs', name: 'orders', configs: { 'retention.ms': '5' }, timeMs: T0 });
  assert.deepStrictEqual(structuredClone(old), oldClone);
  assert.equal(partitionOf(old, 'orders', 0)!.leader, 1);
});

test('snapshotOf / imageFromSnapshot round-trip, through JSON, and keep folding identically', () => {
  const log = cluster();
  log.apply(change('orders', 0, { leader: 2, isr: [2, 3], trigger: 'fenced', lagAtPromotion: 3 }));
  log.apply({ type: 'AllocateProducerIds', brokerId: 1, firstProducerId: 1, count: 100, timeMs: T0 });
  log.apply({ type: 'AlterTopicConfigs', name: 'orders', configs: { 'cleanup.policy': 'compact' }, timeMs: T0 });

  const snapshot = snapshotOf(log.image);
  const restored = imageFromSnapshot(JSON.parse(JSON.stringify(snapshot)));
  assert.deepStrictEqual(restored, log.image);
  assert.deepStrictEqual(imageFromSnapshot(structuredClone(snapshot)), log.image);

  const more: MetadataRecord[] = [
    register(4),
    { type: 'UnfenceBroker', brokerId: 4, brokerEpoch: log.index + 1, timeMs: T0 },
    { type: 'FenceBroker', brokerId: 2, brokerEpoch: 2, reason: 'session_timeout', timeMs: T0 },
    change('orders', 0, { leader: 3, isr: [3], trigger: 'fenced' }),
    createTopic('later', [[4, 1], [1, 4]]),
    { type: 'AlterTopicConfigs', name: 'orders', configs: { 'cleanup.policy': null }, timeMs: T0 },
    { type: 'AllocateProducerIds', brokerId: 4, firstProducerId: 101, count: 50, timeMs: T0 },
    { type: 'DeleteTopic', name: 'later', timeMs: T0 },
  ];
  const first = log.index + 1;
  const a = applyRecords(log.image, more, first);
  const b = applyRecords(restored, more, first);
  assert.deepStrictEqual(b, a);
  assert.deepStrictEqual(snapshotOf(b), snapshotOf(a));
  assert.equal(a.nextProducerId, 151);
  assert.equal(partitionOf(a, 'orders', 0)!.leaderEpoch, 2);
  // The snapshot is a copy of the failover log, not a view of it.
  snapshot.failovers.length = 0;
  assert.ok(log.image.failovers.length > 0);
  // The index check survives the round trip.
  assert.throws(() => applyRecord(restored, { type: 'Noop' }, log.index), MetadataApplyError);
});

test('the failover log keeps the newest FAILOVER_LOG_ENTRIES_MAX entries, oldest first', () => {
  const log = cluster();
  const filler = Array.from({ length: FAILOVER_LOG_ENTRIES_MAX - 1 }, (_, i) => ({
    index: i + 1, timeMs: T0, topic: 'old', partition: 0, oldLeader: 1, newLeader: 2, leaderEpoch: i, trigger: 'fenced' as const, lagAtPromotion: 0, recordsLost: 0,
  }));
  const snapshot = snapshotOf(log.image);
  snapshot.failovers = filler;
  log.image = imageFromSnapshot(snapshot);
  const leaders = [2, 3, 1];
  for (const leader of leaders) log.apply(change('orders', 0, { leader, trigger: 'preferred' }));
  const failovers = log.image.failovers;
  assert.equal(failovers.length, FAILOVER_LOG_ENTRIES_MAX);
  assert.equal(failovers[0]!.leaderEpoch, 2, 'the two oldest entries were dropped');
  assert.deepEqual(failovers.slice(-3).map((f) => [f.newLeader, f.leaderEpoch, f.index]), [[2, 1, log.index - 2], [3, 2, log.index - 1], [1, 3, log.index]]);
  // A new topic's "created" entries obey the same bound.
  log.apply(createTopic('more', [[1], [2], [3]]));
  assert.equal(log.image.failovers.length, FAILOVER_LOG_ENTRIES_MAX);
  assert.deepEqual(log.image.failovers.slice(-3).map((f) => `${f.topic}-${f.partition}:${f.trigger}`), ['more-0:created', 'more-1:created', 'more-2:created']);
  assert.equal(filler.length, FAILOVER_LOG_ENTRIES_MAX - 1, 'the snapshot array was not mutated');
});

import { applyRecordOrSkip as skipFold, EMPTY_IMAGE as EMPTY_FOR_SKIP, applyRecord as fold } from '../../protocol/metadata/image.js';

test('a committed record that contradicts the image is skipped the same way on every node', () => {
  const create = { type: 'CreateTopic', name: 'dup', topicId: 'x', configs: {}, assignments: [[1]], leaders: [1], isrs: [[1]], timeMs: 1 } as const;
  const once = fold(EMPTY_FOR_SKIP, { ...create, assignments: [[1]], leaders: [1], isrs: [[1]] }, 1);
  const skipped: string[] = [];
  const twice = skipFold(once, { ...create, assignments: [[1]], leaders: [1], isrs: [[1]] }, 2, (e) => skipped.push(e.message));
  assert.equal(twice.appliedIndex, 2);
  assert.equal(twice.topics, once.topics);
  assert.equal(skipped.length, 1);
  assert.match(skipped[0]!, /exists/);
});

test('a producer-id block must have a positive count', () => {
  const block = fold(EMPTY_FOR_SKIP, { type: 'AllocateProducerIds', brokerId: 1, firstProducerId: 1, count: 100, timeMs: 1 }, 1);
  for (const count of [0, -50, 1.5]) {
    assert.throws(() => fold(block, { type: 'AllocateProducerIds', brokerId: 1, firstProducerId: 101, count, timeMs: 1 }, 2), /positive integer/);
  }
});
