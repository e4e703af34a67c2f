/**
 * The controller quorum as real processes: three `tributary controller` processes on loopback,
 * killed with SIGKILL, paused with SIGSTOP, partitioned through TCP proxies and restarted on the
 * same data dirs. Every wait is a condition with a deadline (common/wait.ts); the only fixed
 * duration is how long a partition is held, which is the scenario itself.
 *
 * Writes that need no broker process: BrokerRegistration of made-up brokers (a registration is a
 * Raft record; the broker starts fenced), and topics placed on a FakeBroker that heartbeats from
 * the test.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { waitFor } from '../../common/wait.js';
import type { ControllerChannel } from '../../client/controller-channel.js';
import { ApiKey } from '../../protocol/api-keys.js';
import { TributaryError } from '../../protocol/errors.js';
import { RpcConnection } from '../../protocol/transport/connection.js';
import { FakeBroker, Harness, runCli, startControllerQuorum, type ControllerQuorum, type ControllerQuorumOptions } from './harness.js';

/** Upper end of the default election timeout, [500, 1000) ms (controller/config.ts). */
const ELECTION_TIMEOUT_MAX_MS = 1000;
/** A dead leader must be replaced, and the new one serving writes, within this. */
const FAILOVER_BOUND_MS = 3000;
/** A hung scenario fails instead of stalling CI (each takes a few seconds). */
const TEST_TIMEOUT_MS = 60_000;

async function withQuorum(t: TestContext, label: string, options: ControllerQuorumOptions, body: (q: ControllerQuorum, h: Harness) => Promise<void>): Promise<void> {
  const h = new Harness(label);
  try {
    const q = await startControllerQuorum(h, options);
    await body(q, h);
  } catch (error) {
    t.diagnostic(`temp dir ${h.root}\n${h.diagnostics(40)}`);
    throw error;
  } finally {
    await h.cleanup();
  }
}

/** Register a made-up broker: one committed metadata record. */
async function registerBroker(channel: ControllerChannel, brokerId: number, options: { timeoutMs?: number } = {}): Promise<number> {
  const r = await channel.request(ApiKey.BrokerRegistration, { brokerId, incarnationId: randomUUID(), listenerUrl: `ws://127.0.0.1:${10_000 + brokerId}` }, options);
  assert.equal(r.errorCode, 0);
  return r.brokerEpoch;
}

async function createTopic(channel: ControllerChannel, name: string, partitions: number): Promise<void> {
  const r = await channel.request(ApiKey.CreateTopics, { topics: [{ name, numPartitions: partitions, replicationFactor: 1, configs: [] }], timeoutMs: 5000, validateOnly: false });
  const t = r.topics[0]!;
  if (t.errorCode !== 0) throw new Error(`create ${name}: error ${t.errorCode} ${t.errorMessage ?? ''}`);
}

async function brokerIds(channel: ControllerChannel): Promise<Set<number>> {
  const r = await channel.request(ApiKey.DescribeCluster, { includeFencedBrokers: true });
  return new Set(r.brokers.map((b) => b.brokerId));
}

async function topicNames(channel: ControllerChannel): Promise<Map<string, number>> {
  const r = await channel.request(ApiKey.Metadata, { topics: null });
  return new Map(r.topics.map((t) => [t.name, t.partitions.length]));
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name} ${error.message}` : String(error);
}

test('three controllers elect one leader; `cluster status --json` shows it', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  await withQuorum(t, 'quorum-status', {}, async (q) => {
    const { leaderId, term } = await q.waitForLeader();
    // Everyone agrees before we ask the CLI, so its answer is determined.
    await waitFor('every controller to follow the leader', async () => {
      const views = await q.describeAll();
      return views.size === 3 && [...views.values()].every((v) => v.leaderId === leaderId && v.term === term);
    });
    const r = await runCli(['cluster', 'status', '--json', '--controllers', q.votersString]);
    assert.equal(r.code, 0, `cluster status failed: ${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, `one JSON line expected, got:\n${r.stdout}`);
    const status = JSON.parse(lines[0]!) as {
      controller: { leader: number | null; term: number; voters: Array<{ id: number; address: string; role: string }> };
      brokers: unknown[];
      partitions: unknown[];
    };
    assert.equal(status.controller.leader, leaderId);
    assert.equal(status.controller.term, term);
    assert.ok(term >= 1);
    assert.deepEqual(
      status.controller.voters.map((v) => ({ id: v.id, address: v.address, role: v.role })).sort((a, b) => a.id - b.id),
      q.ids.map((id) => ({ id, address: q.node(id).address, role: id === leaderId ? 'leader' : 'follower' })),
    );
    assert.ok(Array.isArray(status.brokers) && Array.isArray(status.partitions));
  });
});

test('kill -9 the leader: a new leader serves writes within the bound', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  await withQuorum(t, 'quorum-kill-leader', {}, async (q) => {
    const channel = q.channel({ requestTimeoutMs: 10_000, retryBackoffMs: 10 });
    const old = await q.waitForLeader();
    await registerBroker(channel, 1); // the channel knows the leader, and it is active

    const killedAt = performance.now();
    await q.kill(old.leaderId);
    await registerBroker(channel, 2);
    const failoverMs = performance.now() - killedAt;
    t.diagnostic(`failover after kill -9 of leader ${old.leaderId}: ${failoverMs.toFixed(0)} ms (bound ${FAILOVER_BOUND_MS} ms)`);

    const now = await q.waitForLeader({ exclude: [old.leaderId], minTerm: old.term + 1 });
    assert.notEqual(now.leaderId, old.leaderId);
    assert.ok(failoverMs < FAILOVER_BOUND_MS, `failover took ${failoverMs.toFixed(0)} ms, bound ${FAILOVER_BOUND_MS} ms`);
    // The write before the kill survived it.
    const ids = await brokerIds(channel);
    assert.ok(ids.has(1) && ids.has(2), `brokers after failover: ${[...ids].join(',')}`);
  });
});

test('a restarted member catches up on what was written while it was down', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  await withQuorum(t, 'quorum-catch-up', {}, async (q) => {
    const channel = q.channel();
    const { leaderId } = await q.waitForLeader();
    const follower = q.ids.find((id) => id !== leaderId)!;
    await q.kill(follower);

    const registered = [1, 2, 3, 4, 5];
    for (const id of registered) await registerBroker(channel, id);
    const alive = new FakeBroker(channel, 100);
    await alive.startAlive();
    const topics = ['orders', 'payments', 'audit', 'clicks', 'logs'];
    try {
      for (const name of topics) await createTopic(channel, name, 2);
    } finally {
      await alive.close();
    }
    const leaderView = await q.describe(leaderId);
    const writtenUpTo = leaderView.appliedIndex;
    await assert.rejects(q.describe(follower, 300), 'the killed follower still answers');

    await q.restart(follower);
    const caught = await q.waitCaughtUp(follower);
    assert.ok(caught.appliedIndex >= writtenUpTo, `follower applied ${caught.appliedIndex}, writes went up to ${writtenUpTo}`);
    t.diagnostic(`follower ${follower} caught up to index ${caught.appliedIndex} (writes up to ${writtenUpTo})`);

    // Its own SQLite tables hold the writes (read with the process stopped, read-only).
    await q.stop(follower);
    const db = new Database(path.join(q.node(follower).dataDir, 'controller.db'), { readonly: true, fileMustExist: true });
    try {
      const brokers = new Set((db.prepare('SELECT broker_id FROM brokers').all() as Array<{ broker_id: number }>).map((r) => r.broker_id));
      for (const id of [...registered, 100]) assert.ok(brokers.has(id), `broker ${id} missing from the restarted member's brokers table (has ${[...brokers].join(',')})`);
      const rows = db.prepare('SELECT name, partitions FROM topics').all() as Array<{ name: string; partitions: number }>;
      assert.deepEqual(rows.map((r) => r.name).sort(), [...topics].sort());
      for (const r of rows) assert.equal(r.partitions, 2);
      const partitions = db.prepare('SELECT count(*) AS n FROM partitions').get() as { n: number };
      assert.equal(partitions.n, topics.length * 2);
      const meta = db.prepare('SELECT applied_index FROM metadata_meta').get() as { applied_index: number };
      assert.ok(meta.applied_index >= writtenUpTo);
    } finally {
      db.close();
    }
  });
});

test('all three killed at once and restarted: every acknowledged write survives', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  await withQuorum(t, 'quorum-kill-all', {}, async (q) => {
    const channel = q.channel({ requestTimeoutMs: 1500 });
    await q.waitForLeader();
    const alive = new FakeBroker(q.channel(), 1);
    await alive.startAlive();

    // Writers keep going until the kill, so some writes are in flight when it lands.
    const ackedBrokers: number[] = [];
    const ackedTopics: string[] = [];
    let failed = 0;
    let stopping = false;
    let nextBrokerId = 1000;
    let nextTopic = 0;
    const brokerWriter = async () => {
      while (!stopping) {
        const id = nextBrokerId++;
        try {
          await registerBroker(channel, id);
          ackedBrokers.push(id); // acknowledged is acknowledged, even if it returned after the kill
        } catch {
          failed++;
        }
      }
    };
    const topicWriter = async () => {
      while (!stopping) {
        const name = `topic-${nextTopic++}`;
        try {
          await createTopic(channel, name, 1);
          ackedTopics.push(name);
        } catch {
          failed++;
        }
      }
    };
    const writers = [brokerWriter(), brokerWriter(), topicWriter()];
    await waitFor('30 acknowledged writes', () => ackedBrokers.length + ackedTopics.length >= 30, { timeoutMs: 10_000 });

    await Promise.all(q.ids.map((id) => q.kill(id)));
    stopping = true;
    await alive.close();
    await Promise.all(writers);
    t.diagnostic(`acknowledged: ${ackedBrokers.length} registrations, ${ackedTopics.length} topics; failed/in doubt: ${failed}`);

    await Promise.all(q.ids.map((id) => q.start(id)));
    const after = q.channel();
    await q.waitForLeader();
    const ids = await brokerIds(after);
    const missingBrokers = ackedBrokers.filter((id) => !ids.has(id));
    assert.deepEqual(missingBrokers, [], `acknowledged registrations lost: ${missingBrokers.join(',')}`);
    assert.ok(ids.has(1));
    const names = await topicNames(after);
    const missingTopics = ackedTopics.filter((n) => !names.has(n));
    assert.deepEqual(missingTopics, [], `acknowledged topics lost: ${missingTopics.join(',')}`);
  });
});

test('a partitioned follower neither becomes leader nor bumps the term (pre-vote), and rejoins quietly', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  await withQuorum(t, 'quorum-partition', { proxied: true }, async (q) => {
    const channel = q.channel();
    const { leaderId, term } = await q.waitForLeader();
    const follower = q.ids.find((id) => id !== leaderId)!;
    for (const id of [1, 2, 3]) await registerBroker(channel, id);
    await q.waitCaughtUp(follower);

    q.isolate(follower);
    const cutAt = performance.now();
    // Writes the isolated follower misses (the other two are a majority).
    for (const id of [4, 5, 6]) await registerBroker(channel, id);

    // Watch it for several election timeouts: it must notice (pre-candidate) but never campaign.
    const roles = new Set<string>();
    const holdMs = 3 * ELECTION_TIMEOUT_MAX_MS;
    while (performance.now() - cutAt < holdMs) {
      const v = await q.describe(follower);
      roles.add(v.role);
      assert.notEqual(v.role, 'leader', 'the isolated follower became leader');
      assert.notEqual(v.role, 'candidate', `the isolated follower campaigned (term ${v.term})`);
      assert.equal(v.term, term, 'the isolated follower bumped its term');
      await delay(50); // the sampling period of the watch, not a wait for a condition
    }
    assert.ok(roles.has('precandidate'), `the isolated follower never noticed the partition (roles seen: ${[...roles].join(',')})`);
    const leaderDuring = await q.describe(leaderId);
    assert.equal(leaderDuring.role, 'leader');
    assert.equal(leaderDuring.term, term);

    q.heal(follower);
    const caught = await q.waitCaughtUp(follower);
    assert.equal(caught.leaderId, leaderId, 'the leader changed after the partition healed');
    for (const id of q.ids) {
      const v = await q.describe(id);
      assert.equal(v.term, term, `controller ${id} is in term ${v.term}, expected ${term}`);
      assert.equal(v.leaderId, leaderId);
      assert.equal(v.role, id === leaderId ? 'leader' : 'follower');
    }
    const ids = await brokerIds(channel);
    for (const id of [1, 2, 3, 4, 5, 6]) assert.ok(ids.has(id));
    t.diagnostic(`isolated ${follower} for ${(performance.now() - cutAt).toFixed(0)} ms; roles seen ${[...roles].join(',')}; term stayed ${term}`);
  });
});

test('a paused (SIGSTOP) leader is replaced, and steps down when it resumes', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  await withQuorum(t, 'quorum-pause', {}, async (q) => {
    const channel = q.channel({ retryBackoffMs: 10 });
    const old = await q.waitForLeader();
    await registerBroker(channel, 1);
    // A client that still believes in the old leader: its request reaches the paused process.
    const stale = await RpcConnection.connect(`ws://${q.node(old.leaderId).address}`, { clientId: 'stale-client', keepAliveIntervalMs: 0, connectTimeoutMs: 1000 });
    t.after(() => stale.close());

    q.pause(old.leaderId);
    const pausedAt = performance.now();
    const staleWrite = stale
      .request(ApiKey.BrokerRegistration, { brokerId: 66, incarnationId: randomUUID(), listenerUrl: 'ws://127.0.0.1:1' }, { timeoutMs: 8000 })
      .then(
        (r) => ({ ok: true as const, epoch: r.brokerEpoch }),
        (error: unknown) => ({ ok: false as const, error }),
      );

    const now = await q.waitForLeader({ exclude: [old.leaderId], minTerm: old.term + 1, timeoutMs: 10_000 });
    const electedMs = performance.now() - pausedAt;
    assert.ok(electedMs < FAILOVER_BOUND_MS, `electing a replacement for the paused leader took ${electedMs.toFixed(0)} ms`);
    // A fresh channel: `channel` is still waiting on the paused process (see the report on
    // ControllerChannel: one attempt may use the whole deadline).
    await registerBroker(q.channel({ retryBackoffMs: 10 }), 2);
    const servedMs = performance.now() - pausedAt;
    t.diagnostic(`leader ${old.leaderId} paused; ${now.leaderId} elected in term ${now.term} after ${electedMs.toFixed(0)} ms, took a write after ${servedMs.toFixed(0)} ms`);

    q.resume(old.leaderId);
    const resumedAt = performance.now();
    await waitFor(
      `the old leader ${old.leaderId} to step down and follow ${now.leaderId}`,
      async () => {
        const v = await q.describe(old.leaderId, 500);
        return v.role === 'follower' && v.leaderId === now.leaderId && v.term >= now.term;
      },
      { timeoutMs: 5000 },
    );
    t.diagnostic(`the old leader stepped down ${(performance.now() - resumedAt).toFixed(0)} ms after SIGCONT`);

    // One leader, everyone agrees.
    const agreed = await waitFor('all three to agree on one leader', async () => {
      const views = await q.describeAll();
      if (views.size !== 3) return undefined;
      const leaders = [...views.values()].filter((v) => v.role === 'leader');
      const terms = new Set([...views.values()].map((v) => v.term));
      const named = new Set([...views.values()].map((v) => v.leaderId));
      return leaders.length === 1 && terms.size === 1 && named.size === 1 ? { leaderId: leaders[0]!.id, term: leaders[0]!.term } : undefined;
    });
    assert.equal(agreed.leaderId, now.leaderId, 'leadership moved again after the old leader resumed');

    // The write that reached the stale leader while it was paused cannot commit in the old term;
    // whatever it answered, an acknowledgement must mean the write is there.
    const outcome = await staleWrite;
    t.diagnostic(`the request sent to the paused leader: ${outcome.ok ? `acknowledged (epoch ${outcome.epoch})` : errorText(outcome.error)}`);
    const ids = await brokerIds(channel);
    assert.ok(ids.has(1) && ids.has(2));
    if (outcome.ok) assert.ok(ids.has(66), 'the paused leader acknowledged a registration that is not in the metadata');
    else assert.ok(!(outcome.error instanceof TributaryError) || outcome.error.code !== 'UNKNOWN_SERVER_ERROR', errorText(outcome.error));
  });
});
