/**
 * A partition leader cut off from the controllers only (issue 5, DESIGN rule 2): every broker
 * reaches the controllers through its own TCP proxies; the leader's are cut ('drop': a pulled
 * cable, nothing is refused, nothing gets through), while its links to clients and to the other
 * brokers stay up. It must stop serving as leader when its lease lapses (Produce and Fetch get
 * NOT_LEADER_OR_FOLLOWER or an epoch error, never success), a new leader must be elected and take
 * the writes, and after the links heal it must come back as a follower, catch up and rejoin the
 * ISR, with no acked write lost and every replica identical.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../common/wait.js';
import type { Admin, Tributary } from '../../client/index.js';
import { ApiKey } from '../../protocol/api-keys.js';
import { buildBatch } from '../../protocol/record-batch.js';
import type { RpcConnection } from '../../protocol/transport/connection.js';
import type { Harness } from './harness.js';
import { readReplica, type DataCluster } from './data-path-helpers.js';
import { checkAckedLogs, ContinuousLoad, ControllerView, DEPOSED_ERRORS, errorName, recordsOf, startFailoverSuite } from './failover-helpers.js';

const PROBE = 'netcut-probe-';

let harness: Harness;
let cluster: DataCluster;
let client: Tributary;
let admin: Admin;
let view: ControllerView;


async function produceTo(conn: RpcConnection, topic: string, epoch: number, value: string): Promise<number> {
  const r = await conn.request(ApiKey.Produce, {
    transactionalId: null,
    acks: 1,
    timeoutMs: 5000,
    topicData: [{ name: topic, partitionData: [{ index: 0, currentLeaderEpoch: epoch, records: buildBatch({ records: [{ key: null, value: Buffer.from(value) }], firstTimestamp: Date.now() }) }] }],
  });
  return r.responses[0]!.partitionResponses[0]!.errorCode;
}

async function fetchFrom(conn: RpcConnection, topic: string, epoch: number): Promise<number> {
  const r = await conn.request(ApiKey.Fetch, {
    replicaId: -1,
    replicaEpoch: -1,
    maxWaitMs: 0,
    minBytes: 0,
    maxBytes: 1024 * 1024,
    topics: [{ topic, partitions: [{ partition: 0, currentLeaderEpoch: epoch, fetchOffset: 0, lastFetchedEpoch: -1, logStartOffset: -1, partitionMaxBytes: 1024 * 1024 }] }],
  });
  return r.responses[0]!.partitions[0]!.errorCode;
}

describe('failover: a leader cut off from the controllers only', { timeout: 150_000 }, () => {
  before(async () => {
    ({ harness, cluster, client, admin, view } = await startFailoverSuite('failover-network', 'it-netcut', { brokers: 3, proxiedControllers: true }, (h) => (harness = h)));
  });

  after(async () => {
    await Promise.allSettled([admin?.disconnect()]);
    await harness?.cleanup();
  });

  test('it stops leading when its lease lapses, a new leader takes the writes, and after healing it rejoins as a follower with nothing acked lost', { timeout: 120_000 }, async (t) => {
    const topic = 'netcut';
    await admin.createTopics([{ topic, partitions: 1, replicationFactor: 3, config: { 'min.insync.replicas': '2' } }]);
    const [old] = await view.waitFullIsr(topic);
    const cutOff = old!.leader!;
    const producer = client.producer({ lingerMs: 2, requestTimeoutMs: 3000 });
    await producer.connect();
    const load = new ContinuousLoad(producer, topic, [0], { label: 'netcut', window: 2, paceMs: 10 });
    let probes = 0;
    try {
      load.start();
      await load.waitMoreAcks(50, 20_000);
      const conn = await cluster.connect(cutOff); // direct: only its controller links are cut

      const cutAt = performance.now();
      cluster.cutControllers(cutOff, 'drop');
      // Its lease (0.9 × the 1 s session) lapses without heartbeat answers: it refuses to lead.
      await waitFor(`broker ${cutOff}, cut off from the controllers, to refuse a consumer Fetch as leader`, async () => {
        const code = await fetchFrom(conn, topic, old!.leaderEpoch);
        return code !== 0 ? code : undefined;
      }, { timeoutMs: 10_000, intervalMs: 20 });
      const refusedMs = performance.now() - cutAt;
      const refusals: string[] = [];
      for (const epoch of [old!.leaderEpoch, -1]) {
        const w = await produceTo(conn, topic, epoch, `${PROBE}${probes++}`);
        const f = await fetchFrom(conn, topic, epoch);
        refusals.push(`epoch ${epoch}: Produce ${errorName(w)}, Fetch ${errorName(f)}`);
        assert.ok(DEPOSED_ERRORS.has(w), `broker ${cutOff} without a lease answered a Produce at epoch ${epoch} with ${errorName(w)}`);
        assert.ok(DEPOSED_ERRORS.has(f), `broker ${cutOff} without a lease answered a Fetch at epoch ${epoch} with ${errorName(f)}`);
      }

      // The controllers fence it and elect a clean leader from the rest of the ISR; writes go on.
      const moved = await waitFor(`a new leader of ${topic}-0 while broker ${cutOff} is cut off`, async () => {
        const [q] = await view.partitions(topic);
        return q!.leader !== null && q!.leader !== cutOff && q!.leaderEpoch > old!.leaderEpoch ? q! : undefined;
      }, { timeoutMs: 15_000, intervalMs: 20 });
      const electedMs = performance.now() - cutAt;
      assert.equal(await view.fenced(cutOff), true, `broker ${cutOff} is not fenced`);
      await load.waitMoreAcks(30, 15_000);
      // Still cut off (its metadata may still call it leader): it keeps refusing.
      const w = await produceTo(conn, topic, old!.leaderEpoch, `${PROBE}${probes++}`);
      const f = await fetchFrom(conn, topic, old!.leaderEpoch);
      assert.ok(DEPOSED_ERRORS.has(w) && DEPOSED_ERRORS.has(f), `broker ${cutOff}, still cut off after broker ${moved.leader} took over, answered Produce ${errorName(w)}, Fetch ${errorName(f)}`);
      t.diagnostic(`broker ${cutOff} cut off from the controllers: refused to lead after ${Math.round(refusedMs)} ms (${refusals.join('; ')}); broker ${moved.leader} leads epoch ${moved.leaderEpoch} after ${Math.round(electedMs)} ms`);

      // Heal: it comes back as a follower, catches up and rejoins the ISR.
      const healAt = performance.now();
      cluster.healControllers(cutOff);
      const back = await waitFor(`broker ${cutOff} back in the ISR of ${topic}-0`, async () => {
        const [q] = await view.partitions(topic);
        return q!.isr.length === 3 && q!.isr.includes(cutOff) ? q! : undefined;
      }, { timeoutMs: 20_000, intervalMs: 25 });
      assert.ok(back.leaderEpoch >= moved.leaderEpoch, `the leader epoch went back from ${moved.leaderEpoch} to ${back.leaderEpoch}`);
      // It may lead again later (preferred-leader election), but only in a newer epoch, once in sync.
      if (back.leader === cutOff) assert.ok(back.leaderEpoch > moved.leaderEpoch, `broker ${cutOff} leads again in epoch ${back.leaderEpoch}, not newer than ${moved.leaderEpoch}`);
      assert.equal(await view.fenced(cutOff), false, `broker ${cutOff} is still fenced after healing`);
      // Now it knows the new epoch: the old one is fenced.
      const stale = await produceTo(conn, topic, old!.leaderEpoch, `${PROBE}${probes++}`);
      assert.ok(DEPOSED_ERRORS.has(stale), `after healing, broker ${cutOff} answered a Produce at the old epoch with ${errorName(stale)}`);
      await load.waitMoreAcks(30, 15_000);
      await load.stop();
      t.diagnostic(`healed: broker ${cutOff} back in the ISR after ${Math.round(performance.now() - healAt)} ms (leader ${back.leader}, epoch ${back.leaderEpoch}); ${load.ackCount} acked records`);

      assert.deepEqual(load.failures.slice(0, 5), [], `${load.failures.length} sends failed`);
      const { problems } = await checkAckedLogs(cluster, view, load);
      assert.deepEqual(problems, [], 'the final log is not what was acked');
      for (const r of old!.replicas) {
        const records = recordsOf((await readReplica(await cluster.connect(r), topic, 0)).bytes);
        assert.ok(!records.some((x) => x.value?.startsWith(PROBE) === true), `broker ${r} holds a write sent to the leader without a lease`);
      }
    } catch (error) {
      for (const line of cluster.diagnostics(30).split('\n')) t.diagnostic(line);
      throw error;
    } finally {
      cluster.healControllers(cutOff);
      await load.stop();
      await producer.disconnect();
    }
  });
});
