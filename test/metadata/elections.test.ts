import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EMPTY_IMAGE, applyRecord, partitionOf, type MetadataImage, type PartitionImage } from '../../protocol/metadata/image.js';
import type { ChangePartitionRecord, MetadataRecord } from '../../protocol/metadata/records.js';
import {
  electLeader,
  planFenceBroker,
  planPreferredLeaders,
  planRecoverOffline,
  type LivenessView,
} from '../../controller/metadata/decisions.js';

const T0 = 1_700_000_000_000;

function applyAll(image: MetadataImage, records: readonly MetadataRecord[]): MetadataImage {
  let out = image;
  for (const r of records) out = applyRecord(out, r, out.appliedIndex + 1);
  return out;
}

/**
 * A liveness view: `alive` brokers, and log end offsets per broker (for every partition) or per
 * `topic-partition` and broker. A broker with no entry has reported nothing.
 */
function liveness(alive: Iterable<number>, leos: Record<number, number> = {}, perPartition: Record<string, Record<number, number>> = {}): LivenessView {
  const set = new Set(alive);
  return {
    isAlive: (id) => set.has(id),
    logEndOffset: (id, topic, partition) => perPartition[`${topic}-${partition}`]?.[id] ?? leos[id],
  };
}

function part(replicas: number[], isr: number[], leader: number): PartitionImage {
  return { topic: 't', partition: 0, replicas, isr, leader, leaderEpoch: 3, partitionEpoch: 7 };
}

interface PartitionSpec {
  replicas: number[];
  isr: number[];
  leader: number;
}

/** Brokers registered and unfenced, plus one topic per entry of `topics`. */
function imageWith(brokerIds: number[], topics: Record<string, { configs?: Record<string, string>; partitions: PartitionSpec[] }>): MetadataImage {
  let image = EMPTY_IMAGE;
  for (const id of brokerIds) {
    image = applyAll(image, [{ type: 'RegisterBroker', brokerId: id, incarnationId: `i${id}`, address: `ws://h:${id}`, timeMs: T0 }]);
    image = applyAll(image, [{ type: 'UnfenceBroker', brokerId: id, brokerEpoch: image.appliedIndex, timeMs: T0 }]);
  }
  for (const [name, spec] of Object.entries(topics)) {
    image = applyAll(image, [{
      type: 'CreateTopic', name, topicId: `id-${name}`, configs: spec.configs ?? {},
      assignments: spec.partitions.map((p) => p.replicas),
      leaders: spec.partitions.map((p) => p.replicas[0]!),
      isrs: spec.partitions.map((p) => p.replicas),
      timeMs: T0,
    }]);
    // Reach the wanted leader and ISR through the log, as the controller would.
    spec.partitions.forEach((p, i) => {
      if (p.leader !== p.replicas[0] || p.isr.length !== p.replicas.length) {
        image = applyAll(image, [{ type: 'ChangePartition', topic: name, partition: i, leader: p.leader, isr: p.isr, trigger: 'preferred', timeMs: T0 }]);
      }
    });
  }
  return image;
}

function changes(records: MetadataRecord[]): ChangePartitionRecord[] {
  return records.filter((r): r is ChangePartitionRecord => r.type === 'ChangePartition');
}

function assertIsrInvariants(image: MetadataImage): void {
  for (const topic of image.topics.values()) {
    for (const p of topic.partitions) {
      const where = `${p.topic}-${p.partition}`;
      assert.ok(p.isr.length > 0, `${where}: ISR is empty`);
      assert.equal(new Set(p.isr).size, p.isr.length, `${where}: ISR has duplicates`);
      for (const id of p.isr) assert.ok(p.replicas.includes(id), `${where}: ISR member ${id} is not a replica`);
      if (p.leader !== -1) assert.ok(p.isr.includes(p.leader), `${where}: leader ${p.leader} not in ISR [${p.isr}]`);
    }
  }
}

// ---- electLeader ---------------------------------------------------------------------------------

test('electLeader: the live ISR member with the highest reported log end offset wins', () => {
  const p = part([1, 2, 3], [1, 2, 3], 1);
  const e = electLeader(p, liveness([1, 2, 3], { 1: 100, 2: 90, 3: 95 }), { excluded: 1, uncleanAllowed: false, trigger: 'fenced' });
  assert.deepEqual(e, { leader: 3, trigger: 'fenced', lagAtPromotion: 5, recordsLost: 0 });
  // Without exclusion the most complete (the old leader) stays.
  const same = electLeader(p, liveness([1, 2, 3], { 1: 100, 2: 90, 3: 95 }), { uncleanAllowed: false, trigger: 'recovered' });
  assert.deepEqual(same, { leader: 1, trigger: 'recovered', lagAtPromotion: 0, recordsLost: 0 });
  // The ISR order does not matter.
  const shuffled = part([3, 1, 2], [3, 2, 1], 1);
  assert.equal(electLeader(shuffled, liveness([1, 2, 3], { 1: 100, 2: 90, 3: 95 }), { excluded: 1, uncleanAllowed: false, trigger: 'fenced' })!.leader, 3);
});

test('electLeader: lowest broker id on a tie, whatever the order of the ISR', () => {
  for (const isr of [[1, 2, 3, 4], [4, 3, 2, 1], [3, 4, 1, 2]]) {
    const p = part([1, 2, 3, 4], isr, 1);
    const e = electLeader(p, liveness([1, 2, 3, 4], { 1: 50, 2: 40, 3: 40, 4: 40 }), { excluded: 1, uncleanAllowed: false, trigger: 'fenced' });
    assert.equal(e!.leader, 2, `ISR [${isr}]`);
    assert.equal(e!.lagAtPromotion, 10);
  }
  // Nobody has reported: lowest id.
  const none = electLeader(part([5, 3, 4], [5, 4, 3], 5), liveness([3, 4, 5]), { excluded: 5, uncleanAllowed: false, trigger: 'fenced' });
  assert.equal(none!.leader, 3);
  assert.equal(none!.lagAtPromotion, 0);
  // A reported offset, even 0, beats no report.
  const zero = electLeader(part([1, 2, 3], [1, 2, 3], 1), liveness([2, 3], { 3: 0 }), { excluded: 1, uncleanAllowed: false, trigger: 'fenced' });
  assert.equal(zero!.leader, 3);
});

test('electLeader: the excluded broker and dead brokers are skipped, even when most complete', () => {
  const p = part([1, 2, 3], [1, 2, 3], 1);
  const leos = { 1: 100, 2: 90, 3: 95 };
  assert.equal(electLeader(p, liveness([1, 2], leos), { excluded: 1, uncleanAllowed: false, trigger: 'fenced' })!.leader, 2);
  // The excluded broker is skipped even if the liveness view still believes it alive.
  assert.equal(electLeader(p, liveness([1, 2, 3], { 1: 500, 2: 90, 3: 95 }), { excluded: 1, uncleanAllowed: false, trigger: 'fenced' })!.leader, 3);
  assert.equal(electLeader(p, liveness([1], leos), { excluded: 1, uncleanAllowed: false, trigger: 'fenced' }), undefined);
  assert.equal(electLeader(p, liveness([], leos), { uncleanAllowed: true, trigger: 'recovered' }), undefined);
});

test('electLeader: an out-of-sync replica is never chosen by a clean election, however complete', () => {
  const p = part([1, 2, 3], [1, 2], 1);
  const view = liveness([1, 2, 3], { 1: 100, 2: 10, 3: 1000 });
  assert.equal(electLeader(p, view, { excluded: 1, uncleanAllowed: false, trigger: 'fenced' })!.leader, 2);
  assert.equal(electLeader(p, view, { excluded: 1, uncleanAllowed: true, trigger: 'fenced' })!.leader, 2, 'an ISR member is preferred even when unclean is allowed');
  assert.equal(electLeader(part([1, 2, 3], [1], 1), view, { excluded: 1, uncleanAllowed: false, trigger: 'fenced' }), undefined);
});

test('electLeader: unclean picks the most complete live replica and records the loss against the best ISR log', () => {
  const p = part([1, 2, 3, 4], [1], 1);
  const e = electLeader(p, liveness([2, 3, 4], { 1: 100, 2: 30, 3: 70, 4: 70 }), { excluded: 1, uncleanAllowed: true, trigger: 'fenced' });
  assert.deepEqual(e, { leader: 3, trigger: 'unclean', lagAtPromotion: 30, recordsLost: 30 });
  // Dead ISR members (not excluded) count towards what is lost too.
  const q = part([1, 2, 3], [1, 2], -1);
  const f = electLeader(q, liveness([3], { 1: 80, 2: 120, 3: 20 }), { uncleanAllowed: true, trigger: 'recovered' });
  assert.deepEqual(f, { leader: 3, trigger: 'unclean', lagAtPromotion: 100, recordsLost: 100 });
  // An out-of-sync replica ahead of the ISR loses nothing.
  const g = electLeader(part([1, 2], [1], 1), liveness([2], { 1: 10, 2: 15 }), { excluded: 1, uncleanAllowed: true, trigger: 'fenced' });
  assert.deepEqual(g, { leader: 2, trigger: 'unclean', lagAtPromotion: 0, recordsLost: 0 });
});

// ---- planFenceBroker -----------------------------------------------------------------------------

function threeBrokerImage(configs: Record<string, string> = {}): MetadataImage {
  return imageWith([1, 2, 3], {
    a: {
      configs,
      partitions: [
        { replicas: [1, 2, 3], isr: [1, 2, 3], leader: 1 },
        { replicas: [2, 3, 1], isr: [2, 3, 1], leader: 2 },
        { replicas: [3, 1, 2], isr: [3, 2], leader: 3 },
      ],
    },
  });
}

test('planFenceBroker: a fenced leader is replaced from the ISR and the broker leaves every ISR', () => {
  const image = threeBrokerImage();
  const view = liveness([2, 3], { 1: 100, 2: 90, 3: 95 });
  const records = planFenceBroker(image, 1, 'session_timeout', view, T0 + 5);
  assert.deepEqual(records[0], { type: 'FenceBroker', brokerId: 1, brokerEpoch: image.brokers.get(1)!.brokerEpoch, reason: 'session_timeout', timeMs: T0 + 5 });
  const cps = changes(records);
  assert.equal(cps.length, 2, 'a-2 does not have broker 1 in its ISR: no record');
  assert.deepEqual(cps[0], {
    type: 'ChangePartition', topic: 'a', partition: 0, leader: 3, isr: [2, 3], trigger: 'fenced', lagAtPromotion: 5, recordsLost: 0, timeMs: T0 + 5,
  });
  assert.deepEqual(cps[1], { type: 'ChangePartition', topic: 'a', partition: 1, isr: [2, 3], timeMs: T0 + 5 });

  const after = applyAll(image, records);
  assert.equal(after.brokers.get(1)!.fenced, true);
  const [p0, p1, p2] = after.topics.get('a')!.partitions;
  assert.equal(p0!.leader, 3);
  assert.equal(p0!.leaderEpoch, image.topics.get('a')!.partitions[0]!.leaderEpoch + 1);
  assert.equal(p1!.leader, 2, 'a follower being fenced does not move leadership');
  assert.equal(p1!.leaderEpoch, image.topics.get('a')!.partitions[1]!.leaderEpoch);
  assert.equal(p1!.partitionEpoch, image.topics.get('a')!.partitions[1]!.partitionEpoch + 1);
  assert.equal(p2, image.topics.get('a')!.partitions[2], 'untouched partition is shared');
  for (const p of after.topics.get('a')!.partitions) assert.ok(!p.isr.includes(1), `${p.topic}-${p.partition} ISR [${p.isr}]`);
  assertIsrInvariants(after);
  assert.equal(after.failovers.length, image.failovers.length + 1);
  assert.equal(after.failovers.at(-1)!.trigger, 'fenced');
  assert.equal(after.failovers.at(-1)!.oldLeader, 1);
});

test('planFenceBroker: the last ISR member stays in the ISR and the partition goes offline', () => {
  const image = imageWith([1, 2, 3], { solo: { partitions: [{ replicas: [1, 2], isr: [1], leader: 1 }, { replicas: [2, 1], isr: [2, 1], leader: 2 }] } });
  const records = planFenceBroker(image, 1, 'session_timeout', liveness([2, 3], { 1: 100, 2: 50 }), T0);
  const cps = changes(records);
  assert.deepEqual(cps[0], { type: 'ChangePartition', topic: 'solo', partition: 0, leader: -1, isr: [1], trigger: 'offline', timeMs: T0 });
  const after = applyAll(image, records);
  const p = partitionOf(after, 'solo', 0)!;
  assert.equal(p.leader, -1);
  assert.deepEqual(p.isr, [1]);
  assert.equal(after.failovers.at(-1)!.trigger, 'offline');
  assert.equal(after.failovers.at(-1)!.newLeader, -1);
  assertIsrInvariants(after);

  // Fencing a non-member of that offline partition leaves it alone; fencing its last member
  // again (already fenced) changes nothing either.
  const later = planFenceBroker(after, 2, 'session_timeout', liveness([3], { 1: 100, 2: 50 }), T0);
  assert.equal(changes(later).some((r) => r.partition === 0), false);
  const after2 = applyAll(after, later);
  assertIsrInvariants(after2);
  // solo-1: led by 2 with ISR [2] (1 left it), 2 fenced, nobody alive: offline, ISR keeps [2].
  assert.equal(partitionOf(after2, 'solo', 1)!.leader, -1);
  assert.deepEqual(partitionOf(after2, 'solo', 1)!.isr, [2]);
  assert.deepEqual(planFenceBroker(after2, 1, 'session_timeout', liveness([3]), T0), []);
});

test('planFenceBroker: an unclean topic elects an out-of-sync live replica and records the loss', () => {
  const image = imageWith([1, 2, 3], {
    dirty: { configs: { 'unclean.leader.election.enable': 'true' }, partitions: [{ replicas: [1, 2, 3], isr: [1], leader: 1 }] },
    clean: { partitions: [{ replicas: [1, 2, 3], isr: [1], leader: 1 }] },
  });
  const view = liveness([2, 3], {}, { 'dirty-0': { 1: 100, 2: 60, 3: 75 }, 'clean-0': { 1: 100, 2: 60, 3: 75 } });
  const records = planFenceBroker(image, 1, 'session_timeout', view, T0);
  const dirty = changes(records).find((r) => r.topic === 'dirty')!;
  assert.deepEqual(dirty, {
    type: 'ChangePartition', topic: 'dirty', partition: 0, leader: 3, isr: [3], trigger: 'unclean', lagAtPromotion: 25, recordsLost: 25, timeMs: T0,
  });
  const clean = changes(records).find((r) => r.topic === 'clean')!;
  assert.equal(clean.leader, -1);
  assert.equal(clean.trigger, 'offline');
  const after = applyAll(image, records);
  const entry = after.failovers.find((f) => f.topic === 'dirty' && f.trigger === 'unclean')!;
  assert.equal(entry.recordsLost, 25);
  assert.equal(entry.newLeader, 3);
  assertIsrInvariants(after);
});

test('planFenceBroker: with dead (not yet fenced) ISR members, the new leader still ends up in the ISR', () => {
  const image = imageWith([1, 2, 3, 4], {
    dirty: { configs: { 'unclean.leader.election.enable': 'true' }, partitions: [{ replicas: [1, 2, 3, 4], isr: [1, 2], leader: 1 }] },
    clean: { partitions: [{ replicas: [1, 2, 3, 4], isr: [1, 2, 3], leader: 1 }, { replicas: [1, 2, 3], isr: [1, 2], leader: 1 }] },
  });
  // Broker 2's session has expired too (the controller has not fenced it yet); 3 and 4 are alive.
  const view = liveness([3, 4], { 1: 100, 2: 90, 3: 40, 4: 60 });
  const records = planFenceBroker(image, 1, 'session_timeout', view, T0);
  const dirty = changes(records).find((r) => r.topic === 'dirty')!;
  assert.equal(dirty.leader, 4);
  assert.equal(dirty.trigger, 'unclean');
  assert.deepEqual(dirty.isr, [4], 'an unclean leader starts a new ISR of its own');
  assert.equal(dirty.recordsLost, 40, 'the best ISR log was the fenced leader (100); the new leader has 60');
  const [c0, c1] = changes(records).filter((r) => r.topic === 'clean');
  assert.equal(c0!.leader, 3, 'the only live ISR member');
  assert.deepEqual(c0!.isr, [2, 3]);
  assert.equal(c0!.lagAtPromotion, 60);
  assert.equal(c1!.leader, -1);
  assert.deepEqual(c1!.isr, [2], 'offline: the fenced leader leaves, the dead member stays');
  assertIsrInvariants(applyAll(image, records));
});

test('planFenceBroker: controlled shutdown is the trigger and reason; unknown brokers plan nothing', () => {
  const image = threeBrokerImage();
  const records = planFenceBroker(image, 1, 'controlled_shutdown', liveness([2, 3], { 2: 5, 3: 5 }), T0);
  assert.equal(records[0]!.type === 'FenceBroker' && records[0].reason, 'controlled_shutdown');
  assert.equal(changes(records)[0]!.trigger, 'controlled_shutdown');
  assert.equal(changes(records)[0]!.leader, 2, 'tie: lowest id');
  assert.deepEqual(planFenceBroker(image, 42, 'session_timeout', liveness([1, 2, 3]), T0), []);
});

test('planFenceBroker: fencing an already fenced broker proposes no FenceBroker record', () => {
  let image = threeBrokerImage();
  image = applyAll(image, [{ type: 'FenceBroker', brokerId: 2, brokerEpoch: image.brokers.get(2)!.brokerEpoch, reason: 'session_timeout', timeMs: T0 }]);
  const records = planFenceBroker(image, 2, 'session_timeout', liveness([1, 3]), T0);
  assert.equal(records.some((r) => r.type === 'FenceBroker'), false);
  const after = applyAll(image, records);
  assertIsrInvariants(after);
  for (const p of after.topics.get('a')!.partitions) {
    assert.notEqual(p.leader, 2);
    assert.ok(!p.isr.includes(2));
  }
});

// ---- planRecoverOffline ----------------------------------------------------------------------------

test('planRecoverOffline: an offline partition gets a leader back when an ISR member is alive again', () => {
  let image = imageWith([1, 2, 3], { solo: { partitions: [{ replicas: [1, 2], isr: [1], leader: 1 }] } });
  image = applyAll(image, planFenceBroker(image, 1, 'session_timeout', liveness([2, 3]), T0));
  assert.equal(partitionOf(image, 'solo', 0)!.leader, -1);

  // Only an out-of-sync replica is alive: stays offline (clean topic).
  assert.deepEqual(planRecoverOffline(image, liveness([2, 3], { 2: 10 }), T0), []);

  // Broker 1 re-registers and is unfenced.
  image = applyAll(image, [{ type: 'RegisterBroker', brokerId: 1, incarnationId: 'i1b', address: 'ws://h:1', timeMs: T0 }]);
  image = applyAll(image, [{ type: 'UnfenceBroker', brokerId: 1, brokerEpoch: image.appliedIndex, timeMs: T0 }]);
  const epochBefore = partitionOf(image, 'solo', 0)!.leaderEpoch;
  const records = planRecoverOffline(image, liveness([1, 2, 3], { 1: 100, 2: 10 }), T0 + 1);
  assert.deepEqual(records, [{
    type: 'ChangePartition', topic: 'solo', partition: 0, leader: 1, isr: [1], trigger: 'recovered', lagAtPromotion: 0, recordsLost: 0, timeMs: T0 + 1,
  }]);
  image = applyAll(image, records);
  assert.equal(partitionOf(image, 'solo', 0)!.leader, 1);
  assert.equal(partitionOf(image, 'solo', 0)!.leaderEpoch, epochBefore + 1);
  assert.equal(image.failovers.at(-1)!.trigger, 'recovered');
  // Nothing left to recover.
  assert.deepEqual(planRecoverOffline(image, liveness([1, 2, 3]), T0), []);
});

test('planRecoverOffline: an unclean topic brings back an offline partition from an out-of-sync replica', () => {
  let image = imageWith([1, 2, 3], { dirty: { configs: { 'unclean.leader.election.enable': 'true' }, partitions: [{ replicas: [1, 2], isr: [1], leader: 1 }] } });
  // Nobody else alive at fence time: offline even though unclean is enabled.
  image = applyAll(image, planFenceBroker(image, 1, 'session_timeout', liveness([3]), T0));
  assert.equal(partitionOf(image, 'dirty', 0)!.leader, -1);
  const records = planRecoverOffline(image, liveness([2, 3], { 1: 40, 2: 15 }), T0);
  assert.equal(records.length, 1);
  assert.equal(records[0]!.leader, 2);
  assert.deepEqual(records[0]!.isr, [2]);
  assert.equal(records[0]!.trigger, 'unclean');
  assert.equal(records[0]!.recordsLost, 25);
  image = applyAll(image, records);
  assertIsrInvariants(image);
});

// ---- planPreferredLeaders --------------------------------------------------------------------------

test('planPreferredLeaders: leadership returns to replicas[0] only when it is alive and in the ISR', () => {
  const image = imageWith([1, 2, 3], {
    a: {
      partitions: [
        { replicas: [1, 2, 3], isr: [1, 2, 3], leader: 2 }, // moves to 1
        { replicas: [2, 3, 1], isr: [3, 1], leader: 3 }, // 2 not in ISR: stays
        { replicas: [3, 1, 2], isr: [3, 1, 2], leader: 1 }, // 3 dead: stays
        { replicas: [1, 3, 2], isr: [1, 3], leader: 1 }, // already preferred
      ],
    },
  });
  const view = liveness([1, 2]);
  const records = planPreferredLeaders(image, view, T0);
  assert.deepEqual(records, [{ type: 'ChangePartition', topic: 'a', partition: 0, leader: 1, trigger: 'preferred', timeMs: T0 }]);
  const after = applyAll(image, records);
  const p0 = partitionOf(after, 'a', 0)!;
  assert.equal(p0.leader, 1);
  assert.deepEqual(p0.isr, [1, 2, 3], 'the ISR is unchanged');
  assert.equal(p0.leaderEpoch, partitionOf(image, 'a', 0)!.leaderEpoch + 1);
  assert.equal(after.failovers.at(-1)!.trigger, 'preferred');
  assert.deepEqual(planPreferredLeaders(after, view, T0), [], 'idempotent');

  // With 3 alive, a-2 moves too; `only` limits the partitions considered.
  assert.deepEqual(planPreferredLeaders(image, liveness([1, 2, 3]), T0).map((r) => r.partition), [0, 2]);
  assert.deepEqual(planPreferredLeaders(image, liveness([1, 2, 3]), T0, new Set(['a-2'])).map((r) => r.partition), [2]);
  assert.deepEqual(planPreferredLeaders(image, liveness([1, 2, 3]), T0, new Set(['b-0'])), []);
});

test('electLeader: a new leader that never reported lacks at most the best reported log end offset', () => {
  const e = electLeader(part([1, 2], [1, 2], 1), liveness([2], { 1: 10 }), { excluded: 1, uncleanAllowed: false, trigger: 'fenced' });
  assert.deepEqual(e, { leader: 2, trigger: 'fenced', lagAtPromotion: 10, recordsLost: 0 });
});
