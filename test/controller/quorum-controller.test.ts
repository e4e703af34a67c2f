import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../common/clock.js';
import { createLogger } from '../../common/logger.js';
import { TributaryError } from '../../protocol/errors.js';
import { EMPTY_IMAGE, applyRecord, type MetadataImage } from '../../protocol/metadata/image.js';
import type { MetadataRecord } from '../../protocol/metadata/records.js';
import { QuorumController, type MetadataLog, type QuorumControllerConfig } from '../../controller/quorum-controller.js';

/** A metadata log that commits every proposal at once, in order, like a healthy quorum. */
class InstantLog implements MetadataLog {
  image: MetadataImage = EMPTY_IMAGE;
  active = true;
  proposed: MetadataRecord[] = [];
  isActive(): boolean {
    return this.active;
  }
  async propose(records: readonly MetadataRecord[]): Promise<number> {
    for (const r of records) {
      this.image = applyRecord(this.image, r, this.image.appliedIndex + 1);
      this.proposed.push(r);
    }
    return this.image.appliedIndex;
  }
}

const CONFIG: QuorumControllerConfig = {
  sessionTimeoutMs: 1000,
  leaseDurationMs: 900,
  autoLeaderRebalance: false,
  topicDefaults: { numPartitions: 1, defaultReplicationFactor: 1, configs: {} },
  producerIdBlockSize: 1000,
};

async function cluster(brokers = 3) {
  const log = new InstantLog();
  const clock = new ManualClock();
  const qc = new QuorumController(log, CONFIG, clock, createLogger('test'));
  const epochs = new Map<number, number>();
  for (let id = 1; id <= brokers; id++) epochs.set(id, await qc.registerBroker({ brokerId: id, incarnationId: `inc-${id}`, listenerUrl: `ws://127.0.0.1:${9000 + id}` }));
  const beat = (id: number, leos: Record<string, number> = {}, wantShutDown = false) =>
    qc.heartbeat({
      brokerId: id, brokerEpoch: epochs.get(id)!, wantShutDown, metadataOffset: log.image.appliedIndex,
      replicas: Object.entries(leos).map(([k, v]) => ({ topic: k.split('-')[0]!, partition: Number(k.split('-')[1]), logEndOffset: v })),
    });
  return { log, clock, qc, epochs, beat };
}

test('a registered broker starts fenced, gets no lease, and is unfenced once caught up', async () => {
  const { log, beat } = await cluster(1);
  assert.equal(log.image.brokers.get(1)!.fenced, true);
  const first = await beat(1);
  assert.equal(log.image.brokers.get(1)!.fenced, false);
  assert.equal(first.isFenced, false, 'unfenced by this heartbeat');
  const second = await beat(1);
  assert.deepEqual(second, { isFenced: false, shouldShutDown: false, leaseDurationMs: 900 });
});

test('a silent leader is fenced after the session timeout, not before, and the most complete ISR member leads', async () => {
  const { log, clock, qc, beat } = await cluster(3);
  for (const id of [1, 2, 3]) await beat(id);
  await qc.createTopic({ name: 't', numPartitions: 1, replicationFactor: 3, configs: {} }, false);
  const leader = log.image.topics.get('t')!.partitions[0]!.leader;
  const others = [1, 2, 3].filter((id) => id !== leader);
  // The follower with the larger id has the longer log: it must win despite the higher id.
  await beat(others[0]!, { 't-0': 5 });
  await beat(others[1]!, { 't-0': 7 });
  clock.advance(600);
  for (const id of others) await beat(id);
  clock.advance(500); // leader silent 1100 ms in all, but others heard 500 ms ago
  // 1100 ms > session: fenced now.
  await qc.checkSessions();
  const p = log.image.topics.get('t')!.partitions[0]!;
  assert.equal(log.image.brokers.get(leader)!.fenced, true);
  assert.equal(p.leader, others[1]);
  assert.equal(p.leaderEpoch, 1);
  assert.deepEqual([...p.isr].sort(), others.slice().sort());
  const last = log.image.failovers.at(-1)!;
  assert.equal(last.trigger, 'fenced');
  assert.equal(last.oldLeader, leader);
});

test('no broker is fenced before a full session has passed since the controller became active', async () => {
  const { log, clock, qc, beat } = await cluster(2);
  for (const id of [1, 2]) await beat(id);
  // Lose and regain activity: the new term resets liveness to "heard from now".
  log.active = false;
  await qc.checkSessions();
  clock.advance(5000); // long silence while another controller was active
  log.active = true;
  await qc.checkSessions();
  assert.equal(log.image.brokers.get(1)!.fenced, false, 'not fenced: its lease from the previous controller may still run');
  clock.advance(1001);
  await qc.checkSessions();
  assert.equal(log.image.brokers.get(1)!.fenced, true);
});

test('controlled shutdown moves leadership away before the broker is told to stop', async () => {
  const { log, qc, beat } = await cluster(3);
  for (const id of [1, 2, 3]) await beat(id);
  await qc.createTopic({ name: 'c', numPartitions: 3, replicationFactor: 3, configs: {} }, false);
  const reply = await beat(1, {}, true);
  assert.equal(reply.shouldShutDown, true);
  assert.equal(reply.leaseDurationMs, 0);
  for (const p of log.image.topics.get('c')!.partitions) {
    assert.notEqual(p.leader, 1);
    assert.ok(!p.isr.includes(1));
  }
  assert.ok(log.image.failovers.some((f) => f.trigger === 'controlled_shutdown'));
});

test('a second incarnation cannot register while the first one is unfenced', async () => {
  const { qc, beat } = await cluster(1);
  await beat(1);
  await assert.rejects(qc.registerBroker({ brokerId: 1, incarnationId: 'other', listenerUrl: 'ws://x:1' }), (e: unknown) => e instanceof TributaryError && e.code === 'BROKER_NOT_AVAILABLE');
  // The same incarnation retrying gets its epoch back.
  const again = await qc.registerBroker({ brokerId: 1, incarnationId: 'inc-1', listenerUrl: 'ws://127.0.0.1:9001' });
  assert.equal(again, 1);
});

test('a stale broker epoch is refused; an inactive controller answers NOT_CONTROLLER', async () => {
  const { log, qc } = await cluster(1);
  await assert.rejects(qc.heartbeat({ brokerId: 1, brokerEpoch: 99, wantShutDown: false, metadataOffset: 0, replicas: [] }), (e: unknown) => e instanceof TributaryError && e.code === 'STALE_BROKER_EPOCH');
  log.active = false;
  await assert.rejects(qc.createTopic({ name: 'x', numPartitions: 1, replicationFactor: 1, configs: {} }, false), (e: unknown) => e instanceof TributaryError && e.code === 'NOT_CONTROLLER');
});

test('a lease longer than the session allows is refused at start-up', () => {
  assert.throws(() => new QuorumController(new InstantLog(), { ...CONFIG, leaseDurationMs: 990 }, new ManualClock(), createLogger('test')), /INVALID_CONFIG/);
});

test('concurrent requests are decided one after another: one CreateTopics wins, producer-id blocks never overlap', async () => {
  const { log, qc, beat } = await cluster(3);
  for (const id of [1, 2, 3]) await beat(id);
  // InstantLog applies at once, so make proposals resolve a turn later, as a real quorum would.
  const realPropose = log.propose.bind(log);
  log.propose = async (records) => {
    await new Promise((r) => setImmediate(r));
    return realPropose(records);
  };
  const results = await Promise.allSettled([1, 2, 3].map(() => qc.createTopic({ name: 'same', numPartitions: 1, replicationFactor: 1, configs: {} }, false)));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as TributaryError).code, 'TOPIC_ALREADY_EXISTS');
  const blocks = await Promise.all([1, 2, 3, 1, 2].map((id) => qc.allocateProducerIds(id)));
  const starts = blocks.map((b) => b.firstProducerId).sort((a, b) => a - b);
  assert.deepEqual(starts, [1, 1001, 2001, 3001, 4001]);
  assert.equal(log.image.nextProducerId, 5001);
});
