/**
 * A rolling restart (issue 5: "a rolling restart of every broker loses no write and causes no
 * error a user sees"): 3 controllers + 3 brokers as processes, a topic with RF=3 and
 * min.insync.replicas=2, an SDK producer with its default settings (idempotent, acks all) writing
 * continuously and a consumer reading from the beginning. Each broker in turn gets SIGTERM
 * (controlled shutdown), is started again on the same data dir, and the next one goes only when it
 * is back in every ISR. No send may be rejected, every acked record must be in the log exactly
 * once, in send order, at its acked offset, on every replica, and the consumer must have read it.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import type { Admin, Tributary } from '../../client/index.js';
import type { Harness } from './harness.js';
import type { DataCluster } from './data-path-helpers.js';
import { BackgroundReader, checkAckedLogs, ContinuousLoad, ControllerView, startFailoverSuite } from './failover-helpers.js';

let harness: Harness;
let cluster: DataCluster;
let client: Tributary;
let admin: Admin;
let view: ControllerView;

describe('failover: rolling restart of every broker', { timeout: 180_000 }, () => {
  before(async () => {
    ({ harness, cluster, client, admin, view } = await startFailoverSuite('failover-rolling', 'it-rolling', { brokers: 3 }, (h) => (harness = h)));
  });

  after(async () => {
    await Promise.allSettled([admin?.disconnect()]);
    await harness?.cleanup();
  });

  test('SIGTERM and restart each broker in turn under continuous default-producer writes and a reader: no send rejected, every ack once at its offset, nothing reordered', { timeout: 150_000 }, async (t) => {
    const topic = 'rolling';
    await admin.createTopics([{ topic, partitions: 3, replicationFactor: 3, config: { 'min.insync.replicas': '2' } }]);
    await view.waitFullIsr(topic);
    // The producer's defaults (idempotent, acks all); requestTimeoutMs bounds how long a batch
    // waits on a connection whose broker went away without a word.
    const producer = client.producer({ lingerMs: 2, requestTimeoutMs: 3000 });
    await producer.connect();
    assert.ok(producer.producerIdentity.producerId >= 0, 'the default producer is idempotent');
    const load = new ContinuousLoad(producer, topic, [0, 1, 2], { label: 'rolling', window: 3, paceMs: 10 });
    const reader = new BackgroundReader(client.consumer({ readFrom: 'leader', maxWaitMs: 500 }));
    const rounds: string[] = [];
    try {
      await reader.start(topic);
      load.start();
      await load.waitMoreAcks(60, 20_000);
      for (const id of cluster.brokerIds) {
        const proc = cluster.broker(id).process;
        const at = performance.now();
        const status = await proc.stop(15_000);
        const stoppedMs = performance.now() - at;
        assert.equal(status.signal, null, `broker ${id} did not exit by itself on SIGTERM (${JSON.stringify(status)})`);
        assert.equal(status.code, 0, `broker ${id} exited ${JSON.stringify(status)} on SIGTERM`);
        // Writes go on while it is down (min.insync.replicas=2 of the remaining two).
        await load.waitMoreAcks(30, 20_000);
        await cluster.start(id, 20_000);
        await view.waitFullIsr(topic, 30_000);
        const backMs = performance.now() - at;
        await load.waitMoreAcks(30, 20_000);
        rounds.push(`broker ${id}: stopped in ${Math.round(stoppedMs)} ms, back in every ISR after ${Math.round(backMs)} ms`);
      }
      await load.stop();
      t.diagnostic(rounds.join('; '));
      t.diagnostic(`${load.ackCount} acked records over 3 partitions; producer ${JSON.stringify(producer.producerIdentity)}`);

      assert.deepEqual(load.failures.slice(0, 5), [], `${load.failures.length} sends were rejected`);
      const { problems } = await checkAckedLogs(cluster, view, load);
      assert.deepEqual(problems, [], 'the final logs are not what was acked');
      await reader.waitForAcks(load, 30_000);
      assert.deepEqual(reader.problems.slice(0, 10), [], 'what the consumer read');
      const readerError = await reader.stop();
      assert.equal(readerError, undefined, `the consumer's iterator threw: ${String(readerError)}`);
    } catch (error) {
      for (const line of cluster.diagnostics(30).split('\n')) t.diagnostic(line);
      throw error;
    } finally {
      await load.stop();
      await reader.stop().catch(() => undefined);
      await producer.disconnect();
    }
  });
});
