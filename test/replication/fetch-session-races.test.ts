/**
 * Fetch sessions at a ReplicaManager, in the races a review found: an error that clears while a
 * session's fetch is parked (a follower that learned a new leader epoch first, a partition created
 * while the fetch waits), a small maxBytes shared out in turn, a partition named twice, and an
 * error answered at once rather than at the fetch's deadline.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import pino from 'pino';
import { ManualClock } from '../../common/clock.js';
import { loadBrokerConfig } from '../../broker/config.js';
import type { ControllerLink } from '../../broker/controller-link.js';
import { createBrokerMetrics } from '../../broker/metrics.js';
import { ReplicaManager } from '../../broker/replica-manager.js';
import type { FetchRequest, FetchResponse } from '../../protocol/apis/fetch.js';
import { ERRORS } from '../../protocol/errors.js';
import { EMPTY_IMAGE, type MetadataImage, type TopicImage } from '../../protocol/metadata/image.js';
import { waitFor } from '../../common/wait.js';
import { makeBatch } from '../log/helpers.js';

const ME = 1;
const FOLLOWER = 2;
const TOPIC = 't';

interface Named {
  topic?: string;
  partition: number;
  fetchOffset: number;
  currentLeaderEpoch?: number;
  lastFetchedEpoch?: number;
}

function topicImage(name: string, partitions: number, epochs: Record<number, number> = {}, configs: Record<string, string> = {}): TopicImage {
  return {
    name, topicId: `id-${name}`, configs, createdAtMs: 0,
    partitions: Array.from({ length: partitions }, (_, i) => ({ topic: name, partition: i, replicas: [ME, FOLLOWER], isr: [ME, FOLLOWER], leader: ME, leaderEpoch: epochs[i] ?? 0, partitionEpoch: epochs[i] ?? 0 })),
  };
}

interface AlterPartitionBody {
  topics: Array<{ topic: string; partitions: Array<{ partitionIndex: number; leaderEpoch: number; newIsr: number[]; partitionEpoch: number }> }>;
}

function setup(t: TestContext, partitions: number, options: { acceptIsrChanges?: boolean; configs?: Record<string, string> } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-session-races-'));
  const config = { ...loadBrokerConfig({ id: ME, listen: '127.0.0.1:0', controllers: '1@127.0.0.1:1', data: dir }), replicaHighWatermarkLingerMs: 0, replicaLagTimeMaxMs: 1000 };
  const clock = new ManualClock(1_000_000);
  let image: MetadataImage = { ...EMPTY_IMAGE, appliedIndex: 1, topics: new Map([[TOPIC, topicImage(TOPIC, partitions, {}, options.configs)]]) };
  const alterPartitions: AlterPartitionBody[] = [];
  const controllerChannel = {
    request: async (_key: number, body: AlterPartitionBody) => {
      alterPartitions.push(body);
      if (options.acceptIsrChanges !== true) throw new Error('no controller in this test');
      return { topics: body.topics.map((tp) => ({ topic: tp.topic, partitions: tp.partitions.map((pp) => ({ partitionIndex: pp.partitionIndex, errorCode: 0, leaderId: ME, leaderEpoch: pp.leaderEpoch, isr: pp.newIsr, partitionEpoch: pp.partitionEpoch + 1 })) })) };
    },
  };
  const link = { hasLease: () => true, get image() { return image; }, caughtUp: true, brokerEpoch: 1, controllerChannel } as unknown as ControllerLink;
  const rm = new ReplicaManager(config, clock, pino({ level: 'silent' }), link, createBrokerMetrics(ME), () => undefined);
  rm.reconcile(image);
  t.after(async () => {
    await rm.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const setTopics = (topics: TopicImage[]) => {
    image = { ...image, appliedIndex: image.appliedIndex + 1, topics: new Map(topics.map((x) => [x.name, x])) };
    rm.reconcile(image);
  };
  const produce = async (partition: number, epoch = 0) => {
    const r = await rm.produce({ transactionalId: null, acks: 1, timeoutMs: 1000, topicData: [{ name: TOPIC, partitionData: [{ index: partition, currentLeaderEpoch: epoch, records: makeBatch() }] }] });
    assert.equal(r.responses[0]!.partitionResponses[0]!.errorCode, 0);
  };
  const fetch = (named: Named[], session: { sessionId: number; sessionEpoch: number }, o: { maxWaitMs?: number; maxBytes?: number; connectionId?: number; signal?: AbortSignal } = {}) => {
    const byTopic = new Map<string, FetchRequest['topics'][number]['partitions']>();
    for (const p of named) {
      const topic = p.topic ?? TOPIC;
      let list = byTopic.get(topic);
      if (list === undefined) byTopic.set(topic, (list = []));
      list.push({ partition: p.partition, currentLeaderEpoch: p.currentLeaderEpoch ?? 0, fetchOffset: p.fetchOffset, lastFetchedEpoch: p.lastFetchedEpoch ?? -1, logStartOffset: 0, partitionMaxBytes: 1 << 20 });
    }
    return rm.fetch(
      { replicaId: FOLLOWER, replicaEpoch: 1, maxWaitMs: o.maxWaitMs ?? 0, minBytes: 1, maxBytes: o.maxBytes ?? 1 << 20, topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })), sessionId: session.sessionId, sessionEpoch: session.sessionEpoch },
      { signal: o.signal ?? new AbortController().signal, connectionId: o.connectionId ?? 1 },
    );
  };
  const checkIsr = () => (rm as unknown as { checkIsr(): Promise<void> }).checkIsr();
  return { rm, clock, produce, fetch, setTopics, alterPartitions, checkIsr };
}

function answered(r: FetchResponse, topic = TOPIC): Map<number, FetchResponse['responses'][number]['partitions'][number]> {
  return new Map((r.responses.find((x) => x.topic === topic)?.partitions ?? []).map((p) => [p.partitionIndex, p]));
}

/** Let a fetch reach its wait (it parks after its first pass, in a later tick). */
const parked = () => new Promise((r) => setImmediate(r));

test('a follower that named a leader epoch before the leader knew it is counted once the leader catches up', async (t) => {
  const h = setup(t, 2);
  await h.produce(1);
  const id = (await h.fetch([{ partition: 0, fetchOffset: 0 }, { partition: 1, fetchOffset: 0 }], { sessionId: 0, sessionEpoch: 0 })).sessionId!;
  const waiting = h.fetch([{ partition: 1, fetchOffset: 1, currentLeaderEpoch: 1 }], { sessionId: id, sessionEpoch: 1 }, { maxWaitMs: 300 });
  await parked();
  h.setTopics([topicImage(TOPIC, 2, { 1: 1 })]); // the leader applies epoch 1 while the fetch waits
  // Either answer is fine (the error at once, or the epoch's answer after the wake); what matters follows.
  const first = answered(await waiting).get(1);
  let epoch = 2;
  if (first !== undefined && first.errorCode !== 0) await h.fetch([{ partition: 1, fetchOffset: 1, currentLeaderEpoch: 1 }], { sessionId: id, sessionEpoch: epoch++ });
  for (let i = 0; i < 3; i++) {
    h.clock.advance(400);
    await h.fetch([], { sessionId: id, sessionEpoch: epoch++ });
    await h.checkIsr();
  }
  const part = h.rm.partitions.get(`${TOPIC}-1`)!;
  assert.deepEqual(
    { followerLogEndOffset: part.leaderState!.follower(FOLLOWER)!.logEndOffset, highWatermark: part.log.highWatermark, isrProposals: h.alterPartitions.length },
    { followerLogEndOffset: 1, highWatermark: 1, isrProposals: 0 },
  );
});

test('the epoch race does not cost an idle partition its follower (min.insync.replicas=2 keeps taking writes)', async (t) => {
  const h = setup(t, 2, { acceptIsrChanges: true, configs: { 'min.insync.replicas': '2' } });
  const id = (await h.fetch([{ partition: 0, fetchOffset: 0 }, { partition: 1, fetchOffset: 0 }], { sessionId: 0, sessionEpoch: 0 })).sessionId!;
  let epoch = 1;
  const waiting = h.fetch([{ partition: 1, fetchOffset: 0, currentLeaderEpoch: 1 }], { sessionId: id, sessionEpoch: epoch++ }, { maxWaitMs: 300 });
  await parked();
  h.setTopics([topicImage(TOPIC, 2, { 1: 1 }, { 'min.insync.replicas': '2' })]);
  if ((answered(await waiting).get(1)?.errorCode ?? 0) !== 0) await h.fetch([{ partition: 1, fetchOffset: 0, currentLeaderEpoch: 1 }], { sessionId: id, sessionEpoch: epoch++ });
  for (let i = 0; i < 25; i++) {
    h.clock.advance(400);
    await h.fetch([], { sessionId: id, sessionEpoch: epoch++ });
    await h.checkIsr();
  }
  const part = h.rm.partitions.get(`${TOPIC}-1`)!;
  const r = await h.rm.produce({ transactionalId: null, acks: -1, timeoutMs: 50, topicData: [{ name: TOPIC, partitionData: [{ index: 1, currentLeaderEpoch: 1, records: makeBatch() }] }] });
  const code = r.responses[0]!.partitionResponses[0]!.errorCode; // REQUEST_TIMED_OUT is fine: nobody fetches the new record
  assert.deepEqual({ isr: [...part.leaderState!.isr].sort(), notEnoughReplicas: code === ERRORS.NOT_ENOUGH_REPLICAS.code }, { isr: [1, 2], notEnoughReplicas: false });
});

test('a partition unknown when named and created while the session waits is counted once served', async (t) => {
  const h = setup(t, 1);
  const id = (await h.fetch([{ partition: 0, fetchOffset: 0 }], { sessionId: 0, sessionEpoch: 0 })).sessionId!;
  const waiting = h.fetch([{ topic: 'new', partition: 0, fetchOffset: 0 }], { sessionId: id, sessionEpoch: 1 }, { maxWaitMs: 300 });
  await parked();
  h.setTopics([topicImage(TOPIC, 1), topicImage('new', 1)]);
  let epoch = 2;
  if ((answered(await waiting, 'new').get(0)?.errorCode ?? 0) !== 0) await h.fetch([{ topic: 'new', partition: 0, fetchOffset: 0 }], { sessionId: id, sessionEpoch: epoch++ });
  for (let i = 0; i < 3; i++) {
    h.clock.advance(400);
    await h.fetch([], { sessionId: id, sessionEpoch: epoch++ });
    await h.checkIsr();
  }
  assert.deepEqual(h.alterPartitions, []);
});

test('with a small maxBytes the partitions with a backlog are served in turn', async (t) => {
  const h = setup(t, 2);
  for (let i = 0; i < 5; i++) {
    await h.produce(0);
    await h.produce(1);
  }
  let r = await h.fetch([{ partition: 0, fetchOffset: 0 }, { partition: 1, fetchOffset: 0 }], { sessionId: 0, sessionEpoch: 0 }, { maxBytes: 1 });
  const id = r.sessionId!;
  const offsets = [0, 0];
  const served: number[] = [];
  for (let epoch = 1; epoch <= 4; epoch++) {
    const named: Named[] = [];
    for (const [p, out] of answered(r)) {
      if (out.records === null || out.records.length === 0) continue;
      served.push(p);
      offsets[p]! += 1;
      named.push({ partition: p, fetchOffset: offsets[p]! });
    }
    r = await h.fetch(named, { sessionId: id, sessionEpoch: epoch }, { maxBytes: 1 });
  }
  assert.ok(served.includes(0) && served.includes(1), `both partitions served: ${JSON.stringify(served)}`);
});

test('a partition named twice in a full request leaves no listener behind once the session is gone', async (t) => {
  const h = setup(t, 1);
  const closing = new AbortController();
  await h.fetch([{ partition: 0, fetchOffset: 0 }, { partition: 0, fetchOffset: 0 }], { sessionId: 0, sessionEpoch: 0 }, { signal: closing.signal, connectionId: 9 });
  closing.abort();
  assert.equal(h.rm.fetchSessionCount, 0);
  assert.equal(h.rm.partitions.get(`${TOPIC}-0`)!.sessionTargets.size, 0);
});

test('a diverging epoch is answered at once, not at the deadline, when the session\'s other partitions are quiet', async (t) => {
  const h = setup(t, 2);
  const id = (await h.fetch([{ partition: 0, fetchOffset: 0 }, { partition: 1, fetchOffset: 0 }], { sessionId: 0, sessionEpoch: 0 })).sessionId!;
  let answer: FetchResponse | undefined;
  // With a ManualClock the deadline never passes: only an immediate answer can arrive.
  void h.fetch([{ partition: 1, fetchOffset: 0, lastFetchedEpoch: 5 }], { sessionId: id, sessionEpoch: 1 }, { maxWaitMs: 60_000 }).then((r) => (answer = r));
  await waitFor('the fetch to answer', () => answer !== undefined, { timeoutMs: 5000 });
  assert.ok(answered(answer!).get(1)?.divergingEpoch !== undefined);
});
