/**
 * Runs the Raft simulator from the command line.
 *
 *   node dist/test/sim/cli.js --seeds N [--start S] [--nodes 3|5] [--scenario chaos|prevote_rejoin] [--ticks T]
 *   node dist/test/sim/cli.js --seed S [--nodes 3|5] [--scenario ...] [--trace]
 *   add --fault NAME (a RaftTestFaults key) to run with a deliberate bug
 *
 * A failure prints the seed, the violated invariant and the command that replays it; exit 1.
 */
import type { RaftTestFaults } from '../../controller/raft/config.js';
import { runSimulation } from './simulator.js';
import type { Scenario, SimResult } from './simulator.js';

interface CliOptions {
  seeds: number;
  start: number;
  seed: number | undefined;
  nodeCount: 3 | 5 | undefined;
  scenario: Scenario;
  trace: boolean;
  fault: keyof RaftTestFaults | undefined;
  chaosTicks: number | undefined;
}

const FAULT_NAMES: readonly (keyof RaftTestFaults)[] = [
  'voteTwiceInTerm', 'commitOldTermEntriesByCounting', 'releaseReadsWithoutQuorum', 'ignoreLeaderLease',
];

function usage(problem: string): never {
  process.stderr.write(`${problem}\nusage: cli.js --seeds N [--start S] | --seed S [--trace]; [--nodes 3|5] [--ticks T] [--scenario chaos|prevote_rejoin] [--fault ${FAULT_NAMES.join('|')}]\n`);
  process.exit(2);
}

function parseInteger(flag: string, text: string | undefined): number {
  const value = Number(text);
  if (text === undefined || !Number.isSafeInteger(value) || value < 0) usage(`${flag} needs a non-negative integer`);
  return value;
}

function parseArgs(argv: readonly string[]): CliOptions {
  const options: CliOptions = { seeds: 100, start: 1, seed: undefined, nodeCount: undefined, scenario: 'chaos', trace: false, fault: undefined, chaosTicks: undefined };
  for (let k = 0; k < argv.length; k++) {
    const flag = argv[k]!;
    switch (flag) {
      case '--seeds': options.seeds = parseInteger(flag, argv[++k]); break;
      case '--start': options.start = parseInteger(flag, argv[++k]); break;
      case '--seed': options.seed = parseInteger(flag, argv[++k]); break;
      case '--nodes': {
        const nodeCount = parseInteger(flag, argv[++k]);
        if (nodeCount !== 3 && nodeCount !== 5) usage('--nodes must be 3 or 5');
        options.nodeCount = nodeCount;
        break;
      }
      case '--scenario': {
        const scenario = argv[++k];
        if (scenario !== 'chaos' && scenario !== 'prevote_rejoin') usage('--scenario must be chaos or prevote_rejoin');
        options.scenario = scenario;
        break;
      }
      case '--fault': {
        const fault = argv[++k] as keyof RaftTestFaults;
        if (!FAULT_NAMES.includes(fault)) usage(`--fault must be one of ${FAULT_NAMES.join(', ')}`);
        options.fault = fault;
        break;
      }
      case '--ticks': options.chaosTicks = parseInteger(flag, argv[++k]); break;
      case '--trace': options.trace = true; break;
      default: usage(`unknown argument ${flag}`);
    }
  }
  return options;
}

function replayCommand(options: CliOptions, seed: number): string {
  const parts = ['node dist/test/sim/cli.js', `--seed ${seed}`];
  if (options.nodeCount !== undefined) parts.push(`--nodes ${options.nodeCount}`);
  if (options.scenario !== 'chaos') parts.push(`--scenario ${options.scenario}`);
  if (options.fault !== undefined) parts.push(`--fault ${options.fault}`);
  if (options.chaosTicks !== undefined) parts.push(`--ticks ${options.chaosTicks}`);
  parts.push('--trace');
  return parts.join(' ');
}

function runOne(options: CliOptions, seed: number, trace: ((line: string) => void) | undefined): SimResult {
  return runSimulation({
    seed,
    scenario: options.scenario,
    ...(options.nodeCount === undefined ? {} : { nodeCount: options.nodeCount }),
    ...(options.fault === undefined ? {} : { testFaults: { [options.fault]: true } }),
    ...(options.chaosTicks === undefined ? {} : { chaosTicks: options.chaosTicks }),
    ...(trace === undefined ? {} : { trace }),
  });
}

function main(): void {
  const options = parseArgs(process.argv.slice(2));
  const seeds = options.seed !== undefined ? [options.seed] : Array.from({ length: options.seeds }, (_, k) => options.start + k);
  const trace = options.trace ? (line: string): void => void process.stdout.write(`${line}\n`) : undefined;
  const startedAtMs = performance.now();
  let maxHealTicks = 0;
  let maxCatchUpTicks = 0;
  let snapshotsInstalled = 0;
  let readsServed = 0;
  for (const seed of seeds) {
    const result = runOne(options, seed, trace);
    if (!result.ok) {
      process.stdout.write(
        `FAIL seed=${result.seed} nodes=${result.nodeCount} tick=${result.tick} invariant=${result.violation.invariant}\n` +
        `  ${result.violation.detail}\n  replay: ${replayCommand(options, seed)}\n`,
      );
      process.exit(1);
    }
    maxHealTicks = Math.max(maxHealTicks, result.stats.healTicks);
    maxCatchUpTicks = Math.max(maxCatchUpTicks, result.stats.catchUpTicks);
    snapshotsInstalled += result.stats.snapshotsInstalled;
    readsServed += result.stats.readsServed;
    if (seeds.length === 1) process.stdout.write(`${JSON.stringify(result.stats)}\n`);
  }
  const elapsedMs = performance.now() - startedAtMs;
  process.stdout.write(
    `ok ${seeds.length} seeds (${options.scenario}) in ${(elapsedMs / 1000).toFixed(1)} s; ` +
    `max ticks after healing to commit ${maxHealTicks}, to catch up ${maxCatchUpTicks}; snapshots installed ${snapshotsInstalled}; reads checked ${readsServed}\n`,
  );
}

main();
