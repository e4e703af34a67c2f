/** FetchSessionCache (KIP-227 incremental fetch sessions, leader side): the wire rules, ownership, slots and limits. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FetchSession, FetchSessionCache, nextSessionEpoch, type FetchSessionCacheOptions, type FetchTarget, type SessionOutcome } from '../../broker/replication/fetch-sessions.js';
import type { FetchRequest } from '../../protocol/apis/fetch.js';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** A partition named by a request: [topic, partition, fetchOffset]. */
type Named = readonly [topic: string, partition: number, fetchOffset: number];

interface RequestSpec {
  replicaId?: number;
  sessionId?: number;
  sessionEpoch?: number;
  parts?: readonly Named[];
  forget?: ReadonlyArray<readonly [topic: string, partitions: number[]]>;
}

const FOLLOWER = 2;
const CONSUMER = -1;

/** A fetch request; partitions of the same topic are grouped in order of first appearance. */
function request(spec: RequestSpec = {}): FetchRequest {
  const byTopic = new Map<string, FetchRequest['topics'][number]['partitions']>();
  for (const [topic, partition, fetchOffset] of spec.parts ?? []) {
    let list = byTopic.get(topic);
    if (list === undefined) byTopic.set(topic, (list = []));
    list.push({ partition, currentLeaderEpoch: 3, fetchOffset, lastFetchedEpoch: 2, logStartOffset: 0, partitionMaxBytes: 1024 });
  }
  const r: FetchRequest = {
    replicaId: spec.replicaId ?? FOLLOWER,
    replicaEpoch: spec.replicaId === CONSUMER ? -1 : 7,
    maxWaitMs: 500,
    minBytes: 1,
    maxBytes: 1 << 20,
    topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })),
  };
  if (spec.sessionId !== undefined) r.sessionId = spec.sessionId;
  if (spec.sessionEpoch !== undefined) r.sessionEpoch = spec.sessionEpoch;
  if (spec.forget !== undefined) r.forgottenTopics = spec.forget.map(([topic, partitions]) => ({ topic, partitions }));
  return r;
}

/** A cache plus a record of the connection-closed registrations and evictions it made. */
function harness(options: Partial<FetchSessionCacheOptions> = {}) {
  const registrations: Array<{ connectionId: number; drop: () => void }> = [];
  let evictions = 0;
  const cache = new FetchSessionCache({ slots: 10, partitionsMax: 100, ...options, onEvict: () => void evictions++ });
  const open = (req: FetchRequest, connectionId = 1): SessionOutcome =>
    cache.open(req, connectionId, (drop) => registrations.push({ connectionId, drop }));
  return { cache, open, registrations, evictions: () => evictions };
}

function expectSession(outcome: SessionOutcome): FetchSession {
  assert.equal(outcome.kind, 'session', `expected a session, got ${JSON.stringify(outcome)}`);
  return (outcome as Extract<SessionOutcome, { kind: 'session' }>).session;
}

function expectNone(outcome: SessionOutcome): FetchTarget[] {
  assert.equal(outcome.kind, 'none', `expected no session, got ${JSON.stringify(outcome)}`);
  return (outcome as Extract<SessionOutcome, { kind: 'none' }>).targets;
}

function expectError(outcome: SessionOutcome, code: Extract<SessionOutcome, { kind: 'error' }>['code']): void {
  assert.equal(outcome.kind, 'error', `expected ${code}, got ${JSON.stringify(outcome)}`);
  const e = outcome as Extract<SessionOutcome, { kind: 'error' }>;
  assert.equal(e.code, code);
  assert.ok(e.message.length > 0, 'an error carries a message');
}

/** Open a session from a follower with a full (epoch 0) request. */
function openSession(open: (r: FetchRequest, c?: number) => SessionOutcome, parts: readonly Named[], connectionId = 1, replicaId = FOLLOWER): FetchSession {
  return expectSession(open(request({ replicaId, sessionEpoch: 0, parts }), connectionId));
}

/** An incremental request of `session` with the epoch it expects. */
function incremental(session: FetchSession, spec: Omit<RequestSpec, 'sessionId' | 'sessionEpoch'> = {}): FetchRequest {
  return request({ replicaId: session.replicaId, ...spec, sessionId: session.id, sessionEpoch: session.epoch });
}

/** A deep copy of what a session holds, to compare before and after a request. */
function snapshot(session: FetchSession) {
  return { epoch: session.epoch, targets: [...session.targets.values()].map((t) => ({ ...t })) };
}

const keysOf = (session: FetchSession) => [...session.targets.keys()];

// ---------------------------------------------------------------------------------------------
// Full fetches without a session (epoch -1 or absent)
// ---------------------------------------------------------------------------------------------

test('a request without a session epoch gets fresh targets in request order and no session', () => {
  const h = harness();
  const targets = expectNone(h.open(request({ parts: [['b', 1, 10], ['a', 0, 20], ['b', 0, 30]] })));
  assert.deepEqual(targets, [
    { topic: 'b', partition: 1, key: 'b-1', currentLeaderEpoch: 3, fetchOffset: 10, lastFetchedEpoch: 2, logStartOffset: 0, partitionMaxBytes: 1024, minOffset: undefined, fresh: true, settled: false },
    { topic: 'b', partition: 0, key: 'b-0', currentLeaderEpoch: 3, fetchOffset: 30, lastFetchedEpoch: 2, logStartOffset: 0, partitionMaxBytes: 1024, minOffset: undefined, fresh: true, settled: false },
    { topic: 'a', partition: 0, key: 'a-0', currentLeaderEpoch: 3, fetchOffset: 20, lastFetchedEpoch: 2, logStartOffset: 0, partitionMaxBytes: 1024, minOffset: undefined, fresh: true, settled: false },
  ]);
  assert.equal(h.cache.size, 0);
  assert.equal(h.registrations.length, 0, 'no connection-closed listener without a session');
});

test('a request with session epoch -1 gets fresh targets and no session, and carries minOffset through', () => {
  const h = harness();
  const req = request({ sessionEpoch: -1, parts: [['t', 4, 99]] });
  req.topics[0]!.partitions[0]!.minOffset = 120;
  const targets = expectNone(h.open(req));
  assert.equal(targets.length, 1);
  assert.equal(targets[0]!.key, 't-4');
  assert.equal(targets[0]!.fetchOffset, 99);
  assert.equal(targets[0]!.minOffset, 120);
  assert.equal(targets[0]!.fresh, true);
  assert.equal(targets[0]!.settled, false);
  assert.equal(h.cache.size, 0);
});

test('epoch -1 with the id of a session of the same connection closes that session', () => {
  const h = harness();
  const s = openSession(h.open, [['t', 0, 0]], 1);
  assert.equal(h.cache.size, 1);
  const targets = expectNone(h.open(request({ sessionId: s.id, sessionEpoch: -1, parts: [['t', 0, 5]] }), 1));
  assert.deepEqual(targets.map((t) => t.key), ['t-0']);
  assert.equal(h.cache.size, 0);
  expectError(h.open(incremental(s), 1), 'FETCH_SESSION_ID_NOT_FOUND');
});

test('epoch -1 with the id of another connection\'s session leaves that session alone', () => {
  const h = harness();
  const s = openSession(h.open, [['t', 0, 0]], 1);
  expectNone(h.open(request({ sessionId: s.id, sessionEpoch: -1, parts: [['t', 0, 5]] }), 2));
  assert.equal(h.cache.size, 1);
  const again = expectSession(h.open(incremental(s), 1));
  assert.equal(again, s);
  assert.equal(again.targets.get('t-0')!.fetchOffset, 0, 'the other connection\'s request did not touch its targets');
});

// ---------------------------------------------------------------------------------------------
// Opening sessions (epoch 0)
// ---------------------------------------------------------------------------------------------

test('epoch 0 from a follower opens a session holding exactly the request\'s partitions, at epoch 1 and not busy', () => {
  const h = harness();
  const s = openSession(h.open, [['a', 0, 10], ['a', 1, 11], ['b', 7, 12]], 1, 5);
  assert.ok(s instanceof FetchSession);
  assert.deepEqual(keysOf(s), ['a-0', 'a-1', 'b-7']);
  assert.deepEqual([...s.targets.values()].map((t) => [t.fetchOffset, t.fresh, t.settled]), [[10, true, false], [11, true, false], [12, true, false]]);
  assert.equal(s.epoch, 1);
  assert.equal(s.busy, false);
  assert.equal(s.replicaId, 5);
  assert.equal(s.connectionId, 1);
  assert.ok(Number.isInteger(s.id) && s.id > 0 && s.id <= 0x7fffffff, `session id ${s.id} is a positive int32`);
  assert.equal(h.cache.size, 1);
});

test('sessions opened on one connection get distinct ids', () => {
  const h = harness();
  const ids = new Set<number>();
  // Different replicas: one replica's new session replaces its idle ones on the same connection.
  for (let i = 0; i < 5; i++) ids.add(openSession(h.open, [['t', i, 0]], 1, FOLLOWER + i).id);
  assert.equal(ids.size, 5);
  assert.equal(h.cache.size, 5);
});

test('a replica opening a session again on a connection closes its idle sessions there (their ids may be lost)', () => {
  const h = harness();
  const busy = openSession(h.open, [['t', 1, 0]], 1);
  busy.busy = true;
  const lost = openSession(h.open, [['t', 0, 0]], 1);
  const otherReplica = openSession(h.open, [['t', 1, 0]], 1, FOLLOWER + 1);
  const elsewhere = openSession(h.open, [['t', 0, 0]], 2);
  assert.equal(h.cache.size, 4);
  const again = openSession(h.open, [['t', 0, 0]], 1);
  assert.notEqual(again.id, lost.id);
  expectError(h.open(incremental(lost), 1), 'FETCH_SESSION_ID_NOT_FOUND');
  assert.equal(h.cache.size, 4, 'a busy session, another replica\'s and another connection\'s stay');
  busy.busy = false;
  assert.equal(expectSession(h.open(incremental(busy), 1)), busy);
  assert.equal(expectSession(h.open(incremental(otherReplica), 1)), otherReplica);
  assert.equal(expectSession(h.open(incremental(elsewhere), 2)), elsewhere);
});

test('the connection-closed listener is registered once per connection, not once per session', () => {
  const h = harness();
  openSession(h.open, [['t', 0, 0]], 1);
  openSession(h.open, [['t', 1, 0]], 1);
  openSession(h.open, [['t', 2, 0]], 1);
  openSession(h.open, [['t', 0, 0]], 2);
  assert.deepEqual(h.registrations.map((r) => r.connectionId), [1, 2]);
});

test('the drop function handed to the connection-closed listener removes all of that connection\'s sessions and only those', () => {
  const h = harness();
  const a = openSession(h.open, [['t', 0, 0]], 1);
  const b = openSession(h.open, [['t', 1, 0]], 1, FOLLOWER + 1);
  const other = openSession(h.open, [['t', 0, 0]], 2);
  assert.equal(h.cache.size, 3);
  h.registrations.find((r) => r.connectionId === 1)!.drop();
  assert.equal(h.cache.size, 1);
  expectError(h.open(incremental(a), 1), 'FETCH_SESSION_ID_NOT_FOUND');
  expectError(h.open(incremental(b), 1), 'FETCH_SESSION_ID_NOT_FOUND');
  assert.equal(expectSession(h.open(incremental(other), 2)), other);
});

test('epoch 0 from a consumer never opens a session', () => {
  const h = harness();
  const targets = expectNone(h.open(request({ replicaId: CONSUMER, sessionEpoch: 0, parts: [['t', 0, 3], ['t', 1, 4]] })));
  assert.deepEqual(targets.map((t) => [t.key, t.fetchOffset, t.fresh]), [['t-0', 3, true], ['t-1', 4, true]]);
  assert.equal(h.cache.size, 0);
  assert.equal(h.registrations.length, 0);
});

test('epoch 0 with the id of a session of the same connection closes it and opens a new one with another id', () => {
  const h = harness();
  const old = openSession(h.open, [['t', 0, 0], ['t', 1, 0]], 1);
  const fresh = expectSession(h.open(request({ sessionId: old.id, sessionEpoch: 0, parts: [['u', 0, 9]] }), 1));
  assert.notEqual(fresh.id, old.id);
  assert.notEqual(fresh, old);
  assert.deepEqual(keysOf(fresh), ['u-0'], 'the new session holds only the new request\'s partitions');
  assert.equal(fresh.epoch, 1);
  assert.equal(h.cache.size, 1);
  expectError(h.open(incremental(old), 1), 'FETCH_SESSION_ID_NOT_FOUND');
  assert.equal(h.registrations.length, 1, 'still one listener for the connection');
});

test('epoch 0 with the id of another connection\'s session leaves that session alone', () => {
  const h = harness();
  const theirs = openSession(h.open, [['t', 0, 0]], 1);
  const mine = expectSession(h.open(request({ sessionId: theirs.id, sessionEpoch: 0, parts: [['t', 0, 4]] }), 2));
  assert.notEqual(mine.id, theirs.id);
  assert.equal(h.cache.size, 2);
  const again = expectSession(h.open(incremental(theirs), 1));
  assert.equal(again, theirs);
  assert.equal(again.targets.get('t-0')!.fetchOffset, 0);
});

// ---------------------------------------------------------------------------------------------
// Incremental requests (epoch n > 0)
// ---------------------------------------------------------------------------------------------

test('an incremental request updates named targets in place and marks them fresh again', () => {
  const h = harness();
  const s = openSession(h.open, [['t', 0, 10], ['t', 1, 20]]);
  const t0 = s.targets.get('t-0')!;
  const t1 = s.targets.get('t-1')!;
  for (const t of s.targets.values()) {
    t.fresh = false;
    t.settled = true;
  }
  const req = incremental(s, { parts: [['t', 0, 15]] });
  const p = req.topics[0]!.partitions[0]!;
  p.currentLeaderEpoch = 8;
  p.lastFetchedEpoch = 6;
  p.logStartOffset = 4;
  p.partitionMaxBytes = 77;
  p.minOffset = 12;
  assert.equal(expectSession(h.open(req)), s);
  assert.equal(s.targets.get('t-0'), t0, 'the same object, updated in place');
  const { session: owner, ...fields } = t0;
  assert.equal(owner, s);
  assert.deepEqual(fields, { topic: 't', partition: 0, key: 't-0', currentLeaderEpoch: 8, fetchOffset: 15, lastFetchedEpoch: 6, logStartOffset: 4, partitionMaxBytes: 77, minOffset: 12, fresh: true, settled: false });
  assert.ok(s.pending.has(t0), 'a named target is pending for the next pass');
  assert.equal(s.targets.get('t-1'), t1);
  assert.equal(t1.fetchOffset, 20, 'an unnamed target keeps its state');
  assert.equal(t1.fresh, false, 'an unnamed target is not marked fresh');
  assert.equal(t1.settled, true);
  assert.deepEqual(keysOf(s), ['t-0', 't-1'], 'an update does not reorder');
});

test('an incremental request adds partitions the session did not hold', () => {
  const h = harness();
  const s = openSession(h.open, [['t', 0, 10]]);
  expectSession(h.open(incremental(s, { parts: [['t', 1, 5], ['u', 3, 6]] })));
  assert.deepEqual(keysOf(s), ['t-0', 't-1', 'u-3']);
  assert.deepEqual([...s.targets.values()].map((t) => [t.fetchOffset, t.fresh]), [[10, true], [5, true], [6, true]]);
});

test('forgotten topics are removed from the session; forgetting a partition it does not hold is harmless', () => {
  const h = harness();
  const s = openSession(h.open, [['t', 0, 0], ['t', 1, 0], ['u', 0, 0], ['u', 1, 0]]);
  expectSession(h.open(incremental(s, { forget: [['t', [1]], ['u', [0, 1, 9]], ['nope', [0]]] })));
  assert.deepEqual(keysOf(s), ['t-0']);
  assert.equal(h.cache.size, 1);
});

test('each successful incremental request advances the expected epoch by one', () => {
  const h = harness();
  const s = openSession(h.open, [['t', 0, 0]]);
  for (let epoch = 1; epoch <= 5; epoch++) {
    assert.equal(s.epoch, epoch);
    expectSession(h.open(request({ sessionId: s.id, sessionEpoch: epoch, parts: [['t', 0, epoch]] })));
  }
  assert.equal(s.epoch, 6);
  assert.equal(s.targets.get('t-0')!.fetchOffset, 5);
});

test('nextSessionEpoch counts up and wraps from 0x7fffffff to 1, never to 0', () => {
  assert.equal(nextSessionEpoch(1), 2);
  assert.equal(nextSessionEpoch(41), 42);
  assert.equal(nextSessionEpoch(0x7ffffffe), 0x7fffffff);
  assert.equal(nextSessionEpoch(0x7fffffff), 1);
});

test('an incremental request at epoch 0x7fffffff moves the session to epoch 1', () => {
  const h = harness();
  const s = openSession(h.open, [['t', 0, 0]]);
  s.epoch = 0x7fffffff;
  expectSession(h.open(request({ sessionId: s.id, sessionEpoch: 0x7fffffff })));
  assert.equal(s.epoch, 1);
  expectSession(h.open(request({ sessionId: s.id, sessionEpoch: 1 })));
  assert.equal(s.epoch, 2);
});

// ---------------------------------------------------------------------------------------------
// Session errors
// ---------------------------------------------------------------------------------------------

test('an incremental request with the wrong epoch gets INVALID_FETCH_SESSION_EPOCH and changes nothing', () => {
  const h = harness();
  const s = openSession(h.open, [['t', 0, 10]]);
  expectSession(h.open(incremental(s))); // epoch now 2
  const before = snapshot(s);
  for (const wrong of [1, 3, 100]) {
    expectError(h.open(request({ sessionId: s.id, sessionEpoch: wrong, parts: [['t', 0, 99], ['t', 5, 1]], forget: [['t', [0]]] })), 'INVALID_FETCH_SESSION_EPOCH');
  }
  assert.deepEqual(snapshot(s), before);
  assert.equal(h.cache.size, 1);
  expectSession(h.open(request({ sessionId: s.id, sessionEpoch: 2 })));
});

test('a request of a busy session gets INVALID_FETCH_SESSION_EPOCH even with the right epoch, and changes nothing', () => {
  const h = harness();
  const s = openSession(h.open, [['t', 0, 10]]);
  s.busy = true;
  const before = snapshot(s);
  expectError(h.open(incremental(s, { parts: [['t', 0, 50], ['t', 1, 0]], forget: [['t', [0]]] })), 'INVALID_FETCH_SESSION_EPOCH');
  assert.deepEqual(snapshot(s), before);
  s.busy = false;
  expectSession(h.open(incremental(s)));
  assert.equal(s.epoch, 2);
});

test('an incremental request for an unknown session id gets FETCH_SESSION_ID_NOT_FOUND', () => {
  const h = harness();
  const s = openSession(h.open, [['t', 0, 0]]);
  const unknown = s.id === 0x7fffffff ? 1 : s.id + 1;
  expectError(h.open(request({ sessionId: unknown, sessionEpoch: 1 })), 'FETCH_SESSION_ID_NOT_FOUND');
  expectError(h.open(request({ sessionEpoch: 1 })), 'FETCH_SESSION_ID_NOT_FOUND');
  assert.equal(h.cache.size, 1);
});

test('another connection cannot use a session: FETCH_SESSION_ID_NOT_FOUND, and the session is unchanged', () => {
  const h = harness();
  const s = openSession(h.open, [['t', 0, 10]], 1);
  const before = snapshot(s);
  expectError(h.open(incremental(s, { parts: [['t', 0, 50]], forget: [['t', [0]]] }), 2), 'FETCH_SESSION_ID_NOT_FOUND');
  assert.deepEqual(snapshot(s), before);
  expectSession(h.open(incremental(s), 1));
});

test('another replica id cannot use a session: FETCH_SESSION_ID_NOT_FOUND, and the session is unchanged', () => {
  const h = harness();
  const s = openSession(h.open, [['t', 0, 10]], 1, 2);
  const before = snapshot(s);
  expectError(h.open(request({ replicaId: 3, sessionId: s.id, sessionEpoch: s.epoch, parts: [['t', 0, 50]] }), 1), 'FETCH_SESSION_ID_NOT_FOUND');
  expectError(h.open(request({ replicaId: CONSUMER, sessionId: s.id, sessionEpoch: s.epoch }), 1), 'FETCH_SESSION_ID_NOT_FOUND');
  assert.deepEqual(snapshot(s), before);
  expectSession(h.open(incremental(s), 1));
});

// ---------------------------------------------------------------------------------------------
// Slots
// ---------------------------------------------------------------------------------------------

test('with every slot taken, a new session evicts the least recently opened one and calls onEvict', () => {
  const h = harness({ slots: 2 });
  const a = openSession(h.open, [['t', 0, 0]], 1);
  const b = openSession(h.open, [['t', 0, 0]], 2);
  assert.equal(h.evictions(), 0);
  const c = openSession(h.open, [['t', 0, 0]], 3);
  assert.equal(h.evictions(), 1);
  assert.equal(h.cache.size, 2);
  expectError(h.open(incremental(a), 1), 'FETCH_SESSION_ID_NOT_FOUND');
  expectSession(h.open(incremental(b), 2));
  expectSession(h.open(incremental(c), 3));
});

test('an incremental request makes its session the most recently used, so another one is evicted first', () => {
  const h = harness({ slots: 2 });
  const a = openSession(h.open, [['t', 0, 0]], 1);
  const b = openSession(h.open, [['t', 0, 0]], 2);
  expectSession(h.open(incremental(a), 1));
  openSession(h.open, [['t', 0, 0]], 3);
  assert.equal(h.evictions(), 1);
  expectError(h.open(incremental(b), 2), 'FETCH_SESSION_ID_NOT_FOUND');
  expectSession(h.open(incremental(a), 1));
});

test('a failed incremental request does not make its session the most recently used', () => {
  const h = harness({ slots: 2 });
  const a = openSession(h.open, [['t', 0, 0]], 1);
  const b = openSession(h.open, [['t', 0, 0]], 2);
  expectError(h.open(request({ sessionId: a.id, sessionEpoch: 9 }), 1), 'INVALID_FETCH_SESSION_EPOCH');
  openSession(h.open, [['t', 0, 0]], 3);
  expectError(h.open(incremental(a), 1), 'FETCH_SESSION_ID_NOT_FOUND');
  expectSession(h.open(incremental(b), 2));
});

test('eviction skips busy sessions', () => {
  const h = harness({ slots: 2 });
  const a = openSession(h.open, [['t', 0, 0]], 1);
  const b = openSession(h.open, [['t', 0, 0]], 2);
  a.busy = true;
  openSession(h.open, [['t', 0, 0]], 3);
  assert.equal(h.evictions(), 1);
  expectError(h.open(incremental(b), 2), 'FETCH_SESSION_ID_NOT_FOUND');
  a.busy = false;
  expectSession(h.open(incremental(a), 1));
});

test('with every slot taken by a busy session, a full request gets no session and nothing is evicted', () => {
  const h = harness({ slots: 2 });
  const a = openSession(h.open, [['t', 0, 0]], 1);
  const b = openSession(h.open, [['t', 0, 0]], 2);
  a.busy = true;
  b.busy = true;
  const targets = expectNone(h.open(request({ sessionEpoch: 0, parts: [['t', 0, 4], ['t', 1, 5]] }), 3));
  assert.deepEqual(targets.map((t) => [t.key, t.fetchOffset, t.fresh]), [['t-0', 4, true], ['t-1', 5, true]]);
  assert.equal(h.cache.size, 2);
  assert.equal(h.evictions(), 0);
  assert.deepEqual(h.registrations.map((r) => r.connectionId), [1, 2], 'no listener for a connection that got no session');
  a.busy = false;
  b.busy = false;
  expectSession(h.open(incremental(a), 1));
  expectSession(h.open(incremental(b), 2));
});

test('with zero slots no session is ever opened', () => {
  const h = harness({ slots: 0 });
  for (let i = 0; i < 3; i++) {
    const targets = expectNone(h.open(request({ sessionEpoch: 0, parts: [['t', 0, i]] }), i));
    assert.equal(targets[0]!.fetchOffset, i);
  }
  assert.equal(h.cache.size, 0);
  assert.equal(h.evictions(), 0);
  assert.equal(h.registrations.length, 0);
});

// ---------------------------------------------------------------------------------------------
// partitionsMax
// ---------------------------------------------------------------------------------------------

test('a full request with more partitions than partitionsMax gets no session; one with exactly partitionsMax gets one', () => {
  const h = harness({ partitionsMax: 2 });
  const targets = expectNone(h.open(request({ sessionEpoch: 0, parts: [['t', 0, 0], ['t', 1, 0], ['t', 2, 0]] })));
  assert.deepEqual(targets.map((t) => t.key), ['t-0', 't-1', 't-2']);
  assert.equal(h.cache.size, 0);
  const s = openSession(h.open, [['t', 0, 0], ['t', 1, 0]]);
  assert.equal(s.targets.size, 2);
});

test('an incremental request growing a session past partitionsMax gets INVALID_REQUEST and the session is removed', () => {
  const h = harness({ partitionsMax: 2 });
  const s = openSession(h.open, [['t', 0, 0]]);
  const epoch = s.epoch;
  expectError(h.open(incremental(s, { parts: [['t', 1, 0], ['t', 2, 0]] })), 'INVALID_REQUEST');
  assert.equal(h.cache.size, 0);
  expectError(h.open(request({ sessionId: s.id, sessionEpoch: epoch })), 'FETCH_SESSION_ID_NOT_FOUND');
  expectError(h.open(request({ sessionId: s.id, sessionEpoch: nextSessionEpoch(epoch) })), 'FETCH_SESSION_ID_NOT_FOUND');
});

test('partitions forgotten in the same incremental request make room under partitionsMax', () => {
  const h = harness({ partitionsMax: 2 });
  const s = openSession(h.open, [['t', 0, 0], ['t', 1, 0]]);
  expectSession(h.open(incremental(s, { parts: [['t', 2, 0]], forget: [['t', [0]]] })));
  assert.deepEqual(keysOf(s), ['t-1', 't-2']);
  assert.equal(h.cache.size, 1);
});

// ---------------------------------------------------------------------------------------------
// FetchSession
// ---------------------------------------------------------------------------------------------

test('moveToBack moves a target to the end of iteration order and keeps the same object', () => {
  const h = harness();
  const s = openSession(h.open, [['t', 0, 0], ['t', 1, 0], ['t', 2, 0]]);
  const first = s.targets.get('t-0')!;
  s.moveToBack(first);
  assert.deepEqual(keysOf(s), ['t-1', 't-2', 't-0']);
  assert.equal(s.targets.get('t-0'), first);
  s.moveToBack(s.targets.get('t-2')!);
  assert.deepEqual(keysOf(s), ['t-1', 't-0', 't-2']);
  s.moveToBack(s.targets.get('t-2')!);
  assert.deepEqual(keysOf(s), ['t-1', 't-0', 't-2'], 'the last one stays last');
  assert.equal(s.targets.size, 3);
});

// ---------------------------------------------------------------------------------------------
// Property: a session tracks what a simple model predicts
// ---------------------------------------------------------------------------------------------

const UNIVERSE: ReadonlyArray<readonly [string, number]> = [['a', 0], ['a', 1], ['a', 2], ['b', 0], ['b', 1], ['c', 7]];

/** Per request: each partition of the universe is named with a new fetch offset, forgotten, or left out. */
const stepArb = fc.uniqueArray(
  fc.record({ index: fc.nat({ max: UNIVERSE.length - 1 }), op: fc.oneof(fc.constant<'forget'>('forget'), fc.nat({ max: 1_000_000 })) }),
  { selector: (o) => o.index, maxLength: UNIVERSE.length },
);

test('property: incremental upserts and forgets leave exactly the keys and latest fetch offsets a model map predicts', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.nat({ max: UNIVERSE.length - 1 })),
      fc.array(stepArb, { maxLength: 30 }),
      (initial, steps) => {
        const h = harness({ partitionsMax: UNIVERSE.length });
        const model = new Map<string, number>();
        const initialParts: Named[] = initial.map((i) => [UNIVERSE[i]![0], UNIVERSE[i]![1], i]);
        for (const [topic, partition, offset] of initialParts) model.set(`${topic}-${partition}`, offset);
        const s = openSession(h.open, initialParts);
        let epoch = 1;
        for (const step of steps) {
          const parts: Named[] = [];
          const forget = new Map<string, number[]>();
          const named = new Set<string>();
          for (const { index, op } of step) {
            const [topic, partition] = UNIVERSE[index]!;
            const key = `${topic}-${partition}`;
            if (op === 'forget') {
              let list = forget.get(topic);
              if (list === undefined) forget.set(topic, (list = []));
              list.push(partition);
              model.delete(key);
            } else {
              parts.push([topic, partition, op]);
              named.add(key);
              model.set(key, op);
            }
          }
          for (const t of s.targets.values()) t.fresh = false; // as a pass of the replica manager would
          const outcome = h.open(request({ sessionId: s.id, sessionEpoch: epoch, parts, forget: [...forget] }));
          assert.equal(expectSession(outcome), s);
          epoch = nextSessionEpoch(epoch);
          assert.equal(s.epoch, epoch);
          assert.deepEqual(new Set(s.targets.keys()), new Set(model.keys()));
          for (const [key, offset] of model) assert.equal(s.targets.get(key)!.fetchOffset, offset, key);
          for (const t of s.targets.values()) {
            assert.equal(t.key, `${t.topic}-${t.partition}`);
            assert.equal(t.fresh, named.has(t.key), `${t.key} is fresh exactly when named`);
          }
        }
        assert.equal(h.cache.size, 1);
      },
    ),
    { numRuns: 300 },
  );
});
