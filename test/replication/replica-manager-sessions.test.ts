/**
 * The leader's side of fetch sessions, on a ReplicaManager without processes or sockets: a new
 * session's first answer speaks of every partition (the high watermark goes out again), an
 * answer to a closed connection does not count as sent, a session opened on a closed connection
 * does not stay, and a quiet session partition keeps its follower caught up for the ISR.
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
import { EMPTY_IMAGE, type MetadataImage } from '../../protocol/metadata/image.js';
import { makeBatch } from '../log/helpers.js';

const ME = 1;
const FOLLOWER = 2;
const TOPIC = 't';

function setup(t: TestContext, partitions: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-rm-sessions-'));
  const config = { ...loadBrokerConfig({ id: ME, listen: '127.0.0.1:0', controllers: '1@127.0.0.1:1', data: dir }), replicaHighWatermarkLingerMs: 0, replicaLagTimeMaxMs: 1000 };
  const clock = new ManualClock(1_000_000);
  const image: MetadataImage = {
    ...EMPTY_IMAGE,
    appliedIndex: 1,
    topics: new Map([[TOPIC, {
      name: TOPIC, topicId: 'id', configs: {}, createdAtMs: 0,
      partitions: Array.from({ length: partitions }, (_, i) => ({ topic: TOPIC, partition: i, replicas: [ME, FOLLOWER], isr: [ME, FOLLOWER], leader: ME, leaderEpoch: 0, partitionEpoch: 0 })),
    }]]),
  };
  // Every ISR change the manager asks the controller for (the test's controller refuses them all).
  const alterPartitions: unknown[] = [];
  const controllerChannel = { request: async (_key: number, body: unknown) => { alterPartitions.push(body); throw new Error('no controller in this test'); } };
  const link = { hasLease: () => true, image, caughtUp: true, brokerEpoch: 1, controllerChannel } as unknown as ControllerLink;
  const rm = new ReplicaManager(config, clock, pino({ level: 'silent' }), link, createBrokerMetrics(ME), () => undefined);
  rm.reconcile(image);
  t.after(async () => {
    await rm.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const produce = async (partition: number) => {
    const r = await rm.produce({ transactionalId: null, acks: 1, timeoutMs: 1000, topicData: [{ name: TOPIC, partitionData: [{ index: partition, currentLeaderEpoch: 0, records: makeBatch() }] }] });
    assert.equal(r.responses[0]!.partitionResponses[0]!.errorCode, 0);
  };
  const fetch = (offsets: Record<number, number>, session: { sessionId: number; sessionEpoch: number }, connectionId = 1, signal = new AbortController().signal) => {
    const request: FetchRequest = {
      replicaId: FOLLOWER, replicaEpoch: 1, maxWaitMs: 0, minBytes: 1, maxBytes: 1 << 20,
      topics: [{ topic: TOPIC, partitions: Object.entries(offsets).map(([p, fetchOffset]) => ({ partition: Number(p), currentLeaderEpoch: 0, fetchOffset, lastFetchedEpoch: -1, logStartOffset: 0, partitionMaxBytes: 1 << 20 })) }],
      sessionId: session.sessionId,
      sessionEpoch: session.sessionEpoch,
    };
    return rm.fetch(request, { signal, connectionId });
  };
  return { rm, clock, produce, fetch, alterPartitions };
}

function answered(r: FetchResponse): Map<number, FetchResponse['responses'][number]['partitions'][number]> {
  return new Map((r.responses[0]?.partitions ?? []).map((p) => [p.partitionIndex, p]));
}

test('a new session is told the high watermark again, even one an earlier answer carried', async (t) => {
  const h = setup(t, 1);
  await h.produce(0);
  const first = await h.fetch({ 0: 0 }, { sessionId: 0, sessionEpoch: 0 });
  const id = first.sessionId!;
  // Fetching at 1 moves the high watermark to 1; this answer carries it.
  const second = await h.fetch({ 0: 1 }, { sessionId: id, sessionEpoch: 1 });
  assert.equal(answered(second).get(0)?.highWatermark, 1);
  // Say that answer was lost with its connection: the follower opens a session on a new one.
  const again = await h.fetch({ 0: 1 }, { sessionId: 0, sessionEpoch: 0 }, 2);
  assert.equal(answered(again).get(0)?.highWatermark, 1, 'the new session\'s first answer must carry the high watermark');
});

test('an answer to a closed connection does not count as sent', async (t) => {
  const h = setup(t, 1);
  await h.produce(0);
  const first = await h.fetch({ 0: 0 }, { sessionId: 0, sessionEpoch: 0 });
  const closed = new AbortController();
  closed.abort();
  // Sessionless: the answer to the closed connection carries the new high watermark but never arrives.
  await h.fetch({ 0: 1 }, { sessionId: 0, sessionEpoch: -1 }, 3, closed.signal);
  const next = await h.fetch({ 0: 1 }, { sessionId: first.sessionId!, sessionEpoch: 1 });
  assert.equal(answered(next).get(0)?.highWatermark, 1);
});

test('a session opened on a connection already closed does not stay', async (t) => {
  const h = setup(t, 1);
  const closed = new AbortController();
  closed.abort();
  await h.fetch({ 0: 0 }, { sessionId: 0, sessionEpoch: 0 }, 4, closed.signal);
  assert.equal(h.rm.fetchSessionCount, 0);
});

test('a session answers only partitions with news; quiet ones keep their follower in the ISR', async (t) => {
  const h = setup(t, 4);
  for (let p = 0; p < 4; p++) await h.produce(p);
  const opened = await h.fetch({ 0: 0, 1: 0, 2: 0, 3: 0 }, { sessionId: 0, sessionEpoch: 0 });
  assert.equal(answered(opened).size, 4);
  const id = opened.sessionId!;
  const caughtUp = await h.fetch({ 0: 1, 1: 1, 2: 1, 3: 1 }, { sessionId: id, sessionEpoch: 1 });
  assert.equal(answered(caughtUp).size, 4, 'every partition has a new high watermark to tell');
  const quiet = await h.fetch({}, { sessionId: id, sessionEpoch: 2 });
  assert.equal(answered(quiet).size, 0);
  await h.produce(2);
  const news = await h.fetch({}, { sessionId: id, sessionEpoch: 3 });
  assert.deepEqual([...answered(news).keys()], [2]);
  // Well past replica.lag.time.max.ms, with requests naming only partition 2: the quiet
  // partitions' follower stays in the ISR because checkIsr counts the session's last request.
  for (let i = 0; i < 5; i++) {
    h.clock.advance(500);
    await h.fetch({ 2: 2 + i }, { sessionId: id, sessionEpoch: 4 + 2 * i });
    await h.produce(2);
    await h.fetch({}, { sessionId: id, sessionEpoch: 5 + 2 * i });
    await (h.rm as unknown as { checkIsr(): Promise<void> }).checkIsr();
  }
  assert.deepEqual(h.alterPartitions, [], 'no partition may propose shrinking its ISR');
});
