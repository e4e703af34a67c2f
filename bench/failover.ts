/**
 * Partition failover benchmark (a measurement, not a test): 3 `tributary controller` + 3
 * `tributary broker` processes with default settings on loopback, one topic with 1 partition,
 * RF=3, min.insync.replicas=2, and a steady idempotent acks=all SDK producer (default client
 * settings; 4 single-record sends kept in flight). Each round kill -9s the partition's leader and
 * measures how long writes stopped: the longest gap between consecutive acks from the last ack
 * before the kill until 20 acks after a new leader was elected. The killed broker is then
 * restarted, and the next round waits until it is back in the ISR (and leadership has settled on
 * the preferred replica) and acks flow again. At the end a consumer reads the partition from the
 * beginning and every acked record is looked up at its acked offset (`lost` counts the missing).
 *
 *   node dist/bench/failover.js [--rounds 20]
 *
 * Prints one JSON line:
 * {"bench":"failover","system":"tributary","rounds":N,"p50_ms":..,"p99_ms":..,"max_ms":..,"lost":0,"acked":..}
 * (percentiles by nearest rank). Per-round figures go to stderr.
 */
import { performance } from 'node:perf_hooks';
import { waitFor } from '../common/wait.js';
import { Tributary, type ConsumedMessage } from '../client/index.js';
import { Harness } from '../test/integration/harness.js';
import { consumeN, leaderEndOffset, startDataCluster } from '../test/integration/data-path-helpers.js';
import { ContinuousLoad, ControllerView } from '../test/integration/failover-helpers.js';
import { isMainModule, positiveIntFlag, runAsScript } from './args.js';
import { latencySummary } from './stats.js';

export interface FailoverBenchOptions {
  rounds: number;
}

const TOPIC = 'bench-failover';
const log = (line: string) => process.stderr.write(line + '\n');

export async function failoverBench(options: FailoverBenchOptions): Promise<void> {
  const rounds = options.rounds;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`rounds must be a positive integer, got ${rounds}`);
  const harness = new Harness('bench-failover');
  let client: Tributary | undefined;
  const closers: Array<() => Promise<void>> = [];
  try {
    const cluster = await startDataCluster(harness, { brokers: 3 });
    const view = new ControllerView(cluster.quorum.channel({ clientId: 'bench-failover-view', requestTimeoutMs: 5000 }));
    client = new Tributary({ clientId: 'bench-failover', bootstrap: cluster.bootstrap });
    const admin = client.admin();
    await admin.connect();
    closers.push(() => admin.disconnect());
    await admin.createTopics([{ topic: TOPIC, partitions: 1, replicationFactor: 3, config: { 'min.insync.replicas': '2' } }]);
    await view.waitFullIsr(TOPIC);
    const producer = client.producer({ acks: 'all', idempotent: true, lingerMs: 1, deliveryTimeoutMs: 30_000 });
    await producer.connect();
    closers.push(() => producer.disconnect());
    const load = new ContinuousLoad(producer, TOPIC, [0], { label: 'bench', window: 4, paceMs: 2 });
    closers.unshift(() => load.stop());
    load.start();
    await load.waitMoreAcks(200, 20_000);

    const samples: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      const [before] = await view.partitions(TOPIC);
      const victim = before!.leader!;
      await load.waitMoreAcks(20, 20_000); // steady before the kill
      const killedAt = performance.now();
      await cluster.kill(victim);
      const moved = await waitFor(`a new leader after killing broker ${victim}`, async () => {
        const [p] = await view.partitions(TOPIC);
        return p!.leader !== null && p!.leader !== victim && p!.leaderEpoch > before!.leaderEpoch ? p! : undefined;
      }, { timeoutMs: 30_000, intervalMs: 10 });
      const electedMs = performance.now() - killedAt;
      await load.waitMoreAcks(20, 30_000);
      const gap = load.longestGap(killedAt, performance.now());
      samples.push(gap);

      const restartAt = performance.now();
      await cluster.start(victim, 30_000);
      await view.waitFullIsr(TOPIC, 30_000);
      const rejoinMs = performance.now() - restartAt;
      // Leadership returns to the preferred replica on its own (auto leader rebalance): let it
      // settle, so the next round kills a leader that is not about to hand over.
      const settled = await waitFor('leadership on the preferred replica', async () => {
        const [p] = await view.partitions(TOPIC);
        return p!.leader === p!.replicas[0] && p!.isr.length === 3 ? p! : undefined;
      }, { timeoutMs: 15_000, intervalMs: 20 }).catch(() => undefined);
      await load.waitMoreAcks(20, 20_000);
      log(
        `round ${round}: killed leader ${victim} (epoch ${before!.leaderEpoch}); broker ${moved.leader} elected (epoch ${moved.leaderEpoch}) after ${electedMs.toFixed(0)} ms; ` +
          `longest ack gap ${gap.toFixed(1)} ms; ${victim} restarted and in the ISR after ${rejoinMs.toFixed(0)} ms; leader now ${settled?.leader ?? '(not the preferred replica)'}`,
      );
    }
    await load.stop();

    // Read everything back and look every acked record up at its offset.
    const consumer = client.consumer({ readFrom: 'leader', prefetchMessagesMax: 10_000 });
    await consumer.connect();
    const [final] = await view.partitions(TOPIC);
    const conn = await cluster.connect(final!.leader!);
    const end = await leaderEndOffset(conn, TOPIC, 0);
    let got: ConsumedMessage[];
    try {
      consumer.assign([{ topic: TOPIC, partition: 0, offset: 0 }]);
      got = await consumeN(consumer, end, 120_000);
    } finally {
      await consumer.disconnect();
    }
    const at = new Map(got.map((m) => [m.offset, m.value?.toString('utf8')]));
    let lost = 0;
    for (const a of load.acks) if (at.get(a.offset) !== a.value) lost++;
    const values = new Set<string>();
    let duplicates = 0;
    for (const m of got) {
      const v = m.value?.toString('utf8') ?? '';
      if (values.has(v)) duplicates++;
      values.add(v);
    }
    log(`read back ${got.length} records (end offset ${end}); ${load.ackCount} acked, ${lost} of them missing, ${duplicates} duplicates, ${load.failures.length} sends failed${load.failures.length > 0 ? ` (first: ${load.failures[0]!.error})` : ''}`);

    process.stdout.write(
      JSON.stringify({
        bench: 'failover',
        system: 'tributary',
        rounds,
        ...latencySummary(samples),
        lost,
        acked: load.ackCount,
      }) + '\n',
    );
  } finally {
    for (const close of closers) await close().catch(() => undefined);
    await harness.cleanup();
  }
}

if (isMainModule(import.meta.url)) await runAsScript((argv) => failoverBench({ rounds: positiveIntFlag(argv, 'rounds', 20) }));
