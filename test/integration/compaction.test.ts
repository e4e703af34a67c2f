/**
 * Log compaction with real processes: 3 controllers + 2 brokers, a topic with
 * cleanup.policy=compact and small segments (14 KiB, the minimum) replicated on both brokers. Each
 * broker's log cleaner compacts its own replica (log.cleaner.backoff.ms=100); a consumer reading
 * from the beginning then sees the latest value of every key, and both replicas hold no older
 * value of any key in their cleaned segments. Keyless records are refused with INVALID_RECORD.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../../common/wait.js';
import type { Admin, Producer, Tributary } from '../../client/index.js';
import { decodeBatchRecords, iterateBatches } from '../../protocol/record-batch.js';
import { Harness } from './harness.js';
import { describePartitions, expectTributaryError, readReplica, segmentFiles, startDataCluster, waitFullIsr, type DataCluster } from './data-path-helpers.js';

const TOPIC = 'compacted';
const KEYS = 20;
const ROUNDS = 12;
/** ~300-byte values: 20 keys x 12 rounds is about 75 KiB, five or so 14 KiB segments. */
const VALUE_PAD = 300;

let harness: Harness;
let cluster: DataCluster;
let client: Tributary;
let admin: Admin;
let producer: Producer;

before(async () => {
  harness = new Harness('compaction');
  cluster = await startDataCluster(harness, { brokers: 2, brokerProperties: { 'log.cleaner.backoff.ms': '100' } });
  client = cluster.client('it-compaction');
  admin = client.admin();
  await admin.connect();
  producer = client.producer({ acks: 'all' });
  await producer.connect();
});

after(async () => {
  await Promise.allSettled([producer?.disconnect(), admin?.disconnect()]);
  await harness?.cleanup();
});

function value(key: number, round: number): string {
  return `k${key}-r${round}-`.padEnd(VALUE_PAD, '.');
}

/** Every record a replica serves up to its high watermark, decoded. */
async function replicaRecords(brokerId: number): Promise<Array<{ offset: number; key: string; value: string | null }>> {
  const read = await readReplica(await cluster.connect(brokerId), TOPIC, 0);
  const out: Array<{ offset: number; key: string; value: string | null }> = [];
  for (const { pos } of iterateBatches(read.bytes)) {
    for (const r of decodeBatchRecords(read.bytes, pos)) out.push({ offset: r.offset, key: r.key!.toString(), value: r.value?.toString() ?? null });
  }
  return out;
}

test('a broker compacts a compacted topic; a consumer reads the latest value per key', { timeout: 60_000 }, async (t) => {
  try {
    await admin.createTopics([{ topic: TOPIC, partitions: 1, replicationFactor: 2, config: { 'cleanup.policy': 'compact', 'segment.bytes': String(14 * 1024), 'min.cleanable.dirty.ratio': '0.1' } }]);
    await waitFullIsr(admin, TOPIC);

    const refused = await expectTributaryError(producer.send({ topic: TOPIC, messages: [{ key: null, value: 'no key' }] }), 'a keyless record on a compacted topic');
    assert.equal(refused.code, 'INVALID_RECORD');

    let produced = 0;
    for (let round = 0; round < ROUNDS; round++) {
      await producer.send({ topic: TOPIC, messages: Array.from({ length: KEYS }, (_, k) => ({ key: `k${k}`, value: value(k, round) })) });
      produced += KEYS;
    }
    // Delete one key: its tombstone stays (delete.retention.ms is a day) and hides older values.
    await producer.send({ topic: TOPIC, messages: [{ key: 'k0', value: null }] });
    produced += 1;

    // Both replicas compact on their own: wait until each serves far fewer records than produced,
    // up to the last one (a follower learns the high watermark on its next fetch), and its closed
    // segments are all cleaned (a segment that rolled after a cleaning pass waits for the next).
    const replicas = (await describePartitions(admin, TOPIC))[0]!.replicas;
    assert.equal(replicas.length, 2);
    const closedSegmentKeys = (id: number): string[] => {
      const files = [...segmentFiles(cluster.broker(id).dataDir, TOPIC, 0).values()];
      const keys: string[] = [];
      for (const bytes of files.slice(0, -1)) {
        for (const { pos } of iterateBatches(bytes)) for (const r of decodeBatchRecords(bytes, pos)) keys.push(r.key!.toString());
      }
      return keys;
    };
    await waitFor(
      'both replicas compacted',
      async () => {
        for (const id of replicas) {
          const records = await replicaRecords(id);
          if (records.length > produced / 2 || records[records.length - 1]?.offset !== produced - 1) return false;
          const keys = closedSegmentKeys(id);
          if (new Set(keys).size !== keys.length) return false;
        }
        return true;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );

    const expected = new Map<string, string | null>();
    for (let k = 0; k < KEYS; k++) expected.set(`k${k}`, value(k, ROUNDS - 1));
    expected.set('k0', null);
    for (const id of replicas) {
      const records = await replicaRecords(id);
      const offsets = records.map((r) => r.offset);
      assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b), `broker ${id}: offsets increase`);
      assert.equal(offsets[offsets.length - 1], produced - 1, `broker ${id}: the last offset is kept`);
      const latest = new Map<string, string | null>();
      for (const r of records) latest.set(r.key, r.value);
      assert.deepEqual(latest, expected, `broker ${id}: the latest value per key`);
      // In the closed segments (all but the newest file) every key appears once.
      const keysInClosed = closedSegmentKeys(id);
      assert.equal(new Set(keysInClosed).size, keysInClosed.length, `broker ${id}: no key twice in its cleaned segments`);
    }

    // A consumer from the beginning: every key's last value (k0 as its tombstone), at its original offset.
    const consumer = client.consumer({ readFrom: 'leader' });
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [TOPIC], fromBeginning: true });
      const seen = new Map<string, string | null>();
      const it = consumer[Symbol.asyncIterator]();
      const deadline = setTimeout(() => void consumer.disconnect(), 15_000);
      try {
        for (;;) {
          const r = await it.next();
          if (r.done === true) break;
          seen.set(r.value.key!.toString(), r.value.value?.toString() ?? null);
          if (r.value.offset === produced - 1) break;
        }
      } finally {
        clearTimeout(deadline);
      }
      assert.deepEqual(seen, expected);
    } finally {
      await consumer.disconnect();
    }
  } catch (error) {
    for (const line of cluster.diagnostics(25).split('\n')) t.diagnostic(line);
    throw error;
  }
});
