/**
 * `npm run bench -- rebalance [--rounds 10] [--members 6] [--partitions 24]`
 *
 * A local cluster (3 controllers + 3 brokers, `tributary cluster up`), a topic of 24 partitions
 * with replication.factor=3, a producer writing one record to every partition every 10 ms, and 6
 * group members in this process. A 7th member is added and removed `rounds` times. Per membership
 * change: the time from the change (subscribe() / disconnect() of the 7th) until the group is
 * stable again with every partition owned exactly once (`p50_ms`, `max_ms`); and, for the members
 * whose assignment did not change, the longest time any of them received nothing while records
 * were flowing to its partitions (`max_stall_ms`). `baseline_stall_ms` is the same measure over a
 * quiet stretch with no change, so the stall reads against what the load alone gives.
 *
 * Prints {"bench":"rebalance","p50_ms":..,"max_stall_ms":..,...}.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { Tributary, type Admin, type Consumer } from '../client/index.js';
import { positiveIntFlag } from './args.js';
import { startLocalCluster } from './produce.js';
import type { BenchArgs } from './run.js';
import { percentile } from './stats.js';

const GROUP = 'bench-rebalance';
const TOPIC = 'rebalance';

interface Member {
  name: string;
  consumer: Consumer;
  /** When this member last received a record (any partition), ms (performance.now). */
  receipts: number[];
  /** Assignment changes seen, ms. */
  changes: number[];
  running: Promise<void>;
}

function assignmentKey(m: Member): string {
  return (m.consumer.groupMember()?.assignment ?? []).map((p) => p.partition).join(',');
}

export async function rebalanceBench(args: BenchArgs): Promise<void> {
  const rounds = positiveIntFlag(args.argv, 'rounds', 10);
  const memberCount = positiveIntFlag(args.argv, 'members', 6);
  const partitions = positiveIntFlag(args.argv, 'partitions', 24);
  const dataDir = mkdtempSync(join(tmpdir(), 'trib-bench-rebalance-'));
  const cluster = await startLocalCluster(dataDir);
  const client = new Tributary({ clientId: 'bench-rebalance', bootstrap: [cluster.bootstrap], retry: { retries: 10, initialRetryTimeMs: 50, maxRetryTimeMs: 250 } });
  const admin = client.admin();
  const members: Member[] = [];
  let producing = true;
  let producer: Promise<void> = Promise.resolve();
  try {
    await admin.connect();
    await admin.createTopics([{ topic: TOPIC, partitions, replicationFactor: 3, config: { 'min.insync.replicas': '2' } }]);
    const p = client.producer({ acks: 'all', lingerMs: 1 });
    await p.connect();
    let sent = 0;
    producer = (async () => {
      while (producing) {
        await p.send({ topic: TOPIC, messages: Array.from({ length: partitions }, (_, i) => ({ value: `r${sent}`, partition: i })) }).catch(() => undefined);
        sent++;
        await delay(10);
      }
      await p.disconnect();
    })();

    const startMember = async (name: string): Promise<Member> => {
      const consumer = client.consumer({ groupId: GROUP, maxWaitMs: 100, autoCommitIntervalMs: 1000 });
      const m: Member = { name, consumer, receipts: [], changes: [], running: Promise.resolve() };
      consumer.on('group.assigned', () => void m.changes.push(performance.now()));
      consumer.on('group.revoked', () => void m.changes.push(performance.now()));
      await consumer.connect();
      await consumer.subscribe({ topics: [TOPIC] });
      m.running = consumer.run({ eachMessage: () => void m.receipts.push(performance.now()) });
      return m;
    };
    for (let i = 0; i < memberCount; i++) members.push(await startMember(`m${i}`));
    await waitStable(admin, members, partitions);

    // Baseline: the longest silence per member over 3 s without any change.
    const quietFrom = performance.now();
    await delay(3000);
    const baseline = Math.max(...members.map((m) => longestSilence(m.receipts, quietFrom, performance.now())));

    const rebalanceMs: number[] = [];
    let maxStall = 0;
    for (let round = 0; round < rounds; round++) {
      for (const action of ['add', 'remove'] as const) {
        const before = new Map(members.map((m) => [m, assignmentKey(m)]));
        const t0 = performance.now();
        let extra: Member | undefined;
        if (action === 'add') extra = await startMember(`extra-${round}`);
        else {
          const leaving = members.pop()!;
          await leaving.consumer.disconnect();
          await leaving.running;
        }
        if (extra !== undefined) members.push(extra);
        await waitStable(admin, members, partitions);
        const t1 = performance.now();
        rebalanceMs.push(t1 - t0);
        for (const [m, key] of before) {
          if (!members.includes(m) || assignmentKey(m) !== key || m.changes.some((at) => at >= t0 && at <= t1)) continue;
          maxStall = Math.max(maxStall, longestSilence(m.receipts, t0, t1));
        }
        for (const m of members) m.receipts = m.receipts.filter((at) => at >= t1 - 1000);
      }
    }
    const sorted = [...rebalanceMs].sort((a, b) => a - b);
    const round1 = (x: number) => Math.round(x * 10) / 10;
    process.stdout.write(
      JSON.stringify({
        bench: 'rebalance',
        members: memberCount,
        partitions,
        changes: rebalanceMs.length,
        p50_ms: round1(percentile(sorted, 0.5)),
        p99_ms: round1(percentile(sorted, 0.99)),
        max_ms: round1(sorted[sorted.length - 1]!),
        max_stall_ms: round1(maxStall),
        baseline_stall_ms: round1(baseline),
        records_per_s: Math.round((partitions * 1000) / 10),
      }) + '\n',
    );
  } finally {
    producing = false;
    await producer.catch(() => undefined);
    await Promise.allSettled(members.map(async (m) => {
      await m.consumer.disconnect();
      await m.running;
    }));
    await admin.disconnect().catch(() => undefined);
    await cluster.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The longest time in [from, to] with no receipt (receipts ascending). */
function longestSilence(receipts: readonly number[], from: number, to: number): number {
  let last = from;
  let longest = 0;
  for (const at of receipts) {
    if (at < from) continue;
    if (at > to) break;
    longest = Math.max(longest, at - last);
    last = at;
  }
  return Math.max(longest, to - last);
}

/**
 * Stable: the coordinator says so, and the members' own views cover every partition exactly once
 * (so each has reconciled and is fetching what it owns).
 */
async function waitStable(admin: Admin, members: readonly Member[], partitions: number): Promise<void> {
  const deadline = performance.now() + 120_000;
  for (;;) {
    const owned = members.flatMap((m) => m.consumer.groupMember()?.assignment ?? []).map((p) => p.partition).sort((a, b) => a - b);
    if (owned.length === partitions && owned.every((p, i) => p === i) && members.every((m) => (m.consumer.groupMember()?.assignment.length ?? 0) > 0)) {
      const [d] = await admin.describeGroups([GROUP]);
      if (d !== undefined && d.state === 'stable' && d.members.length === members.length) return;
    }
    if (performance.now() > deadline) throw new Error(`group did not become stable within 120 s (owned: ${owned.join(',')})`);
    await delay(10);
  }
}
