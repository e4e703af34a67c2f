/**
 * The data path as real processes (issue 4 §5): 3 `tributary controller` processes + 3
 * `tributary broker` processes on loopback, shared by the suite, driven through the SDK, raw
 * RPCs and the CLI. Every wait is a condition with a deadline (common/wait.ts); processes are
 * killed and temp dirs removed in `after` whatever happened; a failing test prints the tail of
 * every process's log (stdout+stderr, TRIBUTARY_LOG_LEVEL=warn).
 *
 * The order matters only in that the destructive tests (kill -9 of brokers) run last; each of
 * them brings every broker back before it returns, so a failure does not cascade.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test, type TestContext } from 'node:test';
import WebSocket from 'ws';
import { waitFor } from '../../common/wait.js';
import { partitionForKey, type Admin, type ConsumedMessage, type Message, type Producer, type Tributary } from '../../client/index.js';
import { ApiKey } from '../../protocol/api-keys.js';
import { ERRORS } from '../../protocol/errors.js';
import { batchLastOffset, batchRecordCount, buildBatch, decodeBatchRecords, iterateBatches, OFF_BASE_SEQUENCE, OFF_BATCH_LENGTH, OFF_CRC } from '../../protocol/record-batch.js';
import type { RpcConnection } from '../../protocol/transport/connection.js';
import { Harness } from './harness.js';
import {
  consumeN,
  describePartitions,
  expectTributaryError,
  leaderEndOffset,
  readReplica,
  replicaHighWatermark,
  runCliWithInput,
  segmentFiles, segmentFilesMatchLeader,
  startDataCluster,
  waitFullIsr,
  type DataCluster,
} from './data-path-helpers.js';

const TEST_TIMEOUT_MS = 60_000;
/** replica.lag.time.max.ms default: a dead follower must leave the ISR well before this (fencing, 1 s session). */
const REPLICA_LAG_TIME_MAX_MS = 10_000;

let harness: Harness;
let cluster: DataCluster;
let client: Tributary;
let admin: Admin;
let producer: Producer;
let startupMs = 0;

/** Runs a test body; on failure prints where the data is and every process's log tail. */
async function withDiagnostics(t: TestContext, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    const text = cluster === undefined ? `temp dir ${harness?.root}` : cluster.diagnostics(25);
    for (const line of text.split('\n')) t.diagnostic(line);
    throw error;
  }
}

function key(p: { partition: number; offset: number }): string {
  return `${p.partition}:${p.offset}`;
}

function bytesOf(v: string | Buffer | null | undefined): Buffer | null {
  if (v === undefined || v === null) return null;
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

/** The message as it should come back: keys/values/headers as Buffers (null stays null). */
function assertSameMessage(got: ConsumedMessage, sent: Message, where: string): void {
  assert.deepEqual(got.key, bytesOf(sent.key), `${where}: key`);
  assert.deepEqual(got.value, bytesOf(sent.value), `${where}: value`);
  const want: Record<string, Buffer | null> = {};
  for (const [k, v] of Object.entries(sent.headers ?? {})) want[k] = bytesOf(v);
  assert.deepEqual(got.headers, want, `${where}: headers`);
}

/** Binary messages: keys and values with every byte value, empty and null ones, binary and UTF-8 headers. */
function binaryMessages(n: number, partitions: number): Message[] {
  const out: Message[] = [];
  for (let i = 0; i < n; i++) {
    const m: Message = { value: i % 41 === 0 ? null : i % 43 === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x00, 0xff, i & 0xff]), randomBytes(i % 300)]) };
    if (i % 5 !== 0) m.key = Buffer.concat([Buffer.from([0xfe, 0x00]), randomBytes(1 + (i % 24))]);
    if (i % 3 === 0) m.headers = { 'bin-h': randomBytes(i % 17), 'ütf-8 h': `header ${i} ✓`, empty: Buffer.alloc(0) };
    if (i % 7 === 0) m.partition = i % partitions;
    out.push(m);
  }
  return out;
}

/** Send `messages` as `chunks` concurrent sendWithOffsets calls; returns each message's (partition, offset). */
async function sendAll(p: Producer, topic: string, messages: Message[], chunks: number): Promise<Array<{ partition: number; offset: number }>> {
  const size = Math.ceil(messages.length / chunks);
  const parts: Message[][] = [];
  for (let i = 0; i < messages.length; i += size) parts.push(messages.slice(i, i + size));
  const results = await Promise.all(parts.map((ms) => p.sendWithOffsets({ topic, messages: ms })));
  return results.flatMap((r) => r.records);
}

/** Every (partition, offset) distinct, and per partition exactly 0..count-1; returns the counts. */
function assertDenseOffsets(records: Array<{ partition: number; offset: number }>, partitions: number, what: string): number[] {
  const seen = new Set(records.map(key));
  assert.equal(seen.size, records.length, `${what}: two records acked at the same offset`);
  const counts = new Array<number>(partitions).fill(0);
  for (const r of records) {
    assert.ok(r.partition >= 0 && r.partition < partitions, `${what}: partition ${r.partition} out of range`);
    counts[r.partition]!++;
  }
  for (const r of records) assert.ok(r.offset >= 0 && r.offset < counts[r.partition]!, `${what}: offset ${r.offset} of partition ${r.partition} is beyond the ${counts[r.partition]} records it got`);
  return counts;
}

async function createTopic(name: string, partitions: number, replicationFactor: number, config: Record<string, string> = {}): Promise<void> {
  await admin.createTopics([{ topic: name, partitions, replicationFactor, config }]);
}

async function leaderConn(topic: string, partition: number): Promise<{ leader: number; conn: RpcConnection }> {
  const p = (await describePartitions(admin, topic))[partition]!;
  assert.notEqual(p.leader, null, `${topic}-${partition} has no leader`);
  return { leader: p.leader!, conn: await cluster.connect(p.leader!) };
}

/**
 * Every replica of the partition serves the same bytes as the leader up to `end` (waiting for each
 * to reach it), and holds identical segment files on disk. Returns the leader's bytes.
 */
async function assertReplicasIdentical(topic: string, partition: number, end: number): Promise<Buffer> {
  const p = (await describePartitions(admin, topic))[partition]!;
  const leader = p.leader!;
  const leaderRead = await readReplica(await cluster.connect(leader), topic, partition);
  assert.equal(leaderRead.highWatermark, end, `${topic}-${partition}: leader ${leader} high watermark`);
  assert.equal(leaderRead.nextOffset, end, `${topic}-${partition}: leader ${leader} served up to`);
  let records = 0;
  for (const { pos } of iterateBatches(leaderRead.bytes)) records += batchRecordCount(leaderRead.bytes, pos);
  assert.equal(records, end, `${topic}-${partition}: records in the leader's batches`);
  for (const r of p.replicas) {
    if (r === leader) continue;
    const conn = await cluster.connect(r);
    await waitFor(`follower ${r} of ${topic}-${partition} to reach high watermark ${end}`, async () => (await replicaHighWatermark(conn, topic, partition)) === end, { timeoutMs: 10_000 });
    const read = await readReplica(conn, topic, partition);
    assert.equal(read.nextOffset, end, `${topic}-${partition}: follower ${r} served up to`);
    assert.ok(read.bytes.equals(leaderRead.bytes), `${topic}-${partition}: follower ${r} serves ${read.bytes.length} bytes that differ from leader ${leader}'s ${leaderRead.bytes.length}`);
  }
  // On disk: the same segment files, byte for byte (nothing writes this partition now; a follower
  // may still be finishing its last append, hence the wait).
  await waitFor(
    `the segment files of ${topic}-${partition} to be identical on replicas ${p.replicas.join(',')}`,
    () => {
      const total = [...segmentFiles(cluster.broker(leader).dataDir, topic, partition).values()].reduce((s, b) => s + b.length, 0);
      if (total !== leaderRead.bytes.length) return false; // leader: exactly the batches served
      return segmentFilesMatchLeader(cluster, leader, p.replicas, topic, partition);
    },
    { timeoutMs: 5000, intervalMs: 50 },
  );
  return leaderRead.bytes;
}

describe('data path: 3 controllers + 3 brokers as processes', { timeout: 240_000 }, () => {
  before(async () => {
    const started = performance.now();
    harness = new Harness('data-path');
    try {
      cluster = await startDataCluster(harness, { brokers: 3 });
      client = cluster.client('it-data-path');
      admin = client.admin();
      await admin.connect();
      producer = client.producer({ acks: 'all', lingerMs: 2 });
      await producer.connect();
    } catch (error) {
      process.stderr.write(`cluster start failed; temp dir ${harness.root}\n${harness.diagnostics(40)}\n`);
      throw error;
    }
    startupMs = performance.now() - started;
  });

  after(async () => {
    await Promise.allSettled([producer?.disconnect(), admin?.disconnect()]);
    await harness?.cleanup();
  });

  test('acks=all: a few hundred binary records over 4 partitions come back byte-exact at their acked offsets', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    t.diagnostic(`cluster of 3 controllers + 3 brokers serving after ${Math.round(startupMs)} ms`);
    await withDiagnostics(t, async () => {
      const topic = 'dp-main';
      await createTopic(topic, 4, 3, { 'min.insync.replicas': '2' });
      const [d] = await admin.describeTopics([topic]);
      assert.equal(d!.config['min.insync.replicas'], '2');
      assert.equal(d!.partitions.length, 4);
      for (const p of d!.partitions) {
        assert.deepEqual([...p.replicas].sort(), [1, 2, 3], `replicas of ${topic}-${p.partition}`);
        assert.ok(p.leader !== null && p.replicas.includes(p.leader), `leader of ${topic}-${p.partition}`);
      }

      const messages = binaryMessages(400, 4);
      const records = await sendAll(producer, topic, messages, 8);
      assert.equal(records.length, messages.length);
      const counts = assertDenseOffsets(records, 4, 'acks');
      assert.ok(counts.every((c) => c > 0), `every partition got records: ${counts.join(',')}`);
      messages.forEach((m, i) => {
        if (m.partition !== undefined) assert.equal(records[i]!.partition, m.partition, `message ${i}: explicit partition`);
        else if (m.key !== undefined && m.key !== null) assert.equal(records[i]!.partition, partitionForKey(bytesOf(m.key)!, 4), `message ${i}: murmur2 partition of its key`);
      });

      // Nothing beyond what was acked: each leader's high watermark is exactly the records it acked.
      for (let p = 0; p < 4; p++) {
        const { conn } = await leaderConn(topic, p);
        assert.equal(await leaderEndOffset(conn, topic, p), counts[p], `${topic}-${p} end offset`);
      }

      const consumer = client.consumer({ readFrom: 'leader' });
      await consumer.connect();
      try {
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        const got = await consumeN(consumer, messages.length, 20_000);
        const byPosition = new Map<string, ConsumedMessage>();
        for (const m of got) {
          assert.equal(m.topic, topic);
          assert.ok(!byPosition.has(key(m)), `offset ${key(m)} delivered twice`);
          byPosition.set(key(m), m);
        }
        messages.forEach((m, i) => {
          const at = byPosition.get(key(records[i]!));
          assert.ok(at !== undefined, `message ${i}, acked at ${key(records[i]!)}, not read back`);
          assertSameMessage(at, m, `message ${i} at ${key(records[i]!)}`);
        });
      } finally {
        await consumer.disconnect();
      }
    });
  });

  test("every follower's log equals the leader's, byte for byte (served and on disk)", { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      const topic = 'dp-main'; // written by the previous test
      const parts = await waitFullIsr(admin, topic);
      for (const p of parts) {
        const { conn } = await leaderConn(topic, p.partition);
        const end = await leaderEndOffset(conn, topic, p.partition);
        assert.ok(end > 0, `${topic}-${p.partition} is empty: run the first test first`);
        const bytes = await assertReplicasIdentical(topic, p.partition, end);
        // The offsets are stamped, dense and in order.
        let next = 0;
        for (const { pos } of iterateBatches(bytes)) {
          const records = decodeBatchRecords(bytes, pos);
          assert.equal(batchLastOffset(bytes, pos), next + records.length - 1, `${topic}-${p.partition}: batch at ${next}`);
          next += records.length;
        }
        assert.equal(next, end);
      }
    });
  });

  test('an RF=1 topic and an RF=3 topic side by side both produce and consume correctly', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      await createTopic('dp-rf1', 3, 1);
      await createTopic('dp-rf3', 3, 3, { 'min.insync.replicas': '2' });
      for (const [topic, rf] of [['dp-rf1', 1], ['dp-rf3', 3]] as const) {
        for (const p of await describePartitions(admin, topic)) {
          assert.equal(p.replicas.length, rf, `${topic}-${p.partition} replicas`);
          assert.deepEqual([...p.isr].sort(), [...p.replicas].sort(), `${topic}-${p.partition} ISR`);
        }
      }
      const one = binaryMessages(90, 3);
      const three = binaryMessages(90, 3);
      const [r1, r3] = await Promise.all([sendAll(producer, 'dp-rf1', one, 3), sendAll(producer, 'dp-rf3', three, 3)]);
      const counts1 = assertDenseOffsets(r1, 3, 'dp-rf1 acks');
      const counts3 = assertDenseOffsets(r3, 3, 'dp-rf3 acks');
      const consumer = client.consumer();
      await consumer.connect();
      try {
        await consumer.subscribe({ topics: ['dp-rf1', 'dp-rf3'], fromBeginning: true });
        const got = await consumeN(consumer, one.length + three.length, 20_000);
        const seen = new Map<string, ConsumedMessage>();
        for (const m of got) {
          const k = `${m.topic}/${key(m)}`;
          assert.ok(!seen.has(k), `${k} delivered twice`);
          seen.set(k, m);
        }
        for (const [topic, sent, acks] of [['dp-rf1', one, r1], ['dp-rf3', three, r3]] as const) {
          sent.forEach((m, i) => {
            const at = seen.get(`${topic}/${key(acks[i]!)}`);
            assert.ok(at !== undefined, `${topic} message ${i} at ${key(acks[i]!)} not read back`);
            assertSameMessage(at, m, `${topic} message ${i}`);
          });
        }
      } finally {
        await consumer.disconnect();
      }
      for (const [topic, counts] of [['dp-rf1', counts1], ['dp-rf3', counts3]] as const) {
        for (let p = 0; p < 3; p++) {
          const { conn } = await leaderConn(topic, p);
          assert.equal(await leaderEndOffset(conn, topic, p), counts[p], `${topic}-${p} end offset`);
        }
      }
    });
  });

  test('bad input gets the contract error code, appends nothing, and the broker keeps serving', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      // --- topic creation ---
      const bad: Array<[string, Parameters<Admin['createTopics']>[0][number], string]> = [
        ['a name with a slash', { topic: 'bad/name', partitions: 1, replicationFactor: 1 }, 'INVALID_TOPIC_EXCEPTION'],
        ['the name ..', { topic: '..', partitions: 1, replicationFactor: 1 }, 'INVALID_TOPIC_EXCEPTION'],
        ['zero partitions', { topic: 'dp-zero-partitions', partitions: 0, replicationFactor: 1 }, 'INVALID_PARTITIONS'],
        ['RF 4 on 3 brokers', { topic: 'dp-rf4', partitions: 1, replicationFactor: 4 }, 'INVALID_REPLICATION_FACTOR'],
        ['min.insync.replicas > RF', { topic: 'dp-minisr4', partitions: 1, replicationFactor: 3, config: { 'min.insync.replicas': '4' } }, 'INVALID_CONFIG'],
      ];
      for (const [what, spec, code] of bad) {
        const error = await expectTributaryError(admin.createTopics([spec]), what);
        assert.equal(error.code, code, `${what}: ${error.message}`);
      }
      const topics = await admin.listTopics();
      for (const [, spec] of bad) assert.ok(!topics.includes(spec.topic), `${spec.topic} was created anyway`);

      // --- a batch above the topic's max.message.bytes (the SDK's send) ---
      const topic = 'dp-small';
      await createTopic(topic, 1, 3, { 'min.insync.replicas': '2', 'max.message.bytes': '1024' });
      assert.equal((await producer.send({ topic, messages: [{ value: 'small-0' }] }))[0]!.baseOffset, 0);
      const tooLarge = await expectTributaryError(producer.send({ topic, messages: [{ value: randomBytes(4096) }] }), 'a 4 KiB record on max.message.bytes=1024');
      assert.equal(tooLarge.code, 'MESSAGE_TOO_LARGE', tooLarge.message);
      assert.equal(tooLarge.retriable, false);
      const { leader, conn } = await leaderConn(topic, 0);
      assert.equal(await leaderEndOffset(conn, topic, 0), 1, 'the oversized batch was appended');

      // --- raw Produce: a batch above the default limit (1 MiB + 12), and one with a broken CRC ---
      const produceRaw = async (records: Buffer, acks: -1 | 1 = 1, target = topic) => {
        const r = await conn.request(ApiKey.Produce, { transactionalId: null, acks, timeoutMs: 10_000, topicData: [{ name: target, partitionData: [{ index: 0, currentLeaderEpoch: -1, records }] }] });
        return r.responses[0]!.partitionResponses[0]!;
      };
      await createTopic('dp-default-limit', 1, 3);
      const big = await leaderConn('dp-default-limit', 0);
      const huge = buildBatch({ records: [{ key: null, value: randomBytes(1536 * 1024) }], firstTimestamp: Date.now() });
      const hugeResponse = await big.conn.request(ApiKey.Produce, { transactionalId: null, acks: 1, timeoutMs: 10_000, topicData: [{ name: 'dp-default-limit', partitionData: [{ index: 0, currentLeaderEpoch: -1, records: huge }] }] });
      const hugePart = hugeResponse.responses[0]!.partitionResponses[0]!;
      assert.equal(hugePart.errorCode, ERRORS.MESSAGE_TOO_LARGE.code, `1.5 MiB batch: ${hugePart.errorMessage}`);
      assert.equal(hugePart.baseOffset, -1);
      assert.equal(await leaderEndOffset(big.conn, 'dp-default-limit', 0), 0, 'the 1.5 MiB batch was appended');
      // Just under the default limit (1 MiB + 12 per batch) is fine.
      const [underLimit] = await producer.send({ topic: 'dp-default-limit', messages: [{ value: randomBytes(1024 * 1024 - 200) }] });
      assert.equal(underLimit!.baseOffset, 0);

      const good = () => buildBatch({ records: [{ key: Buffer.from('k'), value: Buffer.from('raw ok') }], firstTimestamp: Date.now() });
      const corrupt = good();
      corrupt[corrupt.length - 1]! ^= 0xff; // a byte of the value: the CRC no longer matches
      const badCrc = good();
      badCrc.writeUInt32BE((badCrc.readUInt32BE(OFF_CRC) + 1) >>> 0, OFF_CRC);
      for (const [what, batch] of [['a flipped value byte', corrupt], ['a wrong CRC field', badCrc]] as const) {
        const r = await produceRaw(batch);
        assert.equal(r.errorCode, ERRORS.CORRUPT_MESSAGE.code, `${what}: got error ${r.errorCode} ${r.errorMessage ?? ''}`);
        assert.equal(r.baseOffset, -1, what);
      }
      // Nothing was appended: the next valid batch takes offset 1, and the log holds exactly 2 records.
      const ok = await produceRaw(good(), -1);
      assert.equal(ok.errorCode, 0, ok.errorMessage);
      assert.equal(ok.baseOffset, 1, 'a rejected batch took an offset');
      const read = await readReplica(conn, topic, 0);
      assert.equal(read.nextOffset, 2);
      const values: string[] = [];
      for (const { pos } of iterateBatches(read.bytes)) for (const rec of decodeBatchRecords(read.bytes, pos)) values.push(rec.value!.toString());
      assert.deepEqual(values, ['small-0', 'raw ok']);

      // --- garbage on the WebSocket: that connection is closed, the broker serves everyone else ---
      const url = cluster.broker(leader).url;
      const closed = (ws: WebSocket) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      const openWs = async () => {
        const ws = new WebSocket(url, { perMessageDeflate: false });
        ws.on('error', () => undefined);
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
        });
        return ws;
      };
      for (const [what, payload, binary] of [
        ['random binary bytes', randomBytes(64), true],
        ['a msgpack array that is no request frame', Buffer.from([0x93, 0x01, 0x02, 0x03]), true],
        ['a text frame', 'GET / HTTP/1.1', false],
      ] as const) {
        const ws = await openWs();
        const code = closed(ws);
        ws.send(payload, { binary });
        const result = await Promise.race([code, new Promise<string>((resolve) => setTimeout(() => resolve('still open after 5 s'), 5000).unref())]);
        assert.ok(typeof result === 'number' && result >= 1000, `${what}: the server should close the connection, got ${result}`);
        if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
      }
      // Raw non-HTTP bytes on the TCP port: the socket is closed.
      await new Promise<void>((resolve, reject) => {
        const socket = net.connect(cluster.broker(leader).port, '127.0.0.1', () => socket.write(Buffer.concat([randomBytes(32), Buffer.from('\r\n\r\n')])));
        const timer = setTimeout(() => {
          socket.destroy();
          reject(new Error('raw garbage on the TCP port: the broker did not close the socket within 5 s'));
        }, 5000);
        socket.on('error', () => undefined);
        socket.on('data', () => undefined);
        socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      assert.ok(cluster.broker(leader).process.running, `broker ${leader} exited`);
      // The connection opened before the garbage still works, and so do new clients.
      assert.equal((await conn.request(ApiKey.Metadata, { topics: [topic] })).topics[0]!.name, topic);
      assert.equal((await producer.send({ topic, messages: [{ value: 'after garbage' }] }))[0]!.baseOffset, 2);
      const consumer = client.consumer();
      await consumer.connect();
      try {
        consumer.assign([{ topic, partition: 0, offset: 0 }]);
        const got = await consumeN(consumer, 3, 10_000);
        assert.deepEqual(got.map((m) => [m.offset, m.value?.toString()]), [[0, 'small-0'], [1, 'raw ok'], [2, 'after garbage']]);
      } finally {
        await consumer.disconnect();
      }
    });
  });

  test('the CLI end to end: topics create/describe --json, produce --report from stdin, consume --from-beginning --json', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      const bootstrap = cluster.bootstrap.join(',');
      const topic = 'dp-cli';
      const create = await runCliWithInput(['topics', 'create', topic, '--partitions', '2', '--replication-factor', '3', '--config', 'min.insync.replicas=2', '--bootstrap', bootstrap], '');
      assert.equal(create.code, 0, `topics create: ${create.stderr}`);
      const again = await runCliWithInput(['topics', 'create', topic, '--partitions', '2', '--replication-factor', '3', '--bootstrap', bootstrap], '');
      assert.notEqual(again.code, 0, 'creating it twice succeeded');
      assert.match(again.stderr, /TOPIC_ALREADY_EXISTS/);

      const describeRun = await runCliWithInput(['topics', 'describe', topic, '--json', '--bootstrap', bootstrap], '');
      assert.equal(describeRun.code, 0, `topics describe: ${describeRun.stderr}`);
      const described = JSON.parse(describeRun.stdout) as { topic: string; partitions: Array<{ topic: string; partition: number; leader: number | null; leaderEpoch: number; replicas: number[]; isr: number[] }>; config: Record<string, string> };
      assert.equal(described.topic, topic);
      assert.deepEqual(described.partitions.map((p) => p.partition), [0, 1]);
      for (const p of described.partitions) {
        assert.equal(p.topic, topic);
        assert.deepEqual([...p.replicas].sort(), [1, 2, 3]);
        assert.ok(p.leader !== null && p.replicas.includes(p.leader), `leader ${p.leader}`);
        assert.ok(p.isr.includes(p.leader!) && p.isr.every((r) => p.replicas.includes(r)), `isr ${p.isr}`);
        assert.ok(Number.isInteger(p.leaderEpoch) && p.leaderEpoch >= 0);
      }
      assert.equal(described.config['min.insync.replicas'], '2');

      const lines = Array.from({ length: 40 }, (_, i) => (i % 4 === 0 ? `ünïcödé line ${i} ✓` : `line ${i}`));
      const produced = await runCliWithInput(['produce', topic, '--report', '--bootstrap', bootstrap], lines.join('\n') + '\n');
      assert.equal(produced.code, 0, `produce: ${produced.stderr}`);
      const report = produced.stdout.trim().split('\n').map((l) => JSON.parse(l) as { partition: number; offset: number; value: string });
      assert.deepEqual(report.map((r) => r.value), lines, 'one report line per input line, in input order');
      assertDenseOffsets(report, 2, 'produce --report');

      const consumed = await runCliWithInput(['consume', topic, '--from-beginning', '--max-messages', String(lines.length), '--json', '--bootstrap', bootstrap], '');
      assert.equal(consumed.code, 0, `consume: ${consumed.stderr}`);
      const got = consumed.stdout.trim().split('\n').map((l) => JSON.parse(l) as { partition: number; offset: number; key: string | null; value: string; timestamp: number });
      assert.equal(got.length, lines.length);
      const want = new Map(report.map((r) => [key(r), r.value]));
      for (const m of got) {
        assert.equal(m.value, want.get(key(m)), `consumed ${key(m)}`);
        assert.equal(m.key, null);
        assert.ok(m.timestamp > 0);
        want.delete(key(m));
      }
      assert.equal(want.size, 0, `not consumed: ${[...want.keys()].join(' ')}`);
    });
  });

  test('idempotent producer: a retried batch is written once, also after the leader is killed; a gap is refused', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      const topic = 'dp-idempotent';
      await createTopic(topic, 1, 3, { 'min.insync.replicas': '2' });
      const [p] = await waitFullIsr(admin, topic);
      const { conn } = await leaderConn(topic, 0);
      const init = await conn.request(ApiKey.InitProducerId, { transactionalId: null, transactionTimeoutMs: -1, producerId: -1, producerEpoch: -1 });
      assert.ok(init.producerId >= 0);
      const batchAt = (baseSequence: number, n: number) =>
        buildBatch({ records: Array.from({ length: n }, (_, i) => ({ key: null, value: Buffer.from(`idem-${baseSequence + i}`) })), firstTimestamp: Date.now(), producerId: init.producerId, producerEpoch: init.producerEpoch, baseSequence });
      const produce = async (c: RpcConnection, records: Buffer) => {
        const q = (await describePartitions(admin, topic))[0]!;
        const r = await c.request(ApiKey.Produce, { transactionalId: null, acks: -1, timeoutMs: 5000, topicData: [{ name: topic, partitionData: [{ index: 0, currentLeaderEpoch: q.leaderEpoch, records }] }] });
        return r.responses[0]!.partitionResponses[0]!;
      };
      const first = await produce(conn, batchAt(0, 5));
      assert.equal(first.errorCode, 0);
      assert.equal(first.baseOffset, 0);
      // The same batch again (a retry after a lost response): its original offset, nothing written.
      const retry = await produce(conn, batchAt(0, 5));
      assert.deepEqual([retry.errorCode, retry.baseOffset], [0, 0]);
      const second = await produce(conn, batchAt(5, 5));
      assert.deepEqual([second.errorCode, second.baseOffset], [0, 5]);
      const gap = await produce(conn, batchAt(20, 5));
      assert.equal(gap.errorCode, ERRORS.OUT_OF_ORDER_SEQUENCE_NUMBER.code);
      // A damaged batch is CORRUPT_MESSAGE whatever its sequence says: a retry's copy (never
      // answered as the duplicate), one out of order, one in order. The leader checks the CRC once.
      const damaged = (b: Buffer) => {
        const copy = Buffer.from(b);
        copy[copy.length - 1]! ^= 0xff;
        return copy;
      };
      for (const [what, batch] of [['retry', batchAt(0, 5)], ['gap', batchAt(20, 5)], ['next', batchAt(10, 5)]] as const) {
        assert.equal((await produce(conn, damaged(batch))).errorCode, ERRORS.CORRUPT_MESSAGE.code, `damaged ${what}`);
      }
      // Damage to the fields idempotentBatchOf reads before any CRC check is CORRUPT_MESSAGE too
      // (retriable), not INVALID_REQUEST (which fails the producer's batch for good): a base
      // sequence whose sign bit flipped (inside the CRC), a batchLength that shrank.
      const negativeSequence = Buffer.from(batchAt(10, 5));
      negativeSequence[OFF_BASE_SEQUENCE]! ^= 0x80;
      const shortened = Buffer.from(batchAt(10, 5));
      shortened.writeInt32BE(shortened.readInt32BE(OFF_BATCH_LENGTH) - 1, OFF_BATCH_LENGTH);
      for (const [what, batch] of [['base sequence', negativeSequence], ['batchLength', shortened]] as const) {
        const r = await produce(conn, batch);
        assert.equal(r.errorCode, ERRORS.CORRUPT_MESSAGE.code, `damaged ${what}: ${r.errorMessage ?? ''}`);
      }
      assert.equal(await leaderEndOffset(conn, topic, 0), 10, 'only the two distinct batches were written');
      // Kill the leader: the new one rebuilds producer state from its log and still knows the retry.
      const oldLeader = p!.leader!;
      try {
        await cluster.kill(oldLeader);
        const moved = await waitFor(`a new leader for ${topic}-0`, async () => {
          const [q] = await describePartitions(admin, topic);
          return q!.leader !== null && q!.leader !== oldLeader ? q! : undefined;
        }, { timeoutMs: 10_000 });
        const newConn = await cluster.connect(moved.leader!);
        const afterFailover = await waitFor('the retry to be answered by the new leader', async () => {
          const r = await produce(newConn, batchAt(5, 5));
          return r.errorCode === 0 ? r : undefined;
        }, { timeoutMs: 10_000 });
        assert.equal(afterFailover.baseOffset, 5, 'the retried batch keeps its original offset on the new leader');
        assert.equal(await leaderEndOffset(newConn, topic, 0), 10, 'nothing written twice across the failover');
        const next = await produce(newConn, batchAt(10, 5));
        assert.deepEqual([next.errorCode, next.baseOffset], [0, 10]);
      } finally {
        await cluster.ensureAllRunning();
      }
    });
  });

  test('kill -9 of a follower: acks=all goes on, the ISR shrinks; restarted, it catches up and rejoins', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      const topic = 'dp-isr';
      await createTopic(topic, 1, 3, { 'min.insync.replicas': '2' });
      const before = await sendAll(producer, topic, binaryMessages(60, 1), 3);
      assertDenseOffsets(before, 1, 'before the kill');
      const [p] = await waitFullIsr(admin, topic);
      const leader = p!.leader!;
      const follower = p!.replicas.find((r) => r !== leader)!;
      try {
        await cluster.kill(follower);
        const killedAt = performance.now();
        // The dead follower holds acks=all back only until the controller fences it (1 s
        // session) and drops it from the ISR: well before replica.lag.time.max.ms.
        const during = await sendAll(producer, topic, binaryMessages(60, 1), 3);
        const ackedAfterMs = performance.now() - killedAt;
        t.diagnostic(`acks=all with follower ${follower} dead acknowledged after ${Math.round(ackedAfterMs)} ms`);
        assert.ok(ackedAfterMs < REPLICA_LAG_TIME_MAX_MS - 2000, `acks=all took ${Math.round(ackedAfterMs)} ms with a dead follower: it was not fenced out of the ISR`);
        assert.deepEqual(during.map((r) => r.offset), Array.from({ length: 60 }, (_, i) => 60 + i));
        const shrunk = await waitFor(`broker ${follower} to leave the ISR of ${topic}-0`, async () => {
          const [q] = await describePartitions(admin, topic);
          return q!.leader === leader && !q!.isr.includes(follower) ? q! : undefined;
        }, { timeoutMs: 10_000 });
        assert.deepEqual([...shrunk.isr].sort(), p!.replicas.filter((r) => r !== follower).sort());
        const fenced = (await admin.describeCluster()).brokers.find((b) => b.id === follower);
        assert.equal(fenced?.fenced, true, `broker ${follower} is not reported fenced`);
        // Still writable with 2 of 3 in sync.
        const meanwhile = await sendAll(producer, topic, binaryMessages(60, 1), 2);
        assert.equal(meanwhile[0]!.offset, 120);

        const restartAt = performance.now();
        await cluster.start(follower);
        await waitFor(`broker ${follower} back in the ISR of ${topic}-0`, async () => {
          const [q] = await describePartitions(admin, topic);
          return q!.isr.length === 3 && q!.isr.includes(follower);
        }, { timeoutMs: 15_000 });
        t.diagnostic(`broker ${follower} serving and back in the ISR ${Math.round(performance.now() - restartAt)} ms after its restart`);
        await assertReplicasIdentical(topic, 0, 180);
        // And the rejoined replica counts again: acks=all is fine with all three.
        assert.equal((await producer.send({ topic, messages: [{ value: 'after rejoin' }] }))[0]!.baseOffset, 180);
      } finally {
        await cluster.ensureAllRunning();
      }
    });
  });

  test('kill -9 of the leader of an idle partition: a follower takes over, the preferred leader comes back, and the interim leader follows and replicates again', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      const topic = 'dp-failback';
      await createTopic(topic, 1, 3, { 'min.insync.replicas': '2' });
      await sendAll(producer, topic, binaryMessages(20, 1), 1);
      await waitFullIsr(admin, topic);
      const first = await waitFor(`${topic}-0 led by its preferred replica`, async () => {
        const [q] = await describePartitions(admin, topic);
        return q!.leader === q!.replicas[0] ? q! : undefined;
      });
      const preferred = first.leader!;
      try {
        await cluster.kill(preferred);
        const interim = await waitFor(`a new leader of ${topic}-0`, async () => {
          const [q] = await describePartitions(admin, topic);
          return q!.leader !== null && q!.leader !== preferred ? q! : undefined;
        }, { timeoutMs: 10_000 });
        assert.ok(interim.leaderEpoch > first.leaderEpoch, `leader epoch ${interim.leaderEpoch} after ${first.leaderEpoch}`);
        assert.ok(first.isr.includes(interim.leader!), 'the new leader was not in the ISR');
        // Nothing is written while the interim leader leads: its epoch starts, and ends, at offset 20.
        await cluster.start(preferred);
        const back = await waitFor(`${topic}-0 led by broker ${preferred} again with all replicas in sync`, async () => {
          const [q] = await describePartitions(admin, topic);
          return q!.leader === preferred && q!.isr.length === 3 ? q! : undefined;
        }, { timeoutMs: 15_000 });
        assert.ok(back.leaderEpoch > interim.leaderEpoch);
        t.diagnostic(`${topic}-0: leader ${preferred} (epoch ${first.leaderEpoch}) → ${interim.leader} (epoch ${interim.leaderEpoch}) → ${preferred} (epoch ${back.leaderEpoch})`);
        // Every replica, the former interim leader included, must replicate what comes next; one
        // that cannot holds acks=all back until replica.lag.time.max.ms drops it from the ISR.
        const startedAt = performance.now();
        const more = await sendAll(producer, topic, binaryMessages(20, 1), 1);
        const elapsed = performance.now() - startedAt;
        assert.equal(more[0]!.offset, 20);
        assert.ok(elapsed < 5000, `acks=all took ${Math.round(elapsed)} ms after the failback: a replica in the ISR is not replicating`);
        await assertReplicasIdentical(topic, 0, 40);
      } finally {
        await cluster.ensureAllRunning();
      }
    });
  });

  test('two followers dead: acks=all fails with NOT_ENOUGH_REPLICAS and appends nothing; acks=1 succeeds', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      const topic = 'dp-min-isr';
      await createTopic(topic, 1, 3, { 'min.insync.replicas': '2' });
      await sendAll(producer, topic, binaryMessages(10, 1), 1);
      const [p] = await waitFullIsr(admin, topic);
      const leader = p!.leader!;
      const followers = p!.replicas.filter((r) => r !== leader);
      const strict = client.producer({ acks: 'all', deliveryTimeoutMs: 3000, lingerMs: 0 });
      const loose = client.producer({ acks: 1, lingerMs: 0 });
      await Promise.all([strict.connect(), loose.connect()]);
      try {
        await Promise.all(followers.map((f) => cluster.kill(f)));
        await waitFor(`the ISR of ${topic}-0 to shrink to leader ${leader} alone`, async () => {
          const [q] = await describePartitions(admin, topic);
          return q!.leader === leader && q!.isr.length === 1 && q!.isr[0] === leader;
        }, { timeoutMs: 10_000 });
        const conn = await cluster.connect(leader);
        const end = await leaderEndOffset(conn, topic, 0);
        assert.equal(end, 10);

        const startedAt = performance.now();
        const error = await expectTributaryError(strict.send({ topic, messages: [{ value: 'must not be written' }] }), 'acks=all with 1 of min 2 in sync');
        const elapsed = performance.now() - startedAt;
        t.diagnostic(`acks=all failed after ${Math.round(elapsed)} ms: ${error.message}`);
        assert.equal(error.code, 'NOT_ENOUGH_REPLICAS', error.message);
        assert.equal(error.retriable, true);
        assert.match(error.message, /min\.insync\.replicas=2/);
        assert.ok(elapsed >= 2500, `gave up after ${Math.round(elapsed)} ms, before its 3000 ms delivery timeout`);
        // With the ISR at the leader alone, any append would have moved the high watermark.
        assert.equal(await leaderEndOffset(conn, topic, 0), end, 'the rejected acks=all batch was appended');

        const [ack] = await loose.send({ topic, messages: [{ value: 'acks=1 with one replica' }] });
        assert.equal(ack!.baseOffset, end, 'acks=1 did not land right after the last acks=all record');
        // Committed (visible to consumers) with the leader alone in the ISR; the leader may hold
        // the high watermark for the moment an ISR expansion it proposed is pending.
        await waitFor(`the high watermark of ${topic}-0 to cover the acks=1 record`, async () => (await leaderEndOffset(conn, topic, 0)) === end + 1, { timeoutMs: 3000 });

        await Promise.all(followers.map((f) => cluster.start(f)));
        await waitFullIsr(admin, topic);
        assert.equal((await strict.send({ topic, messages: [{ value: 'all back' }] }))[0]!.baseOffset, end + 1);
        await assertReplicasIdentical(topic, 0, end + 2);
      } finally {
        await Promise.allSettled([strict.disconnect(), loose.disconnect()]);
        await cluster.ensureAllRunning();
      }
    });
  });

  test('after all the failures every replica of every topic converges and takes acks=all writes', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      await cluster.ensureAllRunning();
      const topics = (await admin.listTopics()).filter((name) => name.startsWith('dp-'));
      assert.ok(topics.length >= 8, `topics: ${topics.join(',')}`);
      const check = client.producer({ acks: 'all', lingerMs: 0, deliveryTimeoutMs: 8000 });
      await check.connect();
      try {
        for (const topic of topics) {
          const parts = await waitFullIsr(admin, topic);
          await check.send({ topic, messages: parts.map((p) => ({ partition: p.partition, value: `converged ${topic}-${p.partition}` })) });
          for (const p of parts) {
            const { conn } = await leaderConn(topic, p.partition);
            await assertReplicasIdentical(topic, p.partition, await leaderEndOffset(conn, topic, p.partition));
          }
        }
      } finally {
        await check.disconnect();
      }
    });
  });
});
