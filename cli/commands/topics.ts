/**
 * `tributary topics create|list|describe|delete|alter`, through the SDK's Admin. Also the
 * bootstrap and flag helpers that `produce` and `consume` share.
 */
import type { Argv, CommandModule } from 'yargs';
import { Tributary } from '../../client/index.js';
import { normaliseBootstrap } from '../../client/cluster.js';
import { TributaryError } from '../../protocol/errors.js';
import { UsageError } from '../usage-error.js';

export const DEFAULT_BOOTSTRAP = 'ws://127.0.0.1:9092';

/** `--bootstrap` (comma-separated), else $TRIBUTARY_BOOTSTRAP, else ws://127.0.0.1:9092. */
export function bootstrapFrom(flag: string | undefined): string[] {
  const raw = flag ?? process.env.TRIBUTARY_BOOTSTRAP ?? DEFAULT_BOOTSTRAP;
  const entries = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (entries.length === 0) throw new UsageError(`--bootstrap: expected a comma-separated list of broker urls, got '${raw}'`);
  try {
    return entries.map(normaliseBootstrap);
  } catch (error) {
    throw new UsageError(`--bootstrap: ${error instanceof TributaryError ? error.message.replace(/^[A-Z_]+: /, '') : String(error)}`);
  }
}

export function clientFor(bootstrap: string | undefined): Tributary {
  return new Tributary({ clientId: 'tributary-cli', bootstrap: bootstrapFrom(bootstrap), requestTimeoutMs: 15_000, connectTimeoutMs: 5_000 });
}

/** A whole number flag within [min, max], or a one-line usage error naming the flag. */
export function intFlag(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer${max === Number.MAX_SAFE_INTEGER ? ` >= ${min}` : ` in ${min}..${max}`}, got '${String(value)}'`);
  }
  return n;
}

/** `--config k=v` (repeatable) → { k: v }. */
export function configFlags(values: unknown): Record<string, string> {
  const list = values === undefined ? [] : Array.isArray(values) ? values : [values];
  const out: Record<string, string> = {};
  for (const raw of list) {
    const text = String(raw);
    const eq = text.indexOf('=');
    if (eq <= 0) throw new UsageError(`--config must be key=value, got '${text}'`);
    out[text.slice(0, eq).trim()] = text.slice(eq + 1);
  }
  return out;
}

function topicName(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new UsageError('a topic NAME is required');
  return value;
}

const bootstrapOption = { type: 'string', describe: `broker urls, comma-separated (default $TRIBUTARY_BOOTSTRAP or ${DEFAULT_BOOTSTRAP})` } as const;

interface CreateArgs {
  name: string;
  partitions: unknown;
  replicationFactor: unknown;
  config?: unknown;
  bootstrap?: string;
}
interface NameArgs {
  name: string;
  bootstrap?: string;
}
interface DescribeArgs extends NameArgs {
  json: boolean;
}
interface AlterArgs extends NameArgs {
  config?: unknown;
}

async function withAdmin<T>(bootstrap: string | undefined, fn: (admin: ReturnType<Tributary['admin']>) => Promise<T>): Promise<T> {
  const admin = clientFor(bootstrap).admin();
  try {
    await admin.connect();
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

const createCommand: CommandModule<object, CreateArgs> = {
  command: 'create <name>',
  describe: 'create a topic',
  builder: (y) =>
    y
      .positional('name', { type: 'string', describe: 'topic name' })
      .option('partitions', { type: 'string', demandOption: true, describe: 'number of partitions' })
      .option('replication-factor', { type: 'string', demandOption: true, describe: 'replicas per partition' })
      .option('config', { type: 'string', array: true, describe: 'topic config key=value (repeatable)' })
      .option('bootstrap', bootstrapOption) as never,
  handler: async (args) => {
    const name = topicName(args.name);
    const partitions = intFlag('partitions', args.partitions, 1, 0x7fffffff);
    const replicationFactor = intFlag('replication-factor', args.replicationFactor, 1, 0x7fff);
    const config = configFlags(args.config);
    await withAdmin(args.bootstrap, (admin) => admin.createTopics([{ topic: name, partitions, replicationFactor, config }]));
    process.stdout.write(`created topic ${name} (${partitions} partitions, replication factor ${replicationFactor})\n`);
  },
};

const listCommand: CommandModule<object, { bootstrap?: string }> = {
  command: 'list',
  describe: 'list topics',
  builder: (y) => y.option('bootstrap', bootstrapOption) as never,
  handler: async (args) => {
    const names = await withAdmin(args.bootstrap, (admin) => admin.listTopics());
    if (names.length > 0) process.stdout.write(names.join('\n') + '\n');
  },
};

const describeCommand: CommandModule<object, DescribeArgs> = {
  command: 'describe <name>',
  describe: 'partitions (leader, epoch, replicas, ISR) and configs of a topic',
  builder: (y) =>
    y
      .positional('name', { type: 'string', describe: 'topic name' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
      .option('bootstrap', bootstrapOption) as never,
  handler: async (args) => {
    const name = topicName(args.name);
    const [d] = await withAdmin(args.bootstrap, (admin) => admin.describeTopics([name]));
    const partitions = d!.partitions.map((p) => ({ topic: name, partition: p.partition, leader: p.leader, leaderEpoch: p.leaderEpoch, replicas: p.replicas, isr: p.isr }));
    if (args.json) {
      process.stdout.write(JSON.stringify({ topic: name, partitions, config: d!.config }) + '\n');
      return;
    }
    const out = [`topic ${name}: ${partitions.length} partitions`];
    for (const p of partitions) {
      out.push(`  ${`${name}-${p.partition}`.padEnd(24)} leader ${String(p.leader ?? 'none').padEnd(4)} epoch ${String(p.leaderEpoch).padEnd(4)} replicas [${p.replicas}] isr [${p.isr}]`);
    }
    const configs = Object.entries(d!.config).sort(([a], [b]) => a.localeCompare(b));
    if (configs.length > 0) out.push('configs:', ...configs.map(([k, v]) => `  ${k}=${v}`));
    process.stdout.write(out.join('\n') + '\n');
  },
};

const deleteCommand: CommandModule<object, NameArgs> = {
  command: 'delete <name>',
  describe: 'delete a topic',
  builder: (y) => y.positional('name', { type: 'string', describe: 'topic name' }).option('bootstrap', bootstrapOption) as never,
  handler: async (args) => {
    const name = topicName(args.name);
    await withAdmin(args.bootstrap, (admin) => admin.deleteTopics([name]));
    process.stdout.write(`deleted topic ${name}\n`);
  },
};

const alterCommand: CommandModule<object, AlterArgs> = {
  command: 'alter <name>',
  describe: 'set topic configs',
  builder: (y) =>
    y
      .positional('name', { type: 'string', describe: 'topic name' })
      .option('config', { type: 'string', array: true, describe: 'topic config key=value (repeatable)' })
      .option('bootstrap', bootstrapOption) as never,
  handler: async (args) => {
    const name = topicName(args.name);
    const config = configFlags(args.config);
    if (Object.keys(config).length === 0) throw new UsageError('topics alter: give at least one --config key=value');
    await withAdmin(args.bootstrap, (admin) => admin.alterConfigs(name, config));
    process.stdout.write(`altered topic ${name}: ${Object.entries(config).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
  },
};

export const topicsCommand: CommandModule = {
  command: 'topics <command>',
  describe: 'create, list, describe, delete and alter topics',
  builder: (y: Argv) =>
    y.command(createCommand).command(listCommand).command(describeCommand).command(deleteCommand).command(alterCommand).demandCommand(1, 'name a topics command'),
  handler: () => undefined,
};
