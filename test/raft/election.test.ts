/**
 * Leader election scenarios (Raft §5.2, §5.4.1; thesis §9.6 pre-vote, §6.2 check-quorum).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AssertionFailure } from '../../common/assert.js';
import { assertLegalTransition } from '../../controller/raft/raft_node.js';
import { among, commandEntry, ScriptedCluster } from '../sim/scripted_cluster.js';

describe('leader election', () => {
  it('elects exactly one leader, and everyone learns it', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3 });
    cluster.elect(1);
    assert.deepEqual(cluster.leaders(), [1]);
    assert.equal(cluster.core(1).currentTerm, 1);
    cluster.heartbeat(1);
    for (const id of [2, 3]) {
      assert.equal(cluster.core(id).status().leaderId, 1);
      assert.equal(cluster.core(id).currentTerm, 1);
      assert.equal(cluster.core(id).status().votedFor, 1);
    }
  });

  it('elects one leader when everyone times out at once', () => {
    const cluster = new ScriptedCluster({ nodeCount: 5, seed: 7 });
    for (let round = 0; round < 100 && cluster.leaders().length === 0; round++) {
      for (const node of cluster.nodes) cluster.tick(node.id);
      cluster.deliver();
    }
    assert.equal(cluster.leaders().length, 1);
  });

  it('a candidate with a stale log loses (Raft §5.4.1)', () => {
    // n1 missed the entry of term 2 that n2 and n3 hold.
    const cluster = new ScriptedCluster({
      nodeCount: 3,
      preload: (id, storage) => {
        storage.append(id === 1 ? [commandEntry(1, 1, 11)] : [commandEntry(1, 1, 11), commandEntry(2, 2, 12)]);
        storage.setHardState({ term: 2, votedFor: null, commitIndex: 1 });
      },
    });
    cluster.tickUntil(1, () => cluster.core(1).currentRole === 'precandidate');
    cluster.deliver();
    // The pre-vote fails, so n1 never even raises its term.
    assert.equal(cluster.core(1).currentRole, 'follower');
    assert.equal(cluster.core(1).currentTerm, 2);
    // A real vote request with its stale log is refused too.
    cluster.act(2, (core) => core.step({ type: 'Vote', from: 1, to: 2, term: 3, lastLogIndex: 1, lastLogTerm: 1 }));
    const answer = cluster.pending.find((message) => message.type === 'VoteResp' && message.from === 2);
    assert.ok(answer !== undefined && answer.type === 'VoteResp');
    assert.equal(answer.granted, false);
    cluster.deliver();
    // An up-to-date node wins.
    cluster.elect(2);
    assert.deepEqual(cluster.leaders(), [2]);
  });

  it('votes at most once per term (Raft §5.2)', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3 });
    cluster.act(3, (core) => core.step({ type: 'Vote', from: 1, to: 3, term: 1, lastLogIndex: 0, lastLogTerm: 0 }));
    cluster.act(3, (core) => core.step({ type: 'Vote', from: 2, to: 3, term: 1, lastLogIndex: 0, lastLogTerm: 0 }));
    const answers = cluster.pending.filter((message) => message.type === 'VoteResp');
    assert.deepEqual(answers.map((message) => message.type === 'VoteResp' && [message.to, message.granted]), [[1, true], [2, false]]);
    assert.equal(cluster.node(3).storage.hardState().votedFor, 1, 'the vote is persisted before it is sent');
  });

  it('pre-vote: a node cut off for a long time does not raise its term or depose the leader', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3 });
    cluster.elect(1);
    const leaderTerm = cluster.core(1).currentTerm;
    for (let tick = 0; tick < 20 * 10; tick++) {
      cluster.tick(3);
      cluster.heartbeat(1, [1, 2]);
      cluster.drop((message) => message.from === 3 || message.to === 3);
    }
    assert.equal(cluster.core(3).currentTerm, leaderTerm, 'pre-vote keeps the isolated node at its term');
    assert.ok(['follower', 'precandidate'].includes(cluster.core(3).currentRole));
    // Rejoin: it hears the leader and follows; nothing moves.
    for (let round = 0; round < 30; round++) {
      cluster.tick(3);
      cluster.heartbeat(1);
    }
    assert.deepEqual(cluster.leaders(), [1]);
    for (const id of [1, 2, 3]) assert.equal(cluster.core(id).currentTerm, leaderTerm);
    assert.equal(cluster.core(3).status().leaderId, 1);
  });

  it('pre-vote is refused by nodes that hear from a live leader (leader lease)', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3 });
    cluster.elect(1);
    cluster.heartbeat(1);
    // n3 cannot hear n1 but can reach n2; n2 heard n1 within the election timeout.
    cluster.act(2, (core) => core.step({ type: 'PreVote', from: 3, to: 2, term: 2, lastLogIndex: 1, lastLogTerm: 1 }));
    const answer = cluster.pending.find((message) => message.type === 'PreVoteResp' && message.from === 2);
    assert.ok(answer !== undefined && answer.type === 'PreVoteResp');
    assert.equal(answer.granted, false);
    assert.equal(cluster.core(2).currentTerm, 1);
  });

  it('check-quorum: a leader that hears from no majority steps down', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3 });
    cluster.elect(1);
    const leaderTerm = cluster.core(1).currentTerm;
    for (let tick = 0; tick < 2 * 10 && cluster.core(1).currentRole === 'leader'; tick++) {
      cluster.tick(1);
      cluster.drop(() => true);
    }
    assert.equal(cluster.core(1).currentRole, 'follower');
    assert.equal(cluster.core(1).currentTerm, leaderTerm, 'stepping down does not change the term');
    assert.equal(cluster.core(1).status().leaderId, null);
  });

  it('the transition table refuses illegal role changes', () => {
    assert.throws(() => assertLegalTransition('follower', 'leader'), AssertionFailure);
    assert.throws(() => assertLegalTransition('follower', 'candidate'), AssertionFailure);
    assert.throws(() => assertLegalTransition('leader', 'candidate'), AssertionFailure);
    assert.throws(() => assertLegalTransition('precandidate', 'leader'), AssertionFailure);
    assertLegalTransition('candidate', 'leader');
    assertLegalTransition('leader', 'follower');
  });

  it('delivers nothing across a partition it was not told about', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3 });
    cluster.elect(1, [1, 2]);
    assert.equal(cluster.core(3).status().leaderId, null);
    cluster.deliver(among(1, 3));
    cluster.heartbeat(1);
    assert.equal(cluster.core(3).status().leaderId, 1);
  });
});
