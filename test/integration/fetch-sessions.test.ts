/**
 * Incremental fetch sessions (KIP-227) on real processes: followers replicate through sessions,
 * partitions a session never names again stay in the ISR, and the session rules of the wire
 * (epochs, ownership, forgotten partitions, answers only about what changed) hold at a broker.
 *
 * The raw session tests fetch as replica 99, a broker id that follows nothing: the leader serves
 * it as a follower (up to its log end offset) without counting it in any ISR.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Admin, Producer, Tributary } from '../../client/index.js';
import { ApiKey } from '../../protocol/api-keys.js';
import type { FetchRequest, FetchResponse } from '../../protocol/apis/fetch.js';
import { ERRORS } from '../../protocol/errors.js';
import { batchLastOffset, iterateBatches } from '../../protocol/record-batch.js';
import type { RpcConnection } from '../../protocol/transport/connection.js';
import { waitFor } from '../../common/wait.js';
import { Harness } from './harness.js';
import { describePartitions, leaderEndOffset, startDataCluster, waitFullIsr, type DataCluster } from './data-path-helpers.js';

/** Short, so a follower wrongly left "not caught up" on a quiet partition would drop out quickly. */
const REPLICA_LAG_TIME_MAX_MS = 1500;
const PARTITIONS = 8;
const OUTSIDER = 99;
/** Sessions are Fetch v1. */
const V1 = { apiVersion: 1 };

let harness: Harness;
let cluster: DataCluster;
let client: Tributary;
let admin: Admin;
let producer: Producer;

async function metric(brokerId: number, line: RegExp): Promise<number> {
  const b = cluster.broker(brokerId);
  const text = await (await fetch(`http://${b.host}:${b.port}/metrics`)).text();
  let sum = 0;
  for (const l of text.split('\n')) {
    const m = line.exec(l);
    if (m !== null) sum += Number(l.slice(l.lastIndexOf(' ') + 1));
  }
  return sum;
}

function fetchBody(topic: string, partitions: Array<{ partition: number; fetchOffset: number }>, session: { sessionId: number; sessionEpoch: number; forget?: number[] }): FetchRequest {
  return {
    replicaId: OUTSIDER,
    replicaEpoch: 1,
    maxWaitMs: 200,
    minBytes: 1,
    maxBytes: 1024 * 1024,
    topics: partitions.length === 0 ? [] : [{ topic, partitions: partitions.map((p) => ({ partition: p.partition, currentLeaderEpoch: -1, fetchOffset: p.fetchOffset, lastFetchedEpoch: -1, logStartOffset: 0, partitionMaxBytes: 1024 * 1024 })) }],
    sessionId: session.sessionId,
    sessionEpoch: session.sessionEpoch,
    forgottenTopics: session.forget === undefined ? [] : [{ topic, partitions: session.forget }],
  };
}

/** Partition index → the offset after the last record its answer carried (only partitions with records). */
function recordsByPartition(response: FetchResponse): Map<number, number> {
  const out = new Map<number, number>();
  for (const t of response.responses) {
    for (const p of t.partitions) {
      assert.equal(p.errorCode, 0, `partition ${p.partitionIndex} answered error ${p.errorCode}`);
      if (p.records === null || p.records.length === 0) continue;
      const records = Buffer.from(p.records);
      let next = -1;
      for (const { pos } of iterateBatches(records)) next = batchLastOffset(records, pos) + 1;
      out.set(p.partitionIndex, next);
    }
  }
  return out;
}

describe('incremental fetch sessions', { timeout: 180_000 }, () => {
  before(async () => {
    harness = new Harness('fetch-sessions');
    try {
      cluster = await startDataCluster(harness, { brokers: 3, brokerProperties: { 'replica.lag.time.max.ms': String(REPLICA_LAG_TIME_MAX_MS) } });
      client = cluster.client('it-fetch-sessions');
      admin = client.admin();
      await admin.connect();
      producer = client.producer({ acks: 'all', lingerMs: 0 });
      await producer.connect();
    } catch (error) {
      process.stderr.write(`cluster start failed; ${cluster?.diagnostics(40) ?? harness.diagnostics(40)}\n`);
      throw error;
    }
  });

  after(async () => {
    await Promise.allSettled([producer?.disconnect(), admin?.disconnect()]);
    await harness?.cleanup();
  });

  test('followers replicate in sessions, and partitions no request names again stay in the ISR', async () => {
    const topic = 'fs-isr';
    await admin.createTopics([{ topic, partitions: PARTITIONS, replicationFactor: 3, config: { 'min.insync.replicas': '2' } }]);
    await waitFullIsr(admin, topic);
    // One record in every partition, then load on partition 0 alone for several lag windows: the
    // other partitions are quiet and their followers' sessions never name them again.
    for (let p = 0; p < PARTITIONS; p++) await producer.send({ topic, messages: [{ value: Buffer.from(`first-${p}`), partition: p }] });
    const until = Date.now() + 3 * REPLICA_LAG_TIME_MAX_MS;
    let sent = 0;
    while (Date.now() < until) {
      await producer.send({ topic, messages: [{ value: Buffer.from(`busy-${sent++}`), partition: 0 }] });
    }
    const parts = await describePartitions(admin, topic);
    for (const p of parts) assert.deepEqual([...p.isr].sort(), [...p.replicas].sort(), `partition ${p.partition} lost a replica from its ISR: ${JSON.stringify(p)}`);
    const leaders = new Set(parts.map((p) => p.leader!));
    let incremental = 0;
    for (const id of leaders) incremental += await metric(id, /^tributary_broker_follower_fetch_requests_total\{kind="incremental"/);
    assert.ok(incremental > 0, 'no follower fetch went through a session');
    let sessions = 0;
    for (const id of cluster.brokerIds) sessions += await metric(id, /^tributary_broker_fetch_sessions\{/);
    assert.ok(sessions >= 2, `expected the followers' sessions at their leaders, saw ${sessions}`);
    // Replicas hold every record: the high watermark of each partition covers what was acked.
    const leader0 = parts.find((p) => p.partition === 0)!.leader!;
    assert.equal(await leaderEndOffset(await cluster.connect(leader0), topic, 0), sent + 1);
  });

  test('a session answers only what changed, follows its epochs, forgets, and belongs to its connection', async () => {
    const topic = 'fs-raw';
    await admin.createTopics([{ topic, partitions: 3, replicationFactor: 3, config: { 'min.insync.replicas': '2' } }]);
    await waitFullIsr(admin, topic);
    const parts = await describePartitions(admin, topic);
    // Partitions led by one broker, so one session sees them all.
    const leader = parts[0]!.leader!;
    const mine = parts.filter((p) => p.leader === leader).map((p) => p.partition);
    for (const p of mine) await producer.send({ topic, messages: [{ value: Buffer.from(`a-${p}`), partition: p }] });
    const conn: RpcConnection = await cluster.connect(leader);

    // Epoch 0 opens a session; the full answer carries every partition's record.
    const opened = await conn.request(ApiKey.Fetch, fetchBody(topic, mine.map((p) => ({ partition: p, fetchOffset: 0 })), { sessionId: 0, sessionEpoch: 0 }), V1);
    assert.equal(opened.errorCode ?? 0, 0);
    const sessionId = opened.sessionId ?? 0;
    assert.ok(sessionId > 0, 'no session opened');
    assert.deepEqual([...recordsByPartition(opened).keys()].sort(), [...mine].sort());

    // Epoch 1 names the partitions at their new offsets: nothing new, so no partition is answered.
    const quiet = await conn.request(ApiKey.Fetch, fetchBody(topic, mine.map((p) => ({ partition: p, fetchOffset: 1 })), { sessionId, sessionEpoch: 1 }), V1);
    assert.equal(quiet.errorCode ?? 0, 0);
    assert.equal(quiet.sessionId, sessionId);
    assert.equal(recordsByPartition(quiet).size, 0);

    // A new record in one partition: epoch 2 names no partition, and the answer carries just that one.
    const target = mine[mine.length - 1]!;
    await producer.send({ topic, messages: [{ value: Buffer.from('b'), partition: target }] });
    const changed = await conn.request(ApiKey.Fetch, fetchBody(topic, [], { sessionId, sessionEpoch: 2 }), V1);
    assert.deepEqual([...recordsByPartition(changed)], [[target, 2]]);

    // The same epoch again, an unknown id, and the id from another connection are refused.
    const again = await conn.request(ApiKey.Fetch, fetchBody(topic, [], { sessionId, sessionEpoch: 2 }), V1);
    assert.equal(again.errorCode, ERRORS.INVALID_FETCH_SESSION_EPOCH.code);
    const unknown = await conn.request(ApiKey.Fetch, fetchBody(topic, [], { sessionId: sessionId + 1, sessionEpoch: 1 }), V1);
    assert.equal(unknown.errorCode, ERRORS.FETCH_SESSION_ID_NOT_FOUND.code);
    const other = await cluster.connect(leader);
    const stolen = await other.request(ApiKey.Fetch, fetchBody(topic, [], { sessionId, sessionEpoch: 3 }), V1);
    assert.equal(stolen.errorCode, ERRORS.FETCH_SESSION_ID_NOT_FOUND.code);

    // The refusals left the session as it was: epoch 3 forgets `target` (still at offset 1 in the
    // session) and moves it to 2; a new record there is not answered, one elsewhere is.
    const forgot = await conn.request(ApiKey.Fetch, fetchBody(topic, [{ partition: target, fetchOffset: 2 }], { sessionId, sessionEpoch: 3 }), V1);
    assert.equal(forgot.errorCode ?? 0, 0);
    const gone = await conn.request(ApiKey.Fetch, fetchBody(topic, [], { sessionId, sessionEpoch: 4, forget: [target] }), V1);
    assert.equal(gone.errorCode ?? 0, 0);
    await producer.send({ topic, messages: [{ value: Buffer.from('c'), partition: target }] });
    const other0 = mine[0]!;
    if (other0 !== target) await producer.send({ topic, messages: [{ value: Buffer.from('d'), partition: other0 }] });
    const after = await conn.request(ApiKey.Fetch, fetchBody(topic, [], { sessionId, sessionEpoch: 5 }), V1);
    const answered = recordsByPartition(after);
    assert.equal(answered.has(target), false, 'a forgotten partition was answered');
    if (other0 !== target) assert.deepEqual([...answered], [[other0, 2]]);

    // Epoch -1 closes it: the next incremental request does not find it.
    const closed = await conn.request(ApiKey.Fetch, { ...fetchBody(topic, [], { sessionId, sessionEpoch: -1 }), maxWaitMs: 0 }, V1);
    assert.equal(closed.sessionId ?? 0, 0);
    const afterClose = await conn.request(ApiKey.Fetch, fetchBody(topic, [], { sessionId, sessionEpoch: 6 }), V1);
    assert.equal(afterClose.errorCode, ERRORS.FETCH_SESSION_ID_NOT_FOUND.code);
  });

  test('a consumer asking for a session gets a full sessionless answer', async () => {
    const topic = 'fs-isr';
    const conn = await cluster.connect(cluster.brokerIds[0]!);
    const parts = await describePartitions(admin, topic);
    const led = parts.filter((p) => p.leader === cluster.brokerIds[0]).map((p) => p.partition);
    const r = await conn.request(ApiKey.Fetch, { ...fetchBody(topic, led.map((p) => ({ partition: p, fetchOffset: 0 })), { sessionId: 0, sessionEpoch: 0 }), replicaId: -1, replicaEpoch: -1, maxWaitMs: 0 }, V1);
    assert.equal(r.sessionId ?? 0, 0);
    // Every named partition is answered, as in any consumer fetch.
    assert.equal(r.responses.reduce((n, t) => n + t.partitions.length, 0), led.length);
  });

  test('Fetch v0 (an older client) carries no session: a request asking for one is a full fetch', async () => {
    const topic = 'fs-isr';
    const parts = await describePartitions(admin, topic);
    const leader = parts[0]!.leader!;
    const conn = await cluster.connect(leader);
    const led = parts.filter((p) => p.leader === leader).map((p) => p.partition);
    const r = await conn.request(ApiKey.Fetch, { ...fetchBody(topic, led.map((p) => ({ partition: p, fetchOffset: 0 })), { sessionId: 0, sessionEpoch: 0 }), maxWaitMs: 0 });
    assert.equal(r.sessionId, undefined);
    assert.equal(r.errorCode, undefined);
    assert.deepEqual([...recordsByPartition(r).keys()].sort(), [...led].sort());
  });

  test('followers keep replicating when the leaders cannot keep their sessions', async () => {
    // The fetchers were at work through the tests above; a restart of one broker makes every
    // fetcher to it open a new session and every fetcher of its own start over.
    const topic = 'fs-isr';
    const before = (await describePartitions(admin, topic)).find((p) => p.partition === 1)!;
    await cluster.kill(before.leader!);
    await cluster.start(before.leader!);
    await waitFullIsr(admin, topic, 30_000);
    for (let p = 0; p < PARTITIONS; p++) await producer.send({ topic, messages: [{ value: Buffer.from(`after-${p}`), partition: p }] });
    await waitFor('full ISRs after the restart', async () => (await describePartitions(admin, topic)).every((p) => p.isr.length === 3), { timeoutMs: 30_000 });
  });
});
