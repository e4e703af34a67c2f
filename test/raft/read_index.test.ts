/**
 * Linearizable reads by ReadIndex (Raft thesis §6.4).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ScriptedCluster } from '../sim/scripted_cluster.js';

describe('ReadIndex', () => {
  it('waits until the leader has committed an entry of its own term', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3 });
    // Elected, but its no-op has not replicated yet.
    cluster.tickUntil(1, () => cluster.core(1).currentRole === 'precandidate');
    cluster.deliver((message) => message.type !== 'Append');
    assert.equal(cluster.core(1).currentRole, 'leader');
    assert.equal(cluster.core(1).commitIndex, 0);
    assert.deepEqual(cluster.readIndex(1, 100), { ok: true });
    // Heartbeats confirm leadership, but the read must still wait for the no-op to commit.
    cluster.tick(1);
    cluster.deliver((message) => message.type === 'Heartbeat' || message.type === 'HeartbeatResp');
    assert.deepEqual(cluster.readsServed, []);
    cluster.deliver();
    assert.deepEqual(cluster.readsServed, [{ nodeId: 1, readId: 100, readIndex: 1 }]);
  });

  it('is released only after a majority confirms the leadership', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3 });
    cluster.elect(1);
    cluster.heartbeat(1);
    assert.ok(cluster.propose(1, 7).ok);
    cluster.deliver();
    assert.deepEqual(cluster.readIndex(1, 200), { ok: true });
    // The confirming heartbeats are lost: nothing is released.
    cluster.drop(() => true);
    assert.deepEqual(cluster.readsServed, []);
    // The next heartbeat carries the read's round; one follower's answer makes a majority.
    cluster.tick(1);
    cluster.deliver((message) => message.to === 2 || message.from === 2);
    assert.deepEqual(cluster.readsServed, [{ nodeId: 1, readId: 200, readIndex: 2 }]);
  });

  it('a leader cut off from the majority never releases a read', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3 });
    cluster.elect(1);
    cluster.heartbeat(1);
    assert.deepEqual(cluster.readIndex(1, 300), { ok: true });
    for (let tick = 0; tick < 30; tick++) {
      if (cluster.core(1).currentRole === 'leader') cluster.tick(1);
      cluster.drop(() => true);
    }
    assert.equal(cluster.core(1).currentRole, 'follower', 'check-quorum made it step down');
    assert.deepEqual(cluster.readsServed, []);
  });

  it('followers refuse reads; the pending queue is bounded', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3, limits: { pendingReadsMax: 2 } });
    cluster.elect(1);
    cluster.heartbeat(1);
    assert.deepEqual(cluster.readIndex(2, 1), { ok: false, reason: 'not_leader' });
    assert.deepEqual(cluster.readIndex(1, 2), { ok: true });
    assert.deepEqual(cluster.readIndex(1, 3), { ok: true });
    assert.deepEqual(cluster.readIndex(1, 4), { ok: false, reason: 'queue_full' });
    cluster.deliver();
    assert.deepEqual(cluster.readsServed.map((read) => read.readId), [2, 3]);
  });
});
