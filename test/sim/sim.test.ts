/**
 * The Raft simulator over many seeds, plus proof that its checks can fail.
 * Replay any failure with the command it prints (node dist/test/sim/cli.js --seed S --trace).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RaftTestFaults } from '../../controller/raft/config.js';
import type { InvariantName } from './checker.js';
import { runSimulation } from './simulator.js';
import type { Scenario, SimResult, SimStats } from './simulator.js';

const CHAOS_SEEDS = 1500;
const PREVOTE_SEEDS = 200;

function replay(result: SimResult, scenario: Scenario, fault?: keyof RaftTestFaults): string {
  return `node dist/test/sim/cli.js --seed ${result.seed}${scenario === 'chaos' ? '' : ` --scenario ${scenario}`}` +
    `${fault === undefined ? '' : ` --fault ${fault}`} --trace`;
}

function runSeeds(scenario: Scenario, firstSeed: number, count: number): { totals: SimStats; nodeCounts: Set<number> } {
  let totals: SimStats | undefined;
  const nodeCounts = new Set<number>();
  for (let seed = firstSeed; seed < firstSeed + count; seed++) {
    const result = runSimulation({ seed, scenario });
    if (!result.ok) {
      assert.fail(`seed ${seed} (${result.nodeCount} nodes) violated ${result.violation.invariant} at tick ${result.tick}: ` +
        `${result.violation.detail}\n  replay: ${replay(result, scenario)}`);
    }
    nodeCounts.add(result.nodeCount);
    if (totals === undefined) totals = { ...result.stats };
    else for (const key of Object.keys(totals) as (keyof SimStats)[]) totals[key] += result.stats[key];
  }
  return { totals: totals!, nodeCounts };
}

/** The first seed in [1, seedsMax] whose run fails, with the deliberate bug switched on. */
function firstFailure(fault: keyof RaftTestFaults, scenario: Scenario, seedsMax: number): SimResult | undefined {
  for (let seed = 1; seed <= seedsMax; seed++) {
    const result = runSimulation({ seed, scenario, testFaults: { [fault]: true } });
    if (!result.ok) return result;
  }
  return undefined;
}

describe('raft simulator', () => {
  it(`keeps every invariant over ${CHAOS_SEEDS} chaos seeds, 3 and 5 nodes`, () => {
    const { totals, nodeCounts } = runSeeds('chaos', 1, CHAOS_SEEDS);
    assert.deepEqual([...nodeCounts].sort(), [3, 5]);
    // The faults and features the checks are about really happened.
    assert.ok(totals.leadersElected > CHAOS_SEEDS, 'leader changes');
    assert.ok(totals.crashes > CHAOS_SEEDS, 'crashes');
    assert.ok(totals.crashesMidReady > 100, 'crashes in the middle of a Ready');
    assert.ok(totals.restarts > CHAOS_SEEDS, 'restarts');
    assert.ok(totals.partitions > CHAOS_SEEDS, 'partitions');
    assert.ok(totals.messagesDropped > 0 && totals.messagesDuplicated > 0, 'loss and duplication');
    assert.ok(totals.snapshotsInstalled > 100, 'InstallSnapshot');
    assert.ok(totals.readsServed > 1000, 'linearizable reads checked');
    assert.ok(totals.entriesCommitted > 10 * CHAOS_SEEDS, 'entries committed');
  });

  it(`pre-vote: a follower cut off and rejoining never changes the term (${PREVOTE_SEEDS} seeds)`, () => {
    runSeeds('prevote_rejoin', 1, PREVOTE_SEEDS);
  });

  it('replays a seed byte for byte', () => {
    const trace = (seed: number): string => {
      const lines: string[] = [];
      runSimulation({ seed, trace: (line) => void lines.push(line) });
      return lines.join('\n');
    };
    const first = trace(12345);
    assert.ok(first.length > 10_000);
    assert.equal(trace(12345), first);
    assert.notEqual(trace(12346), first);
  });
});

describe('raft simulator with deliberate bugs (a check that cannot fail proves nothing)', () => {
  const cases: { fault: keyof RaftTestFaults; scenario: Scenario; seedsMax: number; caughtAs: InvariantName[] }[] = [
    { fault: 'voteTwiceInTerm', scenario: 'chaos', seedsMax: 20, caughtAs: ['vote_once_per_term', 'election_safety'] },
    { fault: 'releaseReadsWithoutQuorum', scenario: 'chaos', seedsMax: 100, caughtAs: ['read_linearizability'] },
    { fault: 'ignoreLeaderLease', scenario: 'prevote_rejoin', seedsMax: 50, caughtAs: ['prevote_term_stable'] },
  ];
  for (const { fault, scenario, seedsMax, caughtAs } of cases) {
    it(`catches ${fault} within ${seedsMax} seeds`, () => {
      const failure = firstFailure(fault, scenario, seedsMax);
      assert.ok(failure !== undefined && !failure.ok, `${fault} went unnoticed for ${seedsMax} seeds`);
      assert.ok(caughtAs.includes(failure.violation.invariant), `caught as ${failure.violation.invariant}: ${failure.violation.detail}`);
    });
  }
});
