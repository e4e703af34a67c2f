/**
 * Log compaction and InstallSnapshot (Raft §7).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { among, ScriptedCluster } from '../sim/scripted_cluster.js';

describe('snapshots', () => {
  it('a follower too far behind is caught up by InstallSnapshot', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3, limits: { entriesPerAppendMax: 4 } });
    cluster.elect(1);
    cluster.heartbeat(1);
    cluster.crash(3);
    for (let commandId = 1; commandId <= 20; commandId++) assert.ok(cluster.propose(1, commandId).ok);
    cluster.deliver(among(1, 2));
    cluster.heartbeat(1, [1, 2]);
    const appliedIndex = cluster.node(1).stateMachine!.appliedIndex;
    assert.equal(appliedIndex, 21);
    for (const id of [1, 2]) {
      const stateMachine = cluster.node(id).stateMachine!;
      assert.deepEqual(cluster.act(id, (core) => core.compact(stateMachine.appliedIndex, stateMachine.snapshotData())), { ok: true });
      assert.equal(cluster.node(id).storage.firstIndex(), 22, 'the compaction is persisted through a Ready');
    }
    assert.deepEqual(cluster.act(1, (core) => core.compact(10, new Uint8Array(0))), { ok: false, reason: 'already_compacted' });

    cluster.restart(3);
    for (let round = 0; round < 10; round++) cluster.heartbeat(1);
    const snapshotsTo3 = cluster.delivered.filter((message) => message.type === 'InstallSnapshot' && message.to === 3);
    assert.equal(snapshotsTo3.length, 1);
    assert.equal(cluster.node(3).storage.snapshot().lastIncludedIndex, 21);
    assert.equal(cluster.node(3).stateMachine!.hash, cluster.node(1).stateMachine!.hash);
    // And it keeps replicating normally after the snapshot.
    assert.ok(cluster.propose(1, 21).ok);
    cluster.deliver();
    cluster.heartbeat(1);
    assert.equal(cluster.core(3).commitIndex, 22);
    assert.equal(cluster.node(3).stateMachine!.appliedIndex, 22);
  });

  it('a restarted node is rebuilt from its snapshot, log and hard state only', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3 });
    cluster.elect(1);
    for (let commandId = 1; commandId <= 3; commandId++) cluster.propose(1, commandId);
    cluster.deliver();
    cluster.heartbeat(1);
    const snapshotData = cluster.node(2).stateMachine!.snapshotData();
    assert.deepEqual(cluster.act(2, (core) => core.compact(4, snapshotData)), { ok: true });
    for (let commandId = 4; commandId <= 6; commandId++) cluster.propose(1, commandId);
    cluster.deliver();
    cluster.heartbeat(1);
    const hashBefore = cluster.node(2).stateMachine!.hash;
    cluster.crash(2);
    cluster.restart(2);
    const core = cluster.core(2);
    assert.equal(core.currentTerm, 1);
    assert.equal(core.status().votedFor, 1);
    assert.equal(core.commitIndex, 7, 'commit index is persisted and survives the restart');
    assert.equal(core.status().firstLogIndex, 5);
    assert.equal(cluster.node(2).stateMachine!.hash, hashBefore, 'entries after the snapshot are re-applied');
  });
});
