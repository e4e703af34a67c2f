/**
 * A model test of the controller's metadata decisions: random sequences of cluster events are
 * planned with the decisions in controller/metadata, folded through applyRecord, and the image is
 * checked after every single record.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TributaryError } from '../../protocol/errors.js';
import { EMPTY_IMAGE, applyRecord, imageFromSnapshot, snapshotOf, type MetadataImage, type PartitionImage } from '../../protocol/metadata/image.js';
import type { ChangePartitionRecord, MetadataRecord } from '../../protocol/metadata/records.js';
import { topicConfigValue } from '../../protocol/metadata/topic-config.js';
import {
  planAlterPartition,
  planCreateTopic,
  planFenceBroker,
  planPreferredLeaders,
  planRecoverOffline,
  type LivenessView,
} from '../../controller/metadata/decisions.js';

const T0 = 1_700_000_000_000;
const BROKER_IDS = [1, 2, 3, 4, 5] as const;

type Event =
  | { kind: 'register'; broker: number }
  | { kind: 'unfence'; broker: number }
  | { kind: 'fence'; broker: number; shutdown: boolean }
  | { kind: 'expire'; broker: number }
  | { kind: 'heartbeat'; broker: number }
  | { kind: 'create'; partitions: number; rf: number; unclean: boolean }
  | { kind: 'delete'; topic: number }
  | { kind: 'produce'; topic: number; partition: number; records: number; replicate: boolean[] }
  | { kind: 'alter'; topic: number; partition: number; members: boolean[] }
  | { kind: 'preferred' };

const broker = fc.constantFrom(...BROKER_IDS);
const eventArb: fc.Arbitrary<Event> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('register' as const), broker }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('unfence' as const), broker }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('fence' as const), broker, shutdown: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('expire' as const), broker }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('heartbeat' as const), broker }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('create' as const), partitions: fc.integer({ min: 1, max: 4 }), rf: fc.integer({ min: 1, max: 4 }), unclean: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), topic: fc.nat(9) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('produce' as const), topic: fc.nat(9), partition: fc.nat(3), records: fc.integer({ min: 1, max: 50 }), replicate: fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('alter' as const), topic: fc.nat(9), partition: fc.nat(3), members: fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'preferred' as const }) },
);

class Model {
  image: MetadataImage = EMPTY_IMAGE;
  time = T0;
  topicSeq = 0;
  incarnationSeq = 0;
  /** Log end offsets reported by each replica: `${topicId}/${partition}/${broker}`. */
  readonly leos = new Map<string, number>();
  /** Highest epochs seen per `${topicId}/${partition}`: must never go down. */
  readonly epochs = new Map<string, { leaderEpoch: number; partitionEpoch: number }>();
  recordsApplied = 0;
  /**
   * Brokers whose session has expired in the active controller's memory but that are not fenced
   * yet: dead to the liveness view while the image still shows them unfenced.
   */
  readonly expired = new Set<number>();

  readonly liveness: LivenessView = {
    isAlive: (id) => this.image.brokers.get(id)?.fenced === false && !this.expired.has(id),
    logEndOffset: (id, topic, partition) => {
      const t = this.image.topics.get(topic);
      return t === undefined ? undefined : this.leos.get(`${t.topicId}/${partition}/${id}`);
    },
  };

  leo(p: PartitionImage, id: number): number {
    return this.liveness.logEndOffset(id, p.topic, p.partition) ?? -1;
  }

  partitionAt(topicIdx: number, partition: number): PartitionImage | undefined {
    const topics = [...this.image.topics.values()];
    if (topics.length === 0) return undefined;
    const t = topics[topicIdx % topics.length]!;
    return t.partitions[partition % t.partitions.length];
  }

  apply(records: readonly MetadataRecord[]): void {
    for (const record of records) {
      const before = this.image;
      const after = applyRecord(before, record, before.appliedIndex + 1);
      this.image = after;
      this.recordsApplied++;
      this.check(before, after, record);
    }
    this.checkNoFencedLeader();
  }

  /** Check the decisions of a clean or unclean election against what was known when planning. */
  checkElections(pre: MetadataImage, records: readonly MetadataRecord[], excluded?: number): void {
    for (const r of records) {
      if (r.type !== 'ChangePartition' || r.leader === undefined || r.leader === -1) continue;
      const topic = pre.topics.get(r.topic)!;
      const p = topic.partitions[r.partition]!;
      if (r.leader === p.leader) continue;
      assert.ok(this.liveness.isAlive(r.leader), `elected broker ${r.leader} for ${r.topic}-${r.partition} is not alive`);
      assert.notEqual(r.leader, excluded, 'the fenced broker was re-elected');
      assert.ok(p.replicas.includes(r.leader), `elected ${r.leader} is not a replica of ${r.topic}-${r.partition}`);
      const liveIsr = p.isr.filter((id) => id !== excluded && this.liveness.isAlive(id));
      if (r.trigger === 'unclean') {
        assert.equal(topicConfigValue(topic.configs, 'unclean.leader.election.enable'), 'true', 'unclean election on a clean topic');
        assert.equal(liveIsr.length, 0, `unclean election of ${r.leader} while ISR members [${liveIsr}] were alive`);
        assert.deepEqual(r.isr, [r.leader]);
        const isrBest = Math.max(-1, ...p.isr.map((id) => this.leo(p, id)));
        assert.equal(r.recordsLost, Math.max(0, isrBest - Math.max(0, this.leo(p, r.leader))));
      } else if (r.trigger === 'preferred') {
        assert.equal(r.leader, p.replicas[0]);
        assert.ok(p.isr.includes(r.leader));
      } else {
        assert.ok(p.isr.includes(r.leader), `clean election of out-of-sync ${r.leader} (ISR [${p.isr}])`);
        assert.equal(r.recordsLost ?? 0, 0);
        for (const id of liveIsr) {
          const mine = this.leo(p, r.leader);
          const theirs = this.leo(p, id);
          assert.ok(mine > theirs || (mine === theirs && r.leader <= id), `elected ${r.leader} (LEO ${mine}) over ${id} (LEO ${theirs})`);
        }
      }
    }
  }

  check(before: MetadataImage, after: MetadataImage, record: MetadataRecord): void {
    let leaderChanges: Array<{ p: PartitionImage; oldLeader: number }> = [];
    for (const topic of after.topics.values()) {
      const prevTopic = before.topics.get(topic.name);
      for (const p of topic.partitions) {
        const where = `${p.topic}-${p.partition} after ${JSON.stringify(record)}`;
        assert.ok(p.isr.length > 0, `${where}: empty ISR`);
        assert.equal(new Set(p.isr).size, p.isr.length, `${where}: duplicate in ISR [${p.isr}]`);
        for (const id of p.isr) assert.ok(p.replicas.includes(id), `${where}: ISR member ${id} not a replica`);
        if (p.leader !== -1) {
          assert.ok(p.isr.includes(p.leader), `${where}: leader ${p.leader} not in ISR [${p.isr}]`);
          assert.ok(p.replicas.includes(p.leader), `${where}: leader ${p.leader} not a replica`);
        }
        const key = `${topic.topicId}/${p.partition}`;
        const seen = this.epochs.get(key);
        if (seen !== undefined) {
          assert.ok(p.leaderEpoch >= seen.leaderEpoch, `${where}: leader epoch went down`);
          assert.ok(p.partitionEpoch >= seen.partitionEpoch, `${where}: partition epoch went down`);
        }
        this.epochs.set(key, { leaderEpoch: p.leaderEpoch, partitionEpoch: p.partitionEpoch });

        const prev = prevTopic?.topicId === topic.topicId ? prevTopic.partitions[p.partition] : undefined;
        if (prev === undefined) {
          assert.equal(p.leaderEpoch, 0);
          assert.equal(p.partitionEpoch, 0);
          if (p.leader !== -1) leaderChanges.push({ p, oldLeader: -1 });
          continue;
        }
        const touched = record.type === 'ChangePartition' && record.topic === p.topic && record.partition === p.partition;
        if (touched) {
          assert.equal(p.partitionEpoch, prev.partitionEpoch + 1, `${where}: partition epoch must bump`);
        } else {
          assert.equal(p, prev, `${where}: a partition the record does not name changed`);
        }
        if (p.leader !== prev.leader) {
          assert.equal(p.leaderEpoch, prev.leaderEpoch + 1, `${where}: leader epoch must bump on a leader change`);
          leaderChanges.push({ p, oldLeader: prev.leader });
        } else {
          assert.equal(p.leaderEpoch, prev.leaderEpoch, `${where}: leader epoch bumped without a leader change`);
        }
      }
    }
    // The failover log grows by exactly one entry per leader change, describing it.
    assert.equal(after.failovers.length, before.failovers.length + leaderChanges.length, `failover log after ${JSON.stringify(record)}`);
    const added = after.failovers.slice(before.failovers.length);
    leaderChanges = leaderChanges.sort((a, b) => a.p.topic.localeCompare(b.p.topic) || a.p.partition - b.p.partition);
    const sortedAdded = [...added].sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
    sortedAdded.forEach((entry, i) => {
      const { p, oldLeader } = leaderChanges[i]!;
      assert.equal(entry.index, after.appliedIndex);
      assert.equal(entry.topic, p.topic);
      assert.equal(entry.partition, p.partition);
      assert.equal(entry.oldLeader, oldLeader);
      assert.equal(entry.newLeader, p.leader);
      assert.equal(entry.leaderEpoch, p.leaderEpoch);
      if (p.leader === -1) assert.equal(entry.trigger, 'offline');
    });
  }

  checkNoFencedLeader(): void {
    for (const topic of this.image.topics.values()) {
      for (const p of topic.partitions) {
        if (p.leader === -1) continue;
        const b = this.image.brokers.get(p.leader);
        assert.ok(b !== undefined && !b.fenced, `${p.topic}-${p.partition} is led by fenced broker ${p.leader}`);
      }
    }
  }

  fence(id: number, reason: 'session_timeout' | 'reregistered' | 'controlled_shutdown'): void {
    const pre = this.image;
    const records = planFenceBroker(pre, id, reason, this.liveness, this.time);
    this.checkElections(pre, records, id);
    this.apply(records);
    for (const topic of this.image.topics.values()) {
      for (const p of topic.partitions) {
        if (p.isr.includes(id)) assert.deepEqual(p.isr, [id], `fenced ${id} stays only as the last ISR member of ${p.topic}-${p.partition}`);
        if (p.isr.includes(id)) assert.equal(p.leader, -1);
      }
    }
  }

  step(event: Event): void {
    this.time += 10;
    switch (event.kind) {
      case 'register': {
        // A restart: the old registration is fenced first (its partitions move), then the new one.
        if (this.image.brokers.has(event.broker)) this.fence(event.broker, 'reregistered');
        this.apply([{ type: 'RegisterBroker', brokerId: event.broker, incarnationId: `inc-${++this.incarnationSeq}`, address: `ws://127.0.0.1:${9000 + event.broker}`, timeMs: this.time }]);
        return;
      }
      case 'unfence': {
        const b = this.image.brokers.get(event.broker);
        if (b === undefined || !b.fenced) return;
        this.expired.delete(b.brokerId);
        this.apply([{ type: 'UnfenceBroker', brokerId: b.brokerId, brokerEpoch: b.brokerEpoch, timeMs: this.time }]);
        const pre = this.image;
        const records = planRecoverOffline(pre, this.liveness, this.time);
        this.checkElections(pre, records);
        for (const r of records) assert.equal(pre.topics.get(r.topic)!.partitions[r.partition]!.leader, -1);
        this.apply(records);
        return;
      }
      case 'fence':
        this.fence(event.broker, event.shutdown ? 'controlled_shutdown' : 'session_timeout');
        return;
      case 'expire':
        if (this.image.brokers.get(event.broker)?.fenced === false) this.expired.add(event.broker);
        return;
      case 'heartbeat': {
        if (!this.expired.delete(event.broker)) return;
        const pre = this.image;
        const records = planRecoverOffline(pre, this.liveness, this.time);
        this.checkElections(pre, records);
        this.apply(records);
        return;
      }
      case 'create': {
        const name = `t${++this.topicSeq}`;
        const configs: Record<string, string> = event.unclean ? { 'unclean.leader.election.enable': 'true' } : {};
        const live = [...this.image.brokers.values()].filter((b) => !b.fenced).length;
        let record;
        try {
          record = planCreateTopic(this.image, { name, numPartitions: event.partitions, replicationFactor: event.rf, configs }, { numPartitions: 1, defaultReplicationFactor: 1, configs: {} }, `id-${name}`, this.time);
        } catch (error) {
          assert.ok(error instanceof TributaryError && error.code === 'INVALID_REPLICATION_FACTOR', String(error));
          assert.ok(event.rf > live);
          return;
        }
        assert.ok(event.rf <= live);
        for (const leader of record.leaders) assert.equal(this.image.brokers.get(leader)?.fenced, false);
        this.apply([record]);
        return;
      }
      case 'delete': {
        const topics = [...this.image.topics.keys()];
        if (topics.length === 0) return;
        this.apply([{ type: 'DeleteTopic', name: topics[event.topic % topics.length]!, timeMs: this.time }]);
        return;
      }
      case 'produce': {
        const p = this.partitionAt(event.topic, event.partition);
        if (p === undefined || p.leader === -1) return;
        const topicId = this.image.topics.get(p.topic)!.topicId;
        const leaderLeo = Math.max(0, this.leo(p, p.leader)) + event.records;
        this.leos.set(`${topicId}/${p.partition}/${p.leader}`, leaderLeo);
        p.replicas.forEach((id, i) => {
          if (id !== p.leader && event.replicate[i] === true && this.liveness.isAlive(id)) this.leos.set(`${topicId}/${p.partition}/${id}`, leaderLeo);
        });
        return;
      }
      case 'alter': {
        const p = this.partitionAt(event.topic, event.partition);
        if (p === undefined || p.leader === -1) return;
        const newIsr = p.replicas.filter((id, i) => id === p.leader || event.members[i] === true);
        const leaderBroker = this.image.brokers.get(p.leader)!;
        const request = { brokerId: p.leader, brokerEpoch: leaderBroker.brokerEpoch, topic: p.topic, partition: p.partition, leaderEpoch: p.leaderEpoch, partitionEpoch: p.partitionEpoch, newIsr };
        let record: ChangePartitionRecord | null;
        try {
          record = planAlterPartition(this.image, request, this.liveness, this.time);
        } catch (error) {
          assert.ok(error instanceof TributaryError && error.code === 'INELIGIBLE_REPLICA', String(error));
          assert.ok(newIsr.some((id) => !p.isr.includes(id) && !this.liveness.isAlive(id)));
          return;
        }
        if (record === null) {
          assert.deepEqual([...newIsr].sort(), [...p.isr].sort());
          return;
        }
        assert.equal(record.leader, undefined, 'AlterPartition never moves leadership');
        this.apply([record]);
        // A retry of the same request is now stale.
        assert.throws(() => planAlterPartition(this.image, request, this.liveness, this.time), (e: unknown) => e instanceof TributaryError && e.code === 'INVALID_UPDATE_VERSION');
        return;
      }
      case 'preferred': {
        const pre = this.image;
        const records = planPreferredLeaders(pre, this.liveness, this.time);
        this.checkElections(pre, records);
        this.apply(records);
        assert.deepEqual(planPreferredLeaders(this.image, this.liveness, this.time), []);
        return;
      }
    }
  }
}

test('model: random cluster histories keep every partition invariant after every record', () => {
  let recordsApplied = 0;
  let leaderChanges = 0;
  let unclean = 0;
  let offline = 0;
  fc.assert(
    fc.property(fc.array(eventArb, { minLength: 40, maxLength: 120, size: 'max' }), (events) => {
      const model = new Model();
      for (const event of events) model.step(event);
      // The final image survives a snapshot round trip through JSON.
      assert.deepStrictEqual(imageFromSnapshot(JSON.parse(JSON.stringify(snapshotOf(model.image)))), model.image);
      recordsApplied += model.recordsApplied;
      leaderChanges += model.image.failovers.length;
      unclean += model.image.failovers.filter((f) => f.trigger === 'unclean').length;
      offline += model.image.failovers.filter((f) => f.trigger === 'offline').length;
    }),
    // MODEL_RUNS=20000 for a longer hunt; a failure prints the seed and path to replay it.
    { numRuns: Number(process.env['MODEL_RUNS'] ?? 300) },
  );
  // The generator must actually reach the interesting states, or the test proves little.
  if (process.env['MODEL_STATS'] !== undefined) console.log({ recordsApplied, leaderChanges, unclean, offline });
  assert.ok(recordsApplied > 5_000, `records applied: ${recordsApplied}`);
  assert.ok(leaderChanges > 500, `leader changes: ${leaderChanges}`);
  assert.ok(unclean > 10, `unclean elections: ${unclean}`);
  assert.ok(offline > 50, `offline transitions: ${offline}`);
});

test('model: a scripted history — fence the leader, lose the whole ISR, recover, rebalance', () => {
  const model = new Model();
  for (const b of [1, 2, 3]) model.step({ kind: 'register', broker: b });
  for (const b of [1, 2, 3]) model.step({ kind: 'unfence', broker: b });
  model.step({ kind: 'create', partitions: 3, rf: 3, unclean: false });
  model.step({ kind: 'produce', topic: 0, partition: 0, records: 10, replicate: [false, true, false, false, false] });
  model.step({ kind: 'fence', broker: 1, shutdown: false });
  const p0 = model.image.topics.get('t1')!.partitions[0]!;
  assert.equal(p0.leader, 2, 'broker 2 had replicated everything');
  model.step({ kind: 'fence', broker: 2, shutdown: false });
  model.step({ kind: 'fence', broker: 3, shutdown: false });
  for (const p of model.image.topics.get('t1')!.partitions) assert.equal(p.leader, -1);
  model.step({ kind: 'register', broker: 1 });
  model.step({ kind: 'unfence', broker: 1 });
  for (const p of model.image.topics.get('t1')!.partitions) assert.equal(p.leader, -1, 'broker 1 left every ISR; it cannot lead cleanly');
  model.step({ kind: 'register', broker: 3 });
  model.step({ kind: 'unfence', broker: 3 });
  for (const p of model.image.topics.get('t1')!.partitions) assert.equal(p.leader, 3, `${p.topic}-${p.partition}: the last ISR member is back`);
  model.step({ kind: 'alter', topic: 0, partition: 0, members: [true, true, true, true, true] });
  assert.deepEqual(model.image.topics.get('t1')!.partitions[0]!.isr, [3], 'fenced broker 2 cannot join');
  model.step({ kind: 'alter', topic: 0, partition: 0, members: [true, false, true, false, false] });
  assert.deepEqual(model.image.topics.get('t1')!.partitions[0]!.isr, [1, 3]);
  model.step({ kind: 'preferred' });
  assert.equal(model.image.topics.get('t1')!.partitions[0]!.leader, 1);
  assert.deepEqual(model.image.failovers.map((f) => `${f.partition}:${f.oldLeader}->${f.newLeader}:${f.trigger}`).filter((s) => s.startsWith('0:')), [
    '0:-1->1:created',
    '0:1->2:fenced',
    '0:2->3:fenced',
    '0:3->-1:offline',
    '0:-1->3:recovered',
    '0:3->1:preferred',
  ]);
});
