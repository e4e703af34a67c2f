import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TributaryError } from '../../protocol/errors.js';
import { EMPTY_IMAGE, applyRecord, partitionOf, type MetadataImage } from '../../protocol/metadata/image.js';
import type { MetadataRecord } from '../../protocol/metadata/records.js';
import { planAlterPartition, planFenceBroker, type AlterPartitionRequest, type LivenessView } from '../../controller/metadata/decisions.js';

const T0 = 1_700_000_000_000;

function applyAll(image: MetadataImage, records: readonly MetadataRecord[]): MetadataImage {
  let out = image;
  for (const r of records) out = applyRecord(out, r, out.appliedIndex + 1);
  return out;
}

/** Alive = registered and unfenced in the image. */
function livenessOf(image: MetadataImage): LivenessView {
  return { isAlive: (id) => image.brokers.get(id)?.fenced === false, logEndOffset: () => undefined };
}

function expectCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof TributaryError, `expected a TributaryError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

/** Brokers 1..4 (4 fenced); topic a-0 replicas [1,2,3,4], leader 1, ISR [1,2]. */
function setup(): MetadataImage {
  let image = EMPTY_IMAGE;
  for (const id of [1, 2, 3, 4]) {
    image = applyAll(image, [{ type: 'RegisterBroker', brokerId: id, incarnationId: `i${id}`, address: `ws://h:${id}`, timeMs: T0 }]);
    image = applyAll(image, [{ type: 'UnfenceBroker', brokerId: id, brokerEpoch: image.appliedIndex, timeMs: T0 }]);
  }
  image = applyAll(image, [
    { type: 'CreateTopic', name: 'a', topicId: 'id-a', configs: {}, assignments: [[1, 2, 3, 4], [2, 1, 3, 4]], leaders: [1, 2], isrs: [[1, 2, 3, 4], [2, 1, 3, 4]], timeMs: T0 },
    { type: 'ChangePartition', topic: 'a', partition: 0, isr: [1, 2], timeMs: T0 },
    { type: 'FenceBroker', brokerId: 4, brokerEpoch: image.brokers.get(4)!.brokerEpoch, reason: 'session_timeout', timeMs: T0 },
  ]);
  return image;
}

/** A request from a-0's leader with all epochs current. */
function request(image: MetadataImage, newIsr: number[], overrides: Partial<AlterPartitionRequest> = {}): AlterPartitionRequest {
  const p = partitionOf(image, 'a', 0)!;
  return {
    brokerId: p.leader,
    brokerEpoch: image.brokers.get(p.leader)!.brokerEpoch,
    topic: 'a',
    partition: 0,
    leaderEpoch: p.leaderEpoch,
    partitionEpoch: p.partitionEpoch,
    newIsr,
    ...overrides,
  };
}

test('planAlterPartition: the leader shrinks and expands its ISR; the record applies', () => {
  let image = setup();
  const shrink = planAlterPartition(image, request(image, [1]), livenessOf(image), T0 + 3);
  assert.deepEqual(shrink, { type: 'ChangePartition', topic: 'a', partition: 0, isr: [1], timeMs: T0 + 3 });
  image = applyAll(image, [shrink!]);
  assert.deepEqual(partitionOf(image, 'a', 0)!.isr, [1]);
  assert.equal(partitionOf(image, 'a', 0)!.partitionEpoch, 2);
  assert.equal(partitionOf(image, 'a', 0)!.leaderEpoch, 0);

  const expand = planAlterPartition(image, request(image, [3, 1, 2]), livenessOf(image), T0);
  assert.deepEqual(expand!.isr, [1, 2, 3], 'normalised: sorted');
  image = applyAll(image, [expand!]);
  assert.deepEqual(partitionOf(image, 'a', 0)!.isr, [1, 2, 3]);
  assert.equal(partitionOf(image, 'a', 0)!.partitionEpoch, 3);
});

test('planAlterPartition: an unchanged ISR (any order, duplicates) is null', () => {
  const image = setup();
  for (const isr of [[1, 2], [2, 1], [1, 2, 2, 1]]) {
    assert.equal(planAlterPartition(image, request(image, isr), livenessOf(image), T0), null, `[${isr}]`);
  }
});

test('planAlterPartition: a stale or unknown broker epoch is STALE_BROKER_EPOCH', () => {
  const image = setup();
  expectCode(() => planAlterPartition(image, request(image, [1], { brokerEpoch: image.brokers.get(1)!.brokerEpoch - 1 }), livenessOf(image), T0), 'STALE_BROKER_EPOCH');
  expectCode(() => planAlterPartition(image, request(image, [1], { brokerEpoch: image.brokers.get(1)!.brokerEpoch + 1 }), livenessOf(image), T0), 'STALE_BROKER_EPOCH');
  expectCode(() => planAlterPartition(image, request(image, [1], { brokerId: 99 }), livenessOf(image), T0), 'STALE_BROKER_EPOCH');
  // After re-registration the old process's epoch is stale.
  const reregistered = applyAll(image, [{ type: 'RegisterBroker', brokerId: 1, incarnationId: 'new', address: 'ws://h:1', timeMs: T0 }]);
  expectCode(() => planAlterPartition(reregistered, request(image, [1]), livenessOf(reregistered), T0), 'STALE_BROKER_EPOCH');
});

test('planAlterPartition: only the current leader may ask (NOT_LEADER_OR_FOLLOWER)', () => {
  let image = setup();
  const follower = { brokerId: 2, brokerEpoch: image.brokers.get(2)!.brokerEpoch };
  expectCode(() => planAlterPartition(image, request(image, [1, 2], follower), livenessOf(image), T0), 'NOT_LEADER_OR_FOLLOWER');
  expectCode(() => planAlterPartition(image, request(image, [2], follower), livenessOf(image), T0), 'NOT_LEADER_OR_FOLLOWER');
  const nonReplica = { brokerId: 3, brokerEpoch: image.brokers.get(3)!.brokerEpoch, partition: 1 };
  expectCode(() => planAlterPartition(image, request(image, [3], nonReplica), livenessOf(image), T0), 'NOT_LEADER_OR_FOLLOWER');
  expectCode(() => planAlterPartition(image, request(image, [1], { partition: 5 }), livenessOf(image), T0), 'UNKNOWN_TOPIC_OR_PARTITION');
  expectCode(() => planAlterPartition(image, request(image, [1], { topic: 'zz' }), livenessOf(image), T0), 'UNKNOWN_TOPIC_OR_PARTITION');

  // The old leader, after a failover, is refused even with the epochs it knew.
  const old = request(image, [1]);
  image = applyAll(image, planFenceBroker(image, 1, 'session_timeout', livenessOf(image), T0));
  image = applyAll(image, [{ type: 'RegisterBroker', brokerId: 1, incarnationId: 'i1b', address: 'ws://h:1', timeMs: T0 }]);
  image = applyAll(image, [{ type: 'UnfenceBroker', brokerId: 1, brokerEpoch: image.appliedIndex, timeMs: T0 }]);
  assert.equal(partitionOf(image, 'a', 0)!.leader, 2);
  expectCode(() => planAlterPartition(image, { ...old, brokerEpoch: image.brokers.get(1)!.brokerEpoch }, livenessOf(image), T0), 'NOT_LEADER_OR_FOLLOWER');
});

test('planAlterPartition: leader epoch older is FENCED_LEADER_EPOCH, newer is UNKNOWN_LEADER_EPOCH', () => {
  let image = setup();
  // Move leadership 1 -> 2 -> 1 so the current leader epoch is 2 with leader 1.
  image = applyAll(image, [
    { type: 'ChangePartition', topic: 'a', partition: 0, leader: 2, trigger: 'fenced', timeMs: T0 },
    { type: 'ChangePartition', topic: 'a', partition: 0, leader: 1, trigger: 'preferred', timeMs: T0 },
  ]);
  assert.equal(partitionOf(image, 'a', 0)!.leaderEpoch, 2);
  expectCode(() => planAlterPartition(image, request(image, [1], { leaderEpoch: 1 }), livenessOf(image), T0), 'FENCED_LEADER_EPOCH');
  expectCode(() => planAlterPartition(image, request(image, [1], { leaderEpoch: 0 }), livenessOf(image), T0), 'FENCED_LEADER_EPOCH');
  expectCode(() => planAlterPartition(image, request(image, [1], { leaderEpoch: 3 }), livenessOf(image), T0), 'UNKNOWN_LEADER_EPOCH');
  assert.deepEqual(planAlterPartition(image, request(image, [1]), livenessOf(image), T0)!.isr, [1]);
});

test('planAlterPartition: a partition epoch other than the current one is INVALID_UPDATE_VERSION', () => {
  let image = setup();
  const first = request(image, [1]);
  image = applyAll(image, [planAlterPartition(image, first, livenessOf(image), T0)!]);
  // The same request again (a retry after success, or a race) names an old partition epoch.
  expectCode(() => planAlterPartition(image, { ...first, newIsr: [1, 2] }, livenessOf(image), T0), 'INVALID_UPDATE_VERSION');
  expectCode(() => planAlterPartition(image, request(image, [1, 2], { partitionEpoch: partitionOf(image, 'a', 0)!.partitionEpoch + 1 }), livenessOf(image), T0), 'INVALID_UPDATE_VERSION');
});

test('planAlterPartition: the new ISR must hold the leader and only replicas', () => {
  const image = setup();
  expectCode(() => planAlterPartition(image, request(image, [2]), livenessOf(image), T0), 'INVALID_REQUEST');
  expectCode(() => planAlterPartition(image, request(image, []), livenessOf(image), T0), 'INVALID_REQUEST');
  expectCode(() => planAlterPartition(image, request(image, [1, 9]), livenessOf(image), T0), 'INVALID_REQUEST');
});

test('planAlterPartition: a dead non-member cannot join (INELIGIBLE_REPLICA); a dead member may stay', () => {
  let image = setup();
  expectCode(() => planAlterPartition(image, request(image, [1, 2, 4]), livenessOf(image), T0), 'INELIGIBLE_REPLICA');
  // Broker 2 dies (in the liveness view only, not yet fenced): it may be kept, or removed.
  const view: LivenessView = { isAlive: (id) => id === 1 || id === 3, logEndOffset: () => undefined };
  assert.equal(planAlterPartition(image, request(image, [1, 2]), view, T0), null);
  assert.deepEqual(planAlterPartition(image, request(image, [1, 2, 3]), view, T0)!.isr, [1, 2, 3]);
  image = applyAll(image, [planAlterPartition(image, request(image, [1]), view, T0)!]);
  expectCode(() => planAlterPartition(image, request(image, [1, 2]), view, T0), 'INELIGIBLE_REPLICA');
  // Once alive again it may rejoin.
  assert.deepEqual(planAlterPartition(image, request(image, [1, 2]), livenessOf(image), T0)!.isr, [1, 2]);
});
