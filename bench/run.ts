/**
 * Benchmark dispatcher: `node dist/bench/run.js <name> [--seconds N]`. Each benchmark prints
 * JSON lines on stdout. Adding one is one line in BENCHES.
 */
import { positiveIntFlag } from './args.js';
import { controllerFailoverBench } from './controller-failover.js';
import { failoverBench } from './failover.js';
import { logBench } from './log.js';
import { produceBench } from './produce.js';
import { rebalanceBench } from './rebalance.js';

export interface BenchArgs {
  /** --seconds N: how long the measured phase runs; each benchmark has its own default. */
  seconds?: number;
  /** Everything after the benchmark name, for benchmark-specific flags. */
  argv: string[];
}

const BENCHES: Record<string, (args: BenchArgs) => Promise<void>> = {
  log: logBench,
  produce: produceBench,
  rebalance: rebalanceBench,
  failover: (args) => failoverBench({ rounds: positiveIntFlag(args.argv, 'rounds', 20) }),
  'controller-failover': (args) => controllerFailoverBench({ rounds: positiveIntFlag(args.argv, 'rounds', 20) }),
};

function fail(message: string): never {
  process.stderr.write(message + '\n');
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  const known = Object.keys(BENCHES).join(', ');
  const bench = name === undefined ? undefined : BENCHES[name];
  if (bench === undefined) fail(`unknown bench ${JSON.stringify(name ?? '')}; known benches: ${known}`);
  const args: BenchArgs = { argv: rest };
  const at = rest.indexOf('--seconds');
  if (at >= 0) {
    const seconds = Number(rest[at + 1]);
    if (!Number.isFinite(seconds) || seconds <= 0) fail(`--seconds needs a positive number, got ${JSON.stringify(rest[at + 1] ?? '')}`);
    args.seconds = seconds;
  }
  try {
    await bench(args);
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
}

await main(process.argv.slice(2));
