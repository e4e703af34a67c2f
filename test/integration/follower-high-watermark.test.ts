/**
 * Issue 5: a follower learns a new high watermark promptly, not with its next fetch reply.
 *
 * The brokers run with replica.fetch.wait.max.ms=60000, so an idle follower's long poll at the
 * leader would sit for a minute. Before the fix the follower heard of a high watermark only in
 * the reply to its next fetch, so a read-your-writes fetch at a follower (minOffset = just past
 * the acked record) waited out its whole maxWaitMs and was redirected to the leader. Now the
 * leader answers a parked follower fetch as soon as the high watermark moves past what that
 * follower was last told (Kafka completes a delayed follower fetch when the HW moves), and the
 * follower itself serves the record. The assertion is on that outcome (the follower serves the
 * record, not a redirect), never on elapsed time.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Admin, Producer, Tributary } from '../../client/index.js';
import { ApiKey } from '../../protocol/api-keys.js';
import { errorNameOf } from '../../protocol/errors.js';
import { decodeBatchRecords, iterateBatches } from '../../protocol/record-batch.js';
import path from 'node:path';
import { HIGH_WATERMARK_FILE } from '../../broker/log/log-loader.js';
import { readOffsetCheckpoint } from '../../broker/log/checkpoint-file.js';
import { waitFor } from '../../common/wait.js';
import { Harness } from './harness.js';
import { startDataCluster, waitFullIsr, type DataCluster } from './data-path-helpers.js';

/** Far above anything this test waits for: a follower that has to wait for it never answers in time. */
const REPLICA_FETCH_WAIT_MAX_MS = 60_000;
/** The read-your-writes fetch's own wait: below the replica long poll, so only a prompt HW can satisfy it. */
const READER_WAIT_MS = 20_000;
/** replica.high.watermark.checkpoint.interval.ms for these brokers (Kafka's default is 5000). */
const HW_CHECKPOINT_INTERVAL_MS = 200;

let harness: Harness;
let cluster: DataCluster;
let client: Tributary;
let admin: Admin;
let producer: Producer;

describe('a follower learns the high watermark promptly', { timeout: 180_000 }, () => {
  before(async () => {
    harness = new Harness('follower-hw');
    try {
      cluster = await startDataCluster(harness, {
        brokers: 3,
        brokerProperties: { 'replica.fetch.wait.max.ms': String(REPLICA_FETCH_WAIT_MAX_MS), 'replica.high.watermark.checkpoint.interval.ms': String(HW_CHECKPOINT_INTERVAL_MS) },
      });
      client = cluster.client('it-follower-hw');
      admin = client.admin();
      await admin.connect();
      producer = client.producer({ acks: 'all', lingerMs: 0 });
      await producer.connect();
    } catch (error) {
      process.stderr.write(`cluster start failed; temp dir ${harness.root}\n${harness.diagnostics(40)}\n`);
      throw error;
    }
  });

  after(async () => {
    await Promise.allSettled([producer?.disconnect(), admin?.disconnect()]);
    await harness?.cleanup();
  });

  test('read-your-writes at each follower, right after each acks=all ack, is served by the follower', { timeout: 150_000 }, async (t) => {
    const topic = 'follower-hw';
    await admin.createTopics([{ topic, partitions: 1, replicationFactor: 3, config: { 'min.insync.replicas': '2' } }]);
    const [p] = await waitFullIsr(admin, topic);
    const leader = p!.leader!;
    const followers = p!.replicas.filter((id) => id !== leader);
    assert.equal(followers.length, 2);
    for (let round = 0; round < 3; round++) {
      for (const follower of followers) {
        const value = `ryw-${round}-${follower}`;
        const { records } = await producer.sendWithOffsets({ topic, messages: [{ partition: 0, value }] });
        const offset = records[0]!.offset;
        const conn = await cluster.connect(follower);
        const askedAt = performance.now();
        const r = await conn.request(
          ApiKey.Fetch,
          {
            replicaId: -1,
            replicaEpoch: -1,
            maxWaitMs: READER_WAIT_MS,
            minBytes: 1,
            maxBytes: 1024 * 1024,
            topics: [{ topic, partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: offset, lastFetchedEpoch: -1, logStartOffset: -1, partitionMaxBytes: 1024 * 1024, minOffset: offset + 1 }] }],
          },
          { timeoutMs: READER_WAIT_MS + 10_000 },
        );
        const part = r.responses[0]!.partitions[0]!;
        assert.equal(errorNameOf(part.errorCode), 'NONE', `round ${round}, follower ${follower}: the read-your-writes fetch for offset ${offset} was not served by the follower`);
        assert.ok(part.highWatermark >= offset + 1, `follower ${follower}: high watermark ${part.highWatermark} does not cover offset ${offset}`);
        const bytes = part.records === null ? Buffer.alloc(0) : Buffer.from(part.records);
        const got = [...iterateBatches(bytes)].flatMap(({ pos }) => decodeBatchRecords(bytes, pos)).find((rec) => rec.offset === offset);
        assert.equal(got?.value?.toString(), value, `follower ${follower}: the record at ${offset}`);
        t.diagnostic(`round ${round}: follower ${follower} served offset ${offset} ${Math.round(performance.now() - askedAt)} ms after the ack (replica.fetch.wait.max.ms=${REPLICA_FETCH_WAIT_MAX_MS})`);
      }
    }
  });

  test('every replica saves the high watermark to disk every replica.high.watermark.checkpoint.interval.ms, without a restart', { timeout: 60_000 }, async () => {
    const topic = 'hw-checkpoint';
    await admin.createTopics([{ topic, partitions: 1, replicationFactor: 3, config: { 'min.insync.replicas': '2' } }]);
    const [p] = await waitFullIsr(admin, topic);
    await producer.send({ topic, messages: Array.from({ length: 25 }, (_, i) => ({ partition: 0, value: `v${i}` })) });
    const checkpointed = (id: number) => readOffsetCheckpoint(path.join(cluster.broker(id).dataDir, `${topic}-0`, HIGH_WATERMARK_FILE));
    // The followers learn HW 25 with their next fetch answers; every replica's file must then
    // say 25 while the brokers keep running (before, it was written only on a clean shutdown).
    await waitFor('each replica\'s high-watermark checkpoint file to reach 25', () => p!.replicas.every((id) => checkpointed(id) === 25), { timeoutMs: 20_000 });
  });
});
