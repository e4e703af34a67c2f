import test from 'node:test';
import assert from 'node:assert/strict';
import { ConsumerGroup, type GroupConfig, type GroupRecord, type HeartbeatInput, type HeartbeatResult, type MemberRecord } from '../../broker/groups/consumer-group.js';
import { fromWire, toWire, tpKey, type TopicPartitionKey } from '../../broker/groups/topic-partitions.js';
import { TributaryError } from '../../protocol/errors.js';

const CONFIG: GroupConfig = { sessionTimeoutMs: 3000, heartbeatIntervalMs: 500, membersMax: 50, subscribedTopicsMax: 100 };

function harness(counts: Record<string, number> = { t: 4 }) {
  const group = new ConsumerGroup('g', CONFIG);
  let now = 0;
  let ids = 0;
  const partitionCounts = new Map(Object.entries(counts));
  const ctx = () => ({ nowMs: now, newMemberId: () => `m${++ids}`, partitionCount: (t: string) => partitionCounts.get(t) });
  return {
    group,
    partitionCounts,
    advance: (ms: number) => (now += ms),
    get now() {
      return now;
    },
    hb: (input: Partial<HeartbeatInput> & { memberId: string; memberEpoch: number }): HeartbeatResult => {
      const r = group.heartbeat({ clientId: 'c', rebalanceTimeoutMs: 5000, subscribedTopicNames: null, ownedPartitions: null, ...input }, ctx());
      group.checkInvariants();
      return r;
    },
  };
}

function keys(result: HeartbeatResult): string[] {
  assert.ok(result.assignment !== null, 'expected an assignment');
  return [...fromWire(result.assignment)].sort();
}

function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof TributaryError && e.code === code);
}

test('one member joins and gets every partition at epoch 1', () => {
  const h = harness();
  const r = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  assert.equal(r.memberId, 'm1');
  assert.equal(r.memberEpoch, 1);
  assert.equal(r.heartbeatIntervalMs, 500);
  assert.deepEqual(keys(r), ['t:0', 't:1', 't:2', 't:3']);
  assert.equal(h.group.state, 'stable');
});

test('a second member gets partitions only after the first acknowledged revoking them', () => {
  const h = harness();
  const a = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  const b = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  assert.equal(b.memberEpoch, 2);
  assert.deepEqual(keys(b), [], 'nothing free yet');
  assert.equal(h.group.state, 'assigning');
  // A learns what to give up; its epoch stays until it acknowledges.
  const a2 = h.hb({ memberId: a.memberId, memberEpoch: 1, ownedPartitions: a.assignment });
  assert.equal(a2.memberEpoch, 1);
  const kept = keys(a2);
  assert.equal(kept.length, 2);
  // B asks again before A acknowledged: still nothing.
  assert.deepEqual(h.hb({ memberId: b.memberId, memberEpoch: 2, ownedPartitions: [] }).assignment, null);
  assert.equal(h.group.ownedBy(b.memberId).size, 0);
  // A acknowledges (owns only what it kept): epoch 2.
  const a3 = h.hb({ memberId: a.memberId, memberEpoch: 1, ownedPartitions: a2.assignment });
  assert.equal(a3.memberEpoch, 2);
  // Now B gets the other two.
  const b2 = h.hb({ memberId: b.memberId, memberEpoch: 2, ownedPartitions: [] });
  const gotten = keys(b2);
  assert.equal(gotten.length, 2);
  assert.deepEqual([...kept, ...gotten].sort(), ['t:0', 't:1', 't:2', 't:3']);
  h.hb({ memberId: b.memberId, memberEpoch: 2, ownedPartitions: b2.assignment });
  assert.equal(h.group.state, 'stable');
});

test('a member that leaves frees its partitions for the others at once', () => {
  const h = harness();
  const a = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  const b = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  const a2 = h.hb({ memberId: a.memberId, memberEpoch: 1, ownedPartitions: a.assignment });
  h.hb({ memberId: a.memberId, memberEpoch: 1, ownedPartitions: a2.assignment });
  const b2 = h.hb({ memberId: b.memberId, memberEpoch: 2, ownedPartitions: [] });
  const left = h.hb({ memberId: b.memberId, memberEpoch: -1, ownedPartitions: b2.assignment });
  assert.equal(left.memberEpoch, -1);
  const a4 = h.hb({ memberId: a.memberId, memberEpoch: 2, ownedPartitions: a2.assignment });
  assert.equal(a4.memberEpoch, 3);
  assert.deepEqual(keys(a4), ['t:0', 't:1', 't:2', 't:3']);
  throwsCode(() => h.hb({ memberId: b.memberId, memberEpoch: 2 }), 'UNKNOWN_MEMBER_ID');
});

test('epochs: a stale one is ILLEGAL_GENERATION, the previous one is accepted while owned ⊆ assigned, an unknown member UNKNOWN_MEMBER_ID', () => {
  const h = harness();
  const a = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  // a at epoch 1 must revoke; then acknowledges → epoch 3; its previous epoch is 1.
  const r = h.hb({ memberId: a.memberId, memberEpoch: 1, ownedPartitions: a.assignment });
  const acked = h.hb({ memberId: a.memberId, memberEpoch: 1, ownedPartitions: r.assignment });
  assert.equal(acked.memberEpoch, 3);
  // The reply was lost: a heartbeats with epoch 1 again, owning what it kept — accepted, told epoch 3.
  const again = h.hb({ memberId: a.memberId, memberEpoch: 1, ownedPartitions: r.assignment });
  assert.equal(again.memberEpoch, 3);
  // With epoch 1 but claiming partitions it was never given: refused, and the member is removed
  // (it drops everything and rejoins), so its partitions are free for the others at once.
  const epochBefore = h.group.groupEpoch;
  throwsCode(() => h.hb({ memberId: a.memberId, memberEpoch: 1, ownedPartitions: [{ topic: 't', partitions: [0, 1, 2, 3] }] }), 'ILLEGAL_GENERATION');
  assert.ok(!h.group.hasMember(a.memberId));
  assert.equal(h.group.groupEpoch, epochBefore + 1);
  throwsCode(() => h.hb({ memberId: a.memberId, memberEpoch: 3 }), 'UNKNOWN_MEMBER_ID');
  // It rejoins under its old id.
  const back = h.hb({ memberId: a.memberId, memberEpoch: 0, subscribedTopicNames: ['t'] });
  assert.equal(back.memberId, a.memberId);
  throwsCode(() => h.hb({ memberId: a.memberId, memberEpoch: back.memberEpoch + 7 }), 'ILLEGAL_GENERATION');
  throwsCode(() => h.hb({ memberId: 'nobody', memberEpoch: 3 }), 'UNKNOWN_MEMBER_ID');
  throwsCode(() => h.hb({ memberId: '', memberEpoch: 0 }), 'INVALID_REQUEST');
  throwsCode(() => h.hb({ memberId: 'nobody', memberEpoch: -1 }), 'UNKNOWN_MEMBER_ID');
});

test('session timeout removes a silent member; rebalance timeout removes one that does not revoke', () => {
  const h = harness();
  const a = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  h.advance(2000);
  const b = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  assert.equal(h.group.nextDeadlineMs(), 3000);
  h.advance(999);
  assert.deepEqual(h.group.tick(h.now), []);
  h.advance(1);
  assert.deepEqual(h.group.tick(h.now), [{ memberId: a.memberId, reason: 'session timeout' }]);
  h.group.checkInvariants();
  const b2 = h.hb({ memberId: b.memberId, memberEpoch: b.memberEpoch, ownedPartitions: [] });
  assert.deepEqual(keys(b2), ['t:0', 't:1', 't:2', 't:3']);

  // A joins again and b never gives anything back: removed after its rebalance timeout (5000).
  const c = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  h.hb({ memberId: b.memberId, memberEpoch: b2.memberEpoch, ownedPartitions: b2.assignment });
  for (let i = 0; i < 10; i++) {
    h.advance(500);
    h.hb({ memberId: b.memberId, memberEpoch: b2.memberEpoch, ownedPartitions: b2.assignment });
    h.hb({ memberId: c.memberId, memberEpoch: c.memberEpoch, ownedPartitions: [] });
    const removed = h.group.tick(h.now);
    if (removed.length > 0) {
      assert.deepEqual(removed, [{ memberId: b.memberId, reason: 'rebalance timeout' }]);
      break;
    }
  }
  assert.ok(!h.group.hasMember(b.memberId));
  const c2 = h.hb({ memberId: c.memberId, memberEpoch: c.memberEpoch, ownedPartitions: [] });
  assert.deepEqual(keys(c2), ['t:0', 't:1', 't:2', 't:3']);
});

test('commits: the owner (also while revoking) with its epoch; a non-owner, stale epoch or unknown member is refused; admin only when empty', () => {
  const h = harness();
  const a = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  assert.equal(h.group.checkCommit(a.memberId, 1, 't:0'), null);
  assert.equal(h.group.checkCommit('', -1, 't:0')?.code, 'NON_EMPTY_GROUP');
  const b = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  const a2 = h.hb({ memberId: a.memberId, memberEpoch: 1, ownedPartitions: a.assignment });
  const revoking = ['t:0', 't:1', 't:2', 't:3'].filter((k) => !keys(a2).includes(k));
  // While revoking, a still owns the partitions and commits them before acknowledging.
  for (const k of revoking) assert.equal(h.group.checkCommit(a.memberId, 1, k), null);
  for (const k of revoking) assert.equal(h.group.checkCommit(b.memberId, 2, k)?.code, 'ILLEGAL_GENERATION');
  h.hb({ memberId: a.memberId, memberEpoch: 1, ownedPartitions: a2.assignment });
  // Acknowledged: no longer a's.
  for (const k of revoking) assert.equal(h.group.checkCommit(a.memberId, 2, k)?.code, 'ILLEGAL_GENERATION');
  assert.equal(h.group.checkCommit(a.memberId, 0, keys(a2)[0]!)?.code, 'ILLEGAL_GENERATION');
  assert.equal(h.group.checkCommit('zz', 2, 't:0')?.code, 'UNKNOWN_MEMBER_ID');
  h.hb({ memberId: a.memberId, memberEpoch: -1 });
  h.hb({ memberId: b.memberId, memberEpoch: -1 });
  assert.equal(h.group.state, 'empty');
  assert.equal(h.group.checkCommit('', -1, 't:0'), null);
});

test('group.consumer.max.size: a join past it is GROUP_MAX_SIZE_REACHED', () => {
  const group = new ConsumerGroup('g', { ...CONFIG, membersMax: 2 });
  let id = 0;
  const ctx = { nowMs: 0, newMemberId: () => `m${++id}`, partitionCount: () => 1 };
  const join = () => group.heartbeat({ memberId: '', memberEpoch: 0, clientId: 'c', rebalanceTimeoutMs: 1000, subscribedTopicNames: ['t'], ownedPartitions: null }, ctx);
  join();
  join();
  throwsCode(join, 'GROUP_MAX_SIZE_REACHED');
});

test('subscriptions: names must be topic names and at most group.consumer.max.subscribed.topics; a refused one changes nothing', () => {
  const h = harness();
  const a = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  const before = { epoch: h.group.groupEpoch, records: h.group.memberRecords() };
  h.group.drainChanges();
  const refused = (names: string[], why: RegExp) =>
    assert.throws(() => h.hb({ memberId: a.memberId, memberEpoch: a.memberEpoch, subscribedTopicNames: names }), (e: unknown) => e instanceof TributaryError && e.code === 'INVALID_REQUEST' && why.test(e.message));
  refused(['t', 'a/b'], /subscribedTopicNames\[1\]: .*may only contain/);
  refused(['x'.repeat(250)], /subscribedTopicNames\[0\]: .*249/);
  refused([''], /subscribedTopicNames\[0\]: .*empty/);
  refused(Array.from({ length: CONFIG.subscribedTopicsMax + 1 }, (_, i) => `t${i}`), /101 names, group.consumer.max.subscribed.topics=100/);
  // A join is refused the same way, and no member is added.
  assert.throws(() => h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['..'] }), (e: unknown) => e instanceof TributaryError && e.code === 'INVALID_REQUEST');
  assert.equal(h.group.groupEpoch, before.epoch);
  assert.deepEqual(h.group.memberRecords(), before.records);
  assert.deepEqual(h.group.drainChanges(), { group: null, members: [], removedMembers: [] });
  // Exactly the limit, with valid names, is fine.
  h.hb({ memberId: a.memberId, memberEpoch: a.memberEpoch, subscribedTopicNames: Array.from({ length: CONFIG.subscribedTopicsMax }, (_, i) => `t${i}`) });
});

test('a topic growing bumps the group epoch and hands out the new partitions', () => {
  const h = harness({ t: 2 });
  const a = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  assert.deepEqual(keys(a), ['t:0', 't:1']);
  h.partitionCounts.set('t', 3);
  const a2 = h.hb({ memberId: a.memberId, memberEpoch: 1, ownedPartitions: a.assignment });
  assert.equal(a2.memberEpoch, 2);
  assert.deepEqual(keys(a2), ['t:0', 't:1', 't:2']);
});

// --- Seeded simulation -------------------------------------------------------------------------

/** mulberry32: a tiny seeded PRNG, so every failure replays from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface SimClient {
  name: number;
  memberId: string;
  epoch: number;
  owned: Set<TopicPartitionKey>;
  /** Partitions it was told to give up and has not yet. */
  toDrop: Set<TopicPartitionKey>;
  subscription: string[];
  crashed: boolean;
  /** What it last told the coordinator it owns ('' = nothing sent yet). */
  lastSent: string;
}

/** What the coordinator persisted, as a compacted topic would keep it (latest per key). */
interface Store {
  group: GroupRecord | null;
  members: Map<string, MemberRecord>;
}

function persist(group: ConsumerGroup, store: Store): void {
  const changes = group.drainChanges();
  if (changes.group !== null) store.group = changes.group;
  for (const m of changes.members) store.members.set(m.memberId, m);
  for (const id of changes.removedMembers) store.members.delete(id);
}

function simulate(seed: number, steps: number): void {
  const random = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const counts = new Map([['a', 6], ['b', 3]]);
  let group = new ConsumerGroup('g', CONFIG);
  const store: Store = { group: null, members: new Map() };
  let now = 0;
  let ids = 0;
  const clients: SimClient[] = [];
  const trace: string[] = [];
  const ctx = () => ({ nowMs: now, newMemberId: () => `m${++ids}`, partitionCount: (t: string) => counts.get(t) });

  const heartbeat = (c: SimClient, lossy: boolean, revokeNow: boolean): void => {
    if (!revokeNow && c.toDrop.size > 0 && random() < 0.5) revokeNow = true;
    if (revokeNow) {
      for (const k of c.toDrop) c.owned.delete(k);
      c.toDrop.clear();
    }
    // The contract: ownedPartitions may be null only when unchanged since the last heartbeat.
    const ownedNow = [...c.owned].sort().join();
    const sendOwned = random() < 0.8 || c.epoch === 0 || ownedNow !== c.lastSent;
    if (sendOwned) c.lastSent = ownedNow;
    try {
      const r = group.heartbeat(
        { memberId: c.memberId, memberEpoch: c.epoch, clientId: `c${c.name}`, rebalanceTimeoutMs: 5000, subscribedTopicNames: c.epoch === 0 || random() < 0.3 ? c.subscription : null, ownedPartitions: sendOwned ? toWire(c.owned) : null },
        ctx(),
      );
      if (lossy && random() < 0.15) {
        trace.push(`hb c${c.name} ${c.memberId}@${c.epoch} → lost`);
        return;
      }
      trace.push(`hb c${c.name} ${c.memberId}@${c.epoch} owned=[${[...c.owned]}] → ${r.memberEpoch} ${r.assignment === null ? '-' : `[${[...fromWire(r.assignment)]}]`}`);
      c.memberId = r.memberId;
      c.epoch = r.memberEpoch;
      if (r.assignment !== null) {
        const assigned = fromWire(r.assignment);
        for (const k of c.owned) if (!assigned.has(k)) c.toDrop.add(k);
        for (const k of assigned) {
          c.owned.add(k);
          c.toDrop.delete(k);
        }
      }
    } catch (error) {
      if (!(error instanceof TributaryError)) throw error;
      trace.push(`hb c${c.name} ${c.memberId}@${c.epoch} → ${error.code}`);
      c.owned.clear();
      c.toDrop.clear();
      c.epoch = 0;
      // Fenced: rejoin with a fresh id, or (either is accepted) with the old one.
      if (error.code === 'UNKNOWN_MEMBER_ID' || random() < 0.5) c.memberId = '';
      else if (error.code !== 'ILLEGAL_GENERATION') throw error;
    }
  };

  const check = (): void => {
    group.checkInvariants();
    const claimed = new Map<TopicPartitionKey, number>();
    for (const c of clients) {
      if (c.crashed || c.memberId === '' || !group.hasMember(c.memberId)) continue;
      const coordinatorView = group.ownedBy(c.memberId);
      for (const k of c.owned) {
        assert.ok(coordinatorView.has(k), `c${c.name} believes it owns ${k}; the coordinator does not agree`);
        assert.ok(!claimed.has(k), `${k} owned by live members c${claimed.get(k)} and c${c.name}`);
        claimed.set(k, c.name);
      }
    }
  };

  try {
    for (let step = 0; step < steps; step++) {
      const live = clients.filter((c) => !c.crashed);
      const roll = random();
      if (roll < 0.08 && live.length < 6) {
        const c: SimClient = { name: clients.length, memberId: '', epoch: 0, owned: new Set(), toDrop: new Set(), subscription: pick([['a'], ['a', 'b'], ['b']]), crashed: false, lastSent: '' };
        clients.push(c);
        heartbeat(c, true, true);
      } else if (roll < 0.11 && live.length > 0) {
        const c = pick(live);
        trace.push(`leave c${c.name}`);
        if (c.memberId !== '' && c.epoch !== 0) {
          try {
            group.heartbeat({ memberId: c.memberId, memberEpoch: -1, clientId: 'c', rebalanceTimeoutMs: -1, subscribedTopicNames: null, ownedPartitions: null }, ctx());
          } catch (error) {
            if (!(error instanceof TributaryError) || error.code !== 'UNKNOWN_MEMBER_ID') throw error;
          }
        }
        c.crashed = true; // gone either way
        c.owned.clear();
      } else if (roll < 0.13 && live.length > 0) {
        const c = pick(live);
        trace.push(`crash c${c.name}`);
        c.crashed = true;
      } else if (roll < 0.14) {
        counts.set('a', (counts.get('a') ?? 0) + 1);
        trace.push('topic a grows');
      } else if (roll < 0.17) {
        // The coordinator fails over: a new one restores from what was persisted.
        trace.push('coordinator failover');
        group = ConsumerGroup.restore('g', CONFIG, store.group, [...store.members.values()], new Map(), now);
      } else if (roll < 0.35) {
        now += Math.floor(random() * (random() < 0.1 ? 4000 : 400));
        for (const r of group.tick(now)) trace.push(`removed ${r.memberId}: ${r.reason}`);
      } else if (live.length > 0) {
        heartbeat(pick(live), true, random() < 0.6);
      }
      persist(group, store);
      check();
    }

    // Quiet period: no faults, every live client heartbeats and revokes promptly.
    const live = clients.filter((c) => !c.crashed);
    for (let round = 0; round < 40; round++) {
      for (const c of live) heartbeat(c, false, true);
      now += 200;
      for (const r of group.tick(now)) trace.push(`removed ${r.memberId}: ${r.reason}`);
      persist(group, store);
      check();
    }
    if (live.length === 0) return;
    assert.equal(group.state, 'stable', 'the group settles');
    assert.equal(group.memberCount, live.length, 'crashed members were removed, live ones stayed');
    const subscribed = new Set(live.flatMap((c) => c.subscription));
    const owned = new Map<TopicPartitionKey, number>();
    for (const c of live) {
      assert.deepEqual([...c.owned].sort(), [...group.ownedBy(c.memberId)].sort());
      for (const k of c.owned) owned.set(k, c.name);
    }
    for (const t of subscribed) for (let p = 0; p < counts.get(t)!; p++) assert.ok(owned.has(tpKey(t, p)), `${t}:${p} owned by someone`);
  } catch (error) {
    throw new Error(`seed ${seed} failed: ${(error as Error).message}\n  last steps:\n  ${trace.slice(-25).join('\n  ')}`, { cause: error });
  }
}

test('seeded simulation: joins, leaves, crashes, lost replies, slow revocations, topic growth and coordinator failovers — no partition has two live owners, and the group settles', () => {
  const seeds = Number(process.env.GROUP_SIM_SEEDS ?? 300);
  for (let seed = 1; seed <= seeds; seed++) simulate(seed, 400);
});

test('restore: a group rebuilt from its records describes the same and accepts members at their epochs', () => {
  const h = harness();
  const store: Store = { group: null, members: new Map() };
  const a = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  const b = h.hb({ memberId: '', memberEpoch: 0, subscribedTopicNames: ['t'] });
  const a2 = h.hb({ memberId: a.memberId, memberEpoch: 1, ownedPartitions: a.assignment });
  persist(h.group, store);
  const restored = ConsumerGroup.restore('g', CONFIG, store.group, [...store.members.values()], new Map(), h.now);
  restored.checkInvariants();
  assert.deepEqual(restored.describeMembers(), h.group.describeMembers());
  assert.equal(restored.groupEpoch, h.group.groupEpoch);
  assert.equal(restored.assignmentEpoch, h.group.assignmentEpoch);
  // a acknowledges its revocation on the new coordinator; b then gets its share.
  const ctx = { nowMs: h.now, newMemberId: () => 'x', partitionCount: () => 4 };
  const a3 = restored.heartbeat({ memberId: a.memberId, memberEpoch: 1, clientId: 'c', rebalanceTimeoutMs: -1, subscribedTopicNames: null, ownedPartitions: a2.assignment }, ctx);
  assert.equal(a3.memberEpoch, 2);
  const b2 = restored.heartbeat({ memberId: b.memberId, memberEpoch: 2, clientId: 'c', rebalanceTimeoutMs: -1, subscribedTopicNames: null, ownedPartitions: [] }, ctx);
  assert.equal(fromWire(b2.assignment!).size, 2);
  restored.checkInvariants();
});
