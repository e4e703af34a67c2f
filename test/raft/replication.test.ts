/**
 * Log replication scenarios (Raft §5.3, §5.4.2 and Figure 8, pipelining and limits).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RaftTestFaults } from '../../controller/raft/config.js';
import type { RaftMessage } from '../../controller/raft/types.js';
import { SimViolation } from '../sim/checker.js';
import { among, commandEntry, ScriptedCluster } from '../sim/scripted_cluster.js';

function termsOf(cluster: ScriptedCluster, id: number): number[] {
  const core = cluster.core(id);
  const terms: number[] = [];
  for (let index = 1; index <= core.status().lastLogIndex; index++) terms.push(core.termAt(index)!);
  return terms;
}

describe('log replication', () => {
  it('replicates and commits proposals on every node', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3 });
    cluster.elect(1);
    for (let commandId = 1; commandId <= 5; commandId++) assert.ok(cluster.propose(1, commandId).ok);
    cluster.deliver();
    cluster.heartbeat(1);
    for (const id of [1, 2, 3]) {
      assert.equal(cluster.core(id).commitIndex, 6); // the no-op, then 5 commands
      assert.equal(cluster.node(id).stateMachine!.commandCount, 5);
    }
  });

  it('overwrites a follower\'s conflicting entries, backtracking a term per round trip (Raft §5.3)', () => {
    const cluster = new ScriptedCluster({
      nodeCount: 3,
      preload: (id, storage) => {
        if (id === 3) {
          // Entries of a term-2 leader that never committed them.
          storage.append([commandEntry(1, 1, 1), commandEntry(2, 1, 2), commandEntry(3, 2, 30), commandEntry(4, 2, 40), commandEntry(5, 2, 50)]);
          storage.setHardState({ term: 2, votedFor: null, commitIndex: 2 });
        } else {
          storage.append([commandEntry(1, 1, 1), commandEntry(2, 1, 2), commandEntry(3, 3, 3)]);
          storage.setHardState({ term: 3, votedFor: null, commitIndex: 2 });
        }
      },
    });
    cluster.elect(1);
    cluster.heartbeat(1);
    assert.deepEqual(termsOf(cluster, 3), [1, 1, 3, 4]);
    assert.deepEqual(termsOf(cluster, 3), termsOf(cluster, 1));
    const rejections = cluster.delivered.filter((message) => message.type === 'AppendResp' && !message.success && message.from === 3);
    assert.equal(rejections.length, 1, 'the conflict hint skips every entry of term 2 at once');
    assert.equal(cluster.core(3).commitIndex, 4);
  });

  it('Figure 8: an entry of an earlier term is not committed by counting replicas (Raft §5.4.2)', () => {
    const { cluster, commitIndexAfterCounting } = runFigure8({});
    assert.equal(commitIndexAfterCounting, 1, 'index 2 (term 2) sits on a majority but must not commit');
    // And rightly so: n5 can still be elected and overwrite it everywhere.
    assert.deepEqual(cluster.leaders(), [5]);
    cluster.heartbeat(5, [3, 4, 5]);
    cluster.heartbeat(5, [3, 4, 5]);
    assert.equal(cluster.core(3).termAt(2), 3);
  });

  it('Figure 8 with the bug injected: the checker catches it', () => {
    assert.throws(
      () => runFigure8({ commitOldTermEntriesByCounting: true }),
      (error: unknown) => error instanceof SimViolation && error.invariant === 'leader_completeness',
    );
  });

  it('keeps at most inflightAppendsMax Appends outstanding per follower', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3, limits: { inflightAppendsMax: 2, entriesPerAppendMax: 1 } });
    cluster.elect(1);
    cluster.heartbeat(1);
    for (let commandId = 1; commandId <= 10; commandId++) assert.ok(cluster.propose(1, commandId).ok);
    const appendsTo2 = cluster.pending.filter((message) => message.type === 'Append' && message.to === 2 && message.entries.length > 0);
    assert.equal(appendsTo2.length, 2);
    cluster.deliver();
    for (let round = 0; round < 10; round++) cluster.heartbeat(1);
    assert.equal(cluster.core(2).status().lastLogIndex, 11);
  });

  it('propose answers with typed rejections instead of queueing without bound', () => {
    const cluster = new ScriptedCluster({ nodeCount: 3, limits: { uncommittedEntriesMax: 4, appendEntriesBytesMax: 16 } });
    assert.deepEqual(cluster.propose(1, 1), { ok: false, reason: 'not_leader' });
    cluster.elect(1);
    cluster.heartbeat(1);
    cluster.drop(() => true);
    assert.deepEqual(cluster.act(1, (core) => core.propose(new Uint8Array(17))), { ok: false, reason: 'entry_too_large' });
    for (let commandId = 1; commandId <= 4; commandId++) assert.ok(cluster.propose(1, commandId).ok);
    assert.deepEqual(cluster.propose(1, 5), { ok: false, reason: 'queue_full' });
    assert.deepEqual(cluster.propose(2, 5), { ok: false, reason: 'not_leader' });
  });
});

/**
 * The paper's Figure 8, on five nodes. n1 led term 2 and got entry 2 only onto n2; n5 led term 3
 * with its own entry 2 that nobody else took. n1 is elected for term 4 and copies its term-2
 * entry onto n3 and n4 (a majority with n1 and n2) but its term-4 no-op only onto n2 before it
 * crashes. Then n5 can win term 5 with n3's and n4's votes.
 */
function runFigure8(testFaults: RaftTestFaults): { cluster: ScriptedCluster; commitIndexAfterCounting: number } {
  const cluster = new ScriptedCluster({
    nodeCount: 5,
    limits: { entriesPerAppendMax: 1 },
    testFaults,
    preload: (id, storage) => {
      const entries = [commandEntry(1, 1, 1)];
      if (id === 1 || id === 2) entries.push(commandEntry(2, 2, 2));
      if (id === 5) entries.push(commandEntry(2, 3, 3));
      storage.append(entries);
      storage.setHardState({ term: 3, votedFor: id >= 3 ? 5 : null, commitIndex: 1 });
    },
  });
  // Drop the Append that would give n3 or n4 the no-op (index 3) once they hold entry 2; the
  // first probe also carries it, but they reject that one, having no entry 2 yet.
  const carriesNoopTo3or4 = (message: RaftMessage): boolean =>
    message.type === 'Append' && (message.to === 3 || message.to === 4) &&
    message.entries.some((entry) => entry.index === 3) && cluster.core(message.to).termAt(2) === 2;
  cluster.tickUntil(1, () => cluster.core(1).currentRole === 'precandidate');
  cluster.deliver((message) => among(1, 2, 3, 4)(message) && !carriesNoopTo3or4(message));
  assert.deepEqual(cluster.leaders(), [1]);
  assert.equal(cluster.core(1).currentTerm, 4);
  assert.equal(cluster.core(3).termAt(2), 2);
  assert.equal(cluster.core(4).termAt(2), 2);
  assert.equal(cluster.core(3).termAt(3), undefined);
  const commitIndexAfterCounting = cluster.core(1).commitIndex;

  cluster.crash(1);
  cluster.drop(() => true);
  // n3 and n4 stop hearing n1; once their leader lease has run out n5 can collect their votes.
  for (let tick = 0; tick < 10; tick++) {
    cluster.tick(3);
    cluster.tick(4);
  }
  cluster.drop(() => true);
  for (let round = 0; round < 100 && cluster.core(5).currentRole !== 'leader'; round++) {
    cluster.tick(5);
    cluster.deliver(among(3, 4, 5));
  }
  return { cluster, commitIndexAfterCounting };
}
