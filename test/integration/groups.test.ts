/**
 * Consumer groups with real processes: 3 controllers + 3 brokers, and group members as their own
 * processes (group-worker.ts), on a 6-partition RF=3 topic with a producer writing throughout.
 *
 *   A and B join → C joins late → B is killed (-9) → C leaves cleanly → the coordinator's broker
 *   is killed → everything is drained → A leaves → D starts and resumes at the committed offsets.
 *
 * Asserted: every offset of every partition is processed (nothing skipped); no record is processed
 * after a commit past it was accepted (nothing committed is delivered again); duplicates come only
 * from partitions the killed member held, at or above what it had committed; a new member resumes
 * exactly at the committed offsets; the group carries on under a new coordinator. Logged, not
 * asserted (timing belongs in bench/rebalance.ts): for each rebalance, the longest gap in records
 * of a partition whose owner did not change.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Admin, Producer } from '../../client/index.js';
import { waitFor } from '../../common/wait.js';
import { Harness, REPO_ROOT, runCli } from './harness.js';
import { startDataCluster, type DataCluster } from './data-path-helpers.js';

const WORKER = path.join(REPO_ROOT, 'dist', 'test', 'integration', 'group-worker.js');
const TOPIC = 'orders';
const GROUP = 'billing';
const PARTITIONS = 6;
/** Generous: the machine has 2 cores shared by several test runs. */
const STEP_TIMEOUT_MS = 60_000;

type WorkerEvent =
  | { ev: 'record'; p: number; o: number; t: number }
  | { ev: 'assigned' | 'revoked'; ps: number[]; lost?: boolean; t: number }
  | { ev: 'committed'; offsets: Array<[number, number]>; t: number }
  | { ev: 'joined'; member: string; t: number }
  | { ev: 'closed'; t: number };

class Worker {
  readonly events: WorkerEvent[] = [];
  readonly owned = new Set<number>();
  private readonly child: ChildProcess;
  readonly exited: Promise<void>;
  private stderr = '';

  constructor(
    readonly name: string,
    bootstrap: string[],
  ) {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    this.child = spawn(process.execPath, [WORKER, bootstrap.join(','), GROUP, TOPIC, name], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let buffered = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim() === '') continue;
        const e = JSON.parse(line) as WorkerEvent;
        this.events.push(e);
        if (e.ev === 'assigned') for (const p of e.ps) this.owned.add(p);
        if (e.ev === 'revoked') for (const p of e.ps) this.owned.delete(p);
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr = (this.stderr + d).slice(-4000)));
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  records(): Array<{ p: number; o: number; t: number }> {
    return this.events.filter((e): e is Extract<WorkerEvent, { ev: 'record' }> => e.ev === 'record');
  }

  /** The highest offset processed per partition, after time `since`. */
  processedSince(since: number): Map<number, number> {
    const out = new Map<number, number>();
    for (const r of this.records()) if (r.t >= since) out.set(r.p, Math.max(out.get(r.p) ?? -1, r.o));
    return out;
  }

  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    await this.exited;
  }

  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  close(): void {
    this.child.kill('SIGKILL');
  }

  get diagnostics(): string {
    return `${this.name}: ${this.events.length} events; stderr: ${this.stderr}`;
  }
}

/** Sends one record to every partition, again and again, until stopped. */
class Load {
  private running = true;
  private done: Promise<void>;
  sent = 0;
  errors = 0;

  constructor(private readonly producer: Producer) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        await this.producer.send({ topic: TOPIC, messages: Array.from({ length: PARTITIONS }, (_, p) => ({ value: `r${this.sent}`, partition: p })) });
        this.sent++;
      } catch {
        this.errors++;
      }
      // Pacing, not waiting for a condition: about 50 records per partition per second.
      await delay(20);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

describe('consumer groups: members as processes on a 3-broker cluster', { timeout: 600_000 }, () => {
  let harness: Harness;
  let cluster: DataCluster;
  let admin: Admin;
  const workers: Worker[] = [];

  before(async () => {
    harness = new Harness('groups');
    harness.track({ close: () => workers.forEach((w) => w.close()) });
    // A killed member is noticed after the session timeout: 6 s here instead of Kafka's 45 s.
    cluster = await startDataCluster(harness, { brokers: 3, brokerProperties: { 'group.consumer.session.timeout.ms': '6000' } });
    admin = cluster.client('it-groups-admin').admin();
    await admin.connect();
    harness.track({ close: () => admin.disconnect() });
    await admin.createTopics([{ topic: TOPIC, partitions: PARTITIONS, replicationFactor: 3, config: { 'min.insync.replicas': '2' } }]);
  });

  after(async () => {
    await harness.cleanup();
  });

  const start = (name: string) => {
    const w = new Worker(name, cluster.bootstrap);
    workers.push(w);
    return w;
  };
  /** The group is stable with exactly `live` as members and every partition owned once. */
  const stableWith = async (what: string, live: Worker[]) =>
    waitFor(
      what,
      async () => {
        const [d] = await admin.describeGroups([GROUP]);
        if (d === undefined || d.state !== 'stable' || d.members.length !== live.length) return false;
        const owned = live.flatMap((w) => [...w.owned]).sort((a, b) => a - b);
        return owned.join(',') === Array.from({ length: PARTITIONS }, (_, p) => p).join(',') && live.every((w) => w.owned.size > 0);
      },
      { timeoutMs: STEP_TIMEOUT_MS, intervalMs: 100 },
    );

  test('join late, kill -9, clean leave, coordinator killed, restart: nothing skipped, nothing committed delivered again', { timeout: 540_000 }, async (t) => {
    const producer = cluster.client('it-groups-producer').producer({ acks: 'all', lingerMs: 1 });
    await producer.connect();
    const load = new Load(producer);
    const changes: Array<{ what: string; who: Worker; at: number; stableAt: number; before: Map<Worker, Set<number>> }> = [];
    const snapshot = () => new Map(workers.map((w) => [w, new Set(w.owned)]));
    try {
      const a = start('A');
      const b = start('B');
      await stableWith('A and B to share the 6 partitions', [a, b]);

      let before = snapshot();
      let at = Date.now();
      const c = start('C');
      await stableWith('C (joined late) to get partitions', [a, b, c]);
      changes.push({ what: 'C joins', who: c, at, stableAt: Date.now(), before });

      before = snapshot();
      at = Date.now();
      const bOwned = [...b.owned];
      await b.kill();
      // What B had committed when it died: the new owners must start at least here.
      const committedAtKill = new Map((await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })).map((o) => [o.partition, o.offset]));
      b.owned.clear();
      await stableWith('B (killed) to be removed and its partitions moved', [a, c]);
      changes.push({ what: 'B killed', who: b, at, stableAt: Date.now(), before });

      before = snapshot();
      at = Date.now();
      await c.stop();
      c.owned.clear();
      await stableWith('C (left cleanly) to hand its partitions to A', [a]);
      changes.push({ what: 'C leaves', who: c, at, stableAt: Date.now(), before });

      // The coordinator's broker dies: the group carries on under the new coordinator.
      const [d] = await admin.describeGroups([GROUP]);
      const coordinator = d!.coordinator;
      t.diagnostic(`coordinator of ${GROUP}: broker ${coordinator}`);
      const killedAt = Date.now();
      await cluster.kill(coordinator);
      await waitFor(
        'A to keep processing every partition after the coordinator was killed',
        () => a.processedSince(killedAt + 3000).size === PARTITIONS,
        { timeoutMs: STEP_TIMEOUT_MS, intervalMs: 100 },
      );
      const lastCommitBeforeKill = Math.max(...a.events.filter((e) => e.ev === 'committed' && e.t <= killedAt).map((e) => e.t));
      await waitFor('A to commit through the new coordinator', () => a.events.some((e) => e.ev === 'committed' && e.t > killedAt + 3000), { timeoutMs: STEP_TIMEOUT_MS });
      const [d2] = await admin.describeGroups([GROUP]);
      const firstCommitAfter = Math.min(...a.events.filter((e) => e.ev === 'committed' && e.t > killedAt).map((e) => e.t));
      t.diagnostic(`new coordinator: broker ${d2!.coordinator}; A's commits: last before the kill ${killedAt - lastCommitBeforeKill} ms before it, first after it ${firstCommitAfter - killedAt} ms after`);
      assert.notEqual(d2!.coordinator, coordinator);
      await cluster.start(coordinator);

      await load.stop();
      t.diagnostic(`producer: ${load.sent} rounds of ${PARTITIONS} records, ${load.errors} failed sends (retried as new records)`);
      // Drained: A has committed the log end of every partition.
      const ends = await waitFor(
        'A to process and commit everything',
        async () => {
          const [g] = await admin.describeGroups([GROUP]);
          if (g === undefined || g.offsets.length !== PARTITIONS || !g.offsets.every((o) => o.lag === 0 && o.logEndOffset > 0)) return false;
          return new Map(g.offsets.map((o) => [o.partition, o.logEndOffset]));
        },
        { timeoutMs: STEP_TIMEOUT_MS, intervalMs: 200 },
      );
      // The CLI against the real coordinator: describe shows lag 0; a reset is refused while A is a member.
      const bootstrap = ['--bootstrap', cluster.bootstrap.join(',')];
      const described = await runCli(['groups', 'describe', GROUP, '--json', ...bootstrap], { timeoutMs: 60_000 });
      assert.equal(described.code, 0, described.stderr);
      const view = JSON.parse(described.stdout) as { members: Array<{ assignment: unknown[] }>; offsets: Array<{ lag: number; owner: string | null }> };
      assert.equal(view.members.length, 1);
      assert.equal(view.members[0]!.assignment.length, PARTITIONS);
      assert.deepEqual(view.offsets.map((o) => o.lag), Array(PARTITIONS).fill(0));
      const refused = await runCli(['groups', 'reset-offsets', GROUP, '--topic', TOPIC, '--to-earliest', ...bootstrap], { timeoutMs: 60_000 });
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /^tributary: NON_EMPTY_GROUP: /);
      await a.stop();
      // Empty now: a reset to the log end is taken (and leaves the committed offsets where A put them).
      const reset = await runCli(['groups', 'reset-offsets', GROUP, '--topic', TOPIC, '--to-latest', ...bootstrap], { timeoutMs: 60_000 });
      assert.equal(reset.code, 0, reset.stderr);
      const listed = await runCli(['groups', 'list', '--json', ...bootstrap], { timeoutMs: 60_000 });
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual((JSON.parse(listed.stdout) as Array<{ groupId: string; state: string }>).map((g) => [g.groupId, g.state]), [[GROUP, 'empty']]);

      // Restart: a new member resumes at the committed offsets.
      await producer.send({ topic: TOPIC, messages: Array.from({ length: PARTITIONS }, (_, p) => ({ value: 'after restart', partition: p })) });
      const dWorker = start('D');
      await waitFor('D to read the 6 new records', () => dWorker.processedSince(0).size === PARTITIONS, { timeoutMs: STEP_TIMEOUT_MS });
      await dWorker.stop();
      for (let p = 0; p < PARTITIONS; p++) {
        const first = dWorker.records().find((r) => r.p === p);
        assert.equal(first?.o, ends.get(p), `D started partition ${p} at the committed offset`);
      }

      // ---- the proof ----------------------------------------------------------------------------
      const all = workers.flatMap((w) => w.records().map((r) => ({ ...r, w })));
      for (let p = 0; p < PARTITIONS; p++) {
        const seen = new Set(all.filter((r) => r.p === p).map((r) => r.o));
        const missing: number[] = [];
        for (let o = 0; o <= ends.get(p)!; o++) if (!seen.has(o)) missing.push(o);
        assert.deepEqual(missing.slice(0, 10), [], `partition ${p}: offsets never processed`);
      }
      // Nothing delivered after a commit past it was accepted (by any member).
      const commits = workers.flatMap((w) => w.events.flatMap((e) => (e.ev === 'committed' ? e.offsets.map(([p, o]) => ({ p, o, t: e.t })) : [])));
      for (const r of all) {
        const violation = commits.find((c) => c.p === r.p && c.o > r.o && c.t < r.t);
        assert.equal(violation, undefined, `${r.w.name} processed ${r.p}@${r.o} at ${r.t} after offset ${violation?.o} was committed at ${violation?.t}`);
      }
      // Duplicates only where the killed member had uncommitted work.
      const count = new Map<string, number>();
      for (const r of all) count.set(`${r.p}@${r.o}`, (count.get(`${r.p}@${r.o}`) ?? 0) + 1);
      const duplicates = [...count].filter(([, n]) => n > 1).map(([k]) => k.split('@').map(Number) as [number, number]);
      for (const [p, o] of duplicates) {
        assert.ok(bOwned.includes(p) && o >= (committedAtKill.get(p) ?? 0), `partition ${p} offset ${o} delivered twice, not explained by B's kill`);
      }
      t.diagnostic(`${all.length} records processed, ${duplicates.length} delivered twice (all from B's uncommitted work)`);

      // Longest gap, per rebalance, for partitions whose owner did not change.
      for (const change of changes) {
        let longest = 0;
        let where = '';
        for (const [w, ownedBefore] of change.before) {
          if (w === change.who) continue;
          for (const p of ownedBefore) {
            const kept = w.events.every((e) => !(e.ev === 'revoked' && e.t >= change.at && e.t <= change.stableAt && e.ps.includes(p)));
            if (!kept) continue;
            const times = w.records().filter((r) => r.p === p && r.t >= change.at && r.t <= change.stableAt).map((r) => r.t);
            let last = change.at;
            for (const x of [...times, change.stableAt]) {
              if (x - last > longest) {
                longest = x - last;
                where = `${w.name} partition ${p}`;
              }
              last = x;
            }
          }
        }
        t.diagnostic(`${change.what}: stable after ${change.stableAt - change.at} ms; longest gap for a kept partition ${longest} ms (${where || 'none kept'})`);
      }
    } catch (error) {
      t.diagnostic(workers.map((w) => w.diagnostics).join('\n'));
      t.diagnostic(cluster.diagnostics());
      throw error;
    } finally {
      await load.stop().catch(() => undefined);
      await producer.disconnect();
    }
  });
});
