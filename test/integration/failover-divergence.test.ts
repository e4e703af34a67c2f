/**
 * Divergent-suffix truncation with real processes (issue 5, DESIGN rule 4). A topic with RF=3 and
 * min.insync.replicas=1, the default replica.lag.time.max.ms (so briefly stopped followers stay in
 * the ISR). Both followers are stopped (SIGSTOP); records produced with acks=1 then exist on the
 * leader only (the high watermark does not move; one record goes first to use up the fetches the
 * followers had parked at the leader, whose answers wait in their socket buffers); the leader is
 * killed -9 and the followers
 * resumed; one of them is elected cleanly from the ISR and takes more writes at the same offsets.
 * When the old leader restarts it must truncate its divergent suffix (OffsetForLeaderEpoch) and
 * converge: its log (served and its segment files) equals the new leader's, and the records only
 * it had are gone everywhere.
 *
 * The controllers run with broker.session.timeout.ms=4000 so the followers' stop (a few hundred
 * ms) cannot get them fenced (a fenced broker leaves every ISR) on a loaded machine.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../common/wait.js';
import type { Admin, Tributary } from '../../client/index.js';
import { ApiKey } from '../../protocol/api-keys.js';
import type { Harness } from './harness.js';
import { leaderEndOffset, readReplica, type DataCluster } from './data-path-helpers.js';
import { assertReplicasIdentical, ControllerView, recordsOf, startFailoverSuite } from './failover-helpers.js';

const UNACKED = 'diverge-leader-only-';

let harness: Harness;
let cluster: DataCluster;
let client: Tributary;
let admin: Admin;
let view: ControllerView;

describe('failover: divergent suffix truncated on a real restart', { timeout: 150_000 }, () => {
  before(async () => {
    ({ harness, cluster, client, admin, view } = await startFailoverSuite('failover-divergence', 'it-diverge', { brokers: 3, controllerProperties: { 'broker.session.timeout.ms': '4000' } }, (h) => (harness = h)));
  });

  after(async () => {
    await Promise.allSettled([admin?.disconnect()]);
    await harness?.cleanup();
  });

  test('records only the old leader had (acks=1, followers stopped) are truncated when it returns; every replica converges on the new leader\'s log', { timeout: 120_000 }, async (t) => {
    const topic = 'diverge';
    await admin.createTopics([{ topic, partitions: 1, replicationFactor: 3, config: { 'min.insync.replicas': '1' } }]);
    const [old] = await view.waitFullIsr(topic);
    const oldLeader = old!.leader!;
    const followers = old!.replicas.filter((r) => r !== oldLeader);
    const safe = client.producer({ lingerMs: 0 }); // acks all, idempotent (the defaults)
    const leaderOnly = client.producer({ acks: 1, lingerMs: 0, requestTimeoutMs: 3000 });
    await Promise.all([safe.connect(), leaderOnly.connect()]);
    try {
      // The acks=1 producer writes first too, so it has its metadata and its connection to the
      // leader before the followers stop (a metadata request to a stopped broker would hang).
      const warm = await leaderOnly.sendWithOffsets({ topic, messages: [{ partition: 0, value: 'diverge-before-0' }] });
      assert.equal(warm.records[0]!.offset, 0);
      const before = await safe.sendWithOffsets({ topic, messages: Array.from({ length: 19 }, (_, i) => ({ partition: 0, value: `diverge-before-${i + 1}` })) });
      assert.deepEqual(before.records.map((r) => r.offset), Array.from({ length: 19 }, (_, i) => i + 1));
      await waitFor('every replica at high watermark 20', async () => {
        for (const r of old!.replicas) if ((await readReplica(await cluster.connect(r), topic, 0)).highWatermark < 20) return false;
        return true;
      }, { timeoutMs: 10_000, intervalMs: 20 });
      const leaderConn = await cluster.connect(oldLeader);

      // Followers stopped: acks=1 records land on the leader only; the high watermark stays.
      const stoppedAt = performance.now();
      for (const f of followers) cluster.broker(f).process.pause();
      // Each stopped follower may still have a fetch parked at the leader: the first append
      // answers it, and those bytes wait in the follower's socket buffer to be read on SIGCONT. So
      // one record goes first to use up those fetches; what follows is on the leader only.
      const flushed = await leaderOnly.sendWithOffsets({ topic, messages: [{ partition: 0, value: 'diverge-parked-fetches' }] });
      assert.equal(flushed.records[0]!.offset, 20);
      const unacked = await leaderOnly.sendWithOffsets({ topic, messages: Array.from({ length: 10 }, (_, i) => ({ partition: 0, value: `${UNACKED}${i}` })) });
      assert.deepEqual(unacked.records.map((r) => r.offset), Array.from({ length: 10 }, (_, i) => 21 + i), 'acks=1 offsets on the leader');
      assert.equal(await leaderEndOffset(leaderConn, topic, 0), 20, 'the high watermark moved without the followers');
      await cluster.kill(oldLeader);
      for (const f of followers) cluster.broker(f).process.resume();
      const stoppedMs = performance.now() - stoppedAt;

      // A follower is elected cleanly (it was in the ISR) and takes writes at offsets 20.. again.
      const moved = await waitFor(`a new leader of ${topic}-0 among ${followers.join(',')}`, async () => {
        const [q] = await view.partitions(topic);
        return q!.leader !== null && followers.includes(q!.leader) && q!.leaderEpoch > old!.leaderEpoch ? q! : undefined;
      }, { timeoutMs: 20_000, intervalMs: 25 });
      const failovers = await cluster.quorum.channel({ clientId: 'it-diverge-failovers' }).request(ApiKey.DescribeFailovers, { limit: 100 });
      const election = failovers.entries.find((e) => e.topic === topic && e.partition === 0 && e.leaderEpoch === moved.leaderEpoch);
      assert.ok(election !== undefined, 'the failover log has the election');
      assert.notEqual(election.trigger, 'unclean', 'the new leader came from the ISR');
      assert.equal(election.recordsLost, 0);
      const after = await safe.sendWithOffsets({ topic, messages: Array.from({ length: 20 }, (_, i) => ({ partition: 0, value: `diverge-after-${i}` })) });
      // Offset 20 (the parked fetches' record) may or may not have reached the new leader.
      const resumeAt = after.records[0]!.offset;
      assert.ok(resumeAt === 20 || resumeAt === 21, `the new leader writes from offset ${resumeAt}: the leader-only records (21..30) must not be in its log`);
      assert.deepEqual(after.records.map((r) => r.offset), Array.from({ length: 20 }, (_, i) => resumeAt + i));

      // The old leader restarts with the divergent suffix on disk, truncates it, and converges.
      const oldDir = path.join(cluster.broker(oldLeader).dataDir, `${topic}-0`);
      const onDisk = () => fs.readdirSync(oldDir).filter((n) => n.endsWith('.log')).some((n) => fs.readFileSync(path.join(oldDir, n)).includes(UNACKED));
      assert.ok(onDisk(), `the old leader's segment files hold the acks=1 records before it restarts`);
      const restartAt = performance.now();
      await cluster.start(oldLeader, 20_000);
      await view.waitFullIsr(topic, 30_000);
      const rejoinedMs = performance.now() - restartAt;
      const { bytes, end, leader } = await assertReplicasIdentical(cluster, view, topic, 0);
      assert.equal(end, resumeAt + 20);
      const records = recordsOf(bytes);
      assert.deepEqual(records.map((r) => r.value), [
        ...Array.from({ length: 20 }, (_, i) => `diverge-before-${i}`),
        ...(resumeAt === 21 ? ['diverge-parked-fetches'] : []),
        ...Array.from({ length: 20 }, (_, i) => `diverge-after-${i}`),
      ]);
      assert.deepEqual(records.map((r) => r.offset), Array.from({ length: end }, (_, i) => i));
      assert.ok(records.slice(resumeAt).every((r) => r.epoch === moved.leaderEpoch), `offsets ${resumeAt}.. carry the new leader epoch`);
      for (const r of old!.replicas) {
        const mine = recordsOf((await readReplica(await cluster.connect(r), topic, 0)).bytes);
        assert.ok(!mine.some((x) => x.value?.startsWith(UNACKED) === true), `broker ${r} serves a record only the old leader had`);
      }
      assert.ok(!onDisk(), 'the old leader still has the divergent records in its segment files');
      t.diagnostic(`followers ${followers.join(',')} stopped ${Math.round(stoppedMs)} ms; broker ${moved.leader} led epoch ${moved.leaderEpoch} (${election.trigger}); new writes from offset ${resumeAt}; old leader ${oldLeader} truncated its suffix from ${resumeAt} and was back in the ISR ${Math.round(rejoinedMs)} ms after its restart; leader now ${leader}, ${end} records identical on every replica`);
    } catch (error) {
      for (const line of cluster.diagnostics(30).split('\n')) t.diagnostic(line);
      throw error;
    } finally {
      for (const id of cluster.brokerIds) cluster.broker(id).process.resume();
      await Promise.allSettled([safe.disconnect(), leaderOnly.disconnect()]);
    }
  });
});
