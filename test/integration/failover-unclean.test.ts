/**
 * Unclean leader election end to end (issue 5, DESIGN rule 3), as real processes. Two topics on
 * the same three brokers (RF=3, min.insync.replicas=1): `unclean-on` with
 * unclean.leader.election.enable=true and `unclean-off` with the default (false). Brokers are
 * killed one by one with writes in between, so the ISR shrinks to the last one standing; then
 * every broker is down. The first to come back is out of sync:
 *
 * - `unclean-on`: it leads at once, the failover log (`tributary cluster failovers --json`)
 *   records an `unclean` election with the number of records lost, and it takes writes; when the
 *   last ISR member returns it truncates to the new leader's log.
 * - `unclean-off`: the partition stays offline (leader null), also with two out-of-sync replicas
 *   back, until the ISR member returns; then nothing acked is lost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../common/wait.js';
import type { Admin, Producer, Tributary } from '../../client/index.js';
import { runCli, type Harness } from './harness.js';
import type { DataCluster } from './data-path-helpers.js';
import { assertReplicasIdentical, ControllerView, recordsOf, startFailoverSuite } from './failover-helpers.js';

const ON = 'unclean-on';
const OFF = 'unclean-off';

let harness: Harness;
let cluster: DataCluster;
let client: Tributary;
let admin: Admin;
let view: ControllerView;

interface FailoverEntry {
  topic: string;
  partition: number;
  oldLeader: number;
  newLeader: number;
  leaderEpoch: number;
  trigger: string;
  lagAtPromotion: number;
  recordsLost: number;
}

describe('failover: unclean leader election, on and off', { timeout: 150_000 }, () => {
  before(async () => {
    ({ harness, cluster, client, admin, view } = await startFailoverSuite('failover-unclean', 'it-unclean', { brokers: 3 }, (h) => (harness = h)));
  });

  after(async () => {
    await Promise.allSettled([admin?.disconnect()]);
    await harness?.cleanup();
  });

  test('no ISR member alive and an out-of-sync replica back: it leads with the loss recorded when the topic allows it; otherwise the partition stays offline until an ISR member returns', { timeout: 120_000 }, async (t) => {
    await admin.createTopics([
      { topic: ON, partitions: 1, replicationFactor: 3, config: { 'min.insync.replicas': '1', 'unclean.leader.election.enable': 'true' } },
      { topic: OFF, partitions: 1, replicationFactor: 3, config: { 'min.insync.replicas': '1' } },
    ]);
    await view.waitFullIsr(ON);
    await view.waitFullIsr(OFF);
    const [first, second, last] = cluster.brokerIds; // killed in this order; `last` is the final ISR
    const acked = new Map<string, string[]>([[ON, []], [OFF, []]]);
    /** Where each topic's next write must land. */
    const nextOffset = new Map<string, number>([[ON, 0], [OFF, 0]]);
    let producer: Producer | undefined;
    const write = async (phase: string, n: number, topics = [ON, OFF]) => {
      // A fresh producer per phase: each is idempotent (the default), so nothing is written twice.
      producer = client.producer({ lingerMs: 0, requestTimeoutMs: 3000 });
      await producer.connect();
      try {
        for (const topic of topics) {
          const values = Array.from({ length: n }, (_, i) => `${topic}-${phase}-${i}`);
          const { records } = await producer.sendWithOffsets({ topic, messages: values.map((value) => ({ partition: 0, value })) });
          assert.deepEqual(records.map((r) => r.offset), values.map((_, i) => nextOffset.get(topic)! + i), `${topic} ${phase}: offsets`);
          acked.get(topic)!.push(...values);
          nextOffset.set(topic, nextOffset.get(topic)! + n);
        }
      } finally {
        await producer.disconnect();
      }
    };
    const isrIs = (topic: string, isr: number[]) =>
      waitFor(`${topic}-0 ISR = [${isr.join(',')}] with a leader`, async () => {
        const [p] = await view.partitions(topic);
        return p!.leader !== null && p!.isr.length === isr.length && isr.every((id) => p!.isr.includes(id)) ? p! : undefined;
      }, { timeoutMs: 15_000, intervalMs: 25 });
    const offline = (topic: string) =>
      waitFor(`${topic}-0 offline`, async () => {
        const [p] = await view.partitions(topic);
        return p!.leader === null ? p! : undefined;
      }, { timeoutMs: 15_000, intervalMs: 25 });
    const unfenced = (id: number) => waitFor(`broker ${id} unfenced`, async () => (await view.fenced(id)) === false, { timeoutMs: 20_000, intervalMs: 25 });

    try {
      await write('all3', 10);
      await cluster.kill(first!);
      for (const topic of [ON, OFF]) await isrIs(topic, [second!, last!]);
      await write('two', 10);
      await cluster.kill(second!);
      for (const topic of [ON, OFF]) await isrIs(topic, [last!]);
      await write('one', 10);
      await cluster.kill(last!);
      for (const topic of [ON, OFF]) {
        const p = await offline(topic);
        assert.deepEqual(p.isr, [last], `${topic}: the offline partition keeps its last ISR member`);
      }

      // The first broker killed comes back: it has only the first 10 records of each topic.
      await cluster.start(first!, 20_000);
      const [on] = await waitFor(`${ON}-0 led by broker ${first} (unclean)`, async () => {
        const parts = await view.partitions(ON);
        return parts[0]!.leader === first ? parts : undefined;
      }, { timeoutMs: 20_000, intervalMs: 25 });
      assert.deepEqual(on!.isr, [first], `${ON}: the unclean leader is the whole ISR`);
      const [offNow] = await view.partitions(OFF);
      assert.equal(offNow!.leader, null, `${OFF} got a leader from an out-of-sync replica`);

      // The failover log, as the CLI prints it.
      const cli = await runCli(['cluster', 'failovers', '--json', '--controllers', cluster.quorum.votersString]);
      assert.equal(cli.code, 0, cli.stderr);
      const entries = cli.stdout.trim().split('\n').map((l) => JSON.parse(l) as FailoverEntry);
      const uncleanOn = entries.filter((e) => e.topic === ON && e.trigger === 'unclean');
      assert.equal(uncleanOn.length, 1, `one unclean election of ${ON}: ${JSON.stringify(entries.filter((e) => e.topic === ON))}`);
      const u = uncleanOn[0]!;
      assert.equal(u.newLeader, first);
      assert.equal(u.leaderEpoch, on!.leaderEpoch);
      // Broker `last` held 30 records, broker `first` 10: up to 20 lost (the controller counts from
      // the log end offsets the brokers last reported in their heartbeats).
      assert.ok(u.recordsLost > 0 && u.recordsLost <= 20, `recordsLost ${u.recordsLost}, expected 1..20 (20 acked records are gone)`);
      assert.ok(!entries.some((e) => e.topic === OFF && e.trigger === 'unclean'), `${OFF} had an unclean election`);

      // The unclean leader takes writes, after the 10 records it has: the 20 acked later are gone.
      nextOffset.set(ON, 10);
      await write('unclean', 5, [ON]);

      // A second out-of-sync replica back: still no leader for the clean topic.
      await cluster.start(second!, 20_000);
      await unfenced(second!);
      await waitFor(`broker ${second} in the ISR of ${ON}-0`, async () => (await view.partitions(ON))[0]!.isr.includes(second!), { timeoutMs: 20_000, intervalMs: 25 });
      const [offStill] = await view.partitions(OFF);
      assert.equal(offStill!.leader, null, `${OFF} got a leader with only out-of-sync replicas ${first},${second} alive`);

      // The ISR member returns: the clean topic leads again with everything acked; on the unclean
      // topic it truncates to the new leader's log.
      await cluster.start(last!, 20_000);
      const [off] = await waitFor(`${OFF}-0 led by broker ${last}`, async () => {
        const parts = await view.partitions(OFF);
        return parts[0]!.leader === last ? parts : undefined;
      }, { timeoutMs: 20_000, intervalMs: 25 });
      assert.ok(off!.leaderEpoch > 0);
      await view.waitFullIsr(OFF, 30_000);
      await view.waitFullIsr(ON, 30_000);

      const offLog = recordsOf((await assertReplicasIdentical(cluster, view, OFF, 0)).bytes);
      assert.deepEqual(offLog.map((r) => r.value), acked.get(OFF), `${OFF}: every acked record, in order, on every replica`);
      const onLog = recordsOf((await assertReplicasIdentical(cluster, view, ON, 0)).bytes);
      const expectedOn = [...acked.get(ON)!.filter((v) => v.includes('-all3-')), ...acked.get(ON)!.filter((v) => v.includes('-unclean-'))];
      assert.deepEqual(onLog.map((r) => r.value), expectedOn, `${ON}: the unclean leader's log on every replica (the two later phases lost)`);
      const lost = acked.get(ON)!.length - onLog.length;
      t.diagnostic(`${ON}: broker ${first} elected unclean in epoch ${u.leaderEpoch}, failover log says recordsLost ${u.recordsLost}, lagAtPromotion ${u.lagAtPromotion}; ${lost} acked records really lost. ${OFF}: offline until broker ${last} returned, nothing lost`);
    } catch (error) {
      for (const line of cluster.diagnostics(30).split('\n')) t.diagnostic(line);
      throw error;
    } finally {
      await producer?.disconnect();
      await cluster.ensureAllRunning().catch(() => undefined);
    }
  });
});
