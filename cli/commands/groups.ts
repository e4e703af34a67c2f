/**
 * `tributary groups list|describe|reset-offsets`, through the SDK's Admin: the cluster's consumer
 * groups, one group's members, assignments, committed offsets and lag, and resetting a group's
 * offsets while it has no members.
 */
import type { Argv, CommandModule } from 'yargs';
import type { GroupDescription, ResetTarget } from '../../client/index.js';
import { UsageError } from '../usage-error.js';
import { clientFor, intFlag } from './topics.js';

const bootstrapOption = { type: 'string', describe: 'broker urls, comma-separated (default $TRIBUTARY_BOOTSTRAP or ws://127.0.0.1:9092)' } as const;

async function withAdmin<T>(bootstrap: string | undefined, fn: (admin: ReturnType<ReturnType<typeof clientFor>['admin']>) => Promise<T>): Promise<T> {
  const admin = clientFor(bootstrap).admin();
  try {
    await admin.connect();
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

function groupName(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new UsageError('a GROUP id is required');
  return value;
}

const listCommand: CommandModule<object, { json: boolean; bootstrap?: string }> = {
  command: 'list',
  describe: 'list the consumer groups of the cluster',
  builder: (y) => y.option('json', { type: 'boolean', default: false, describe: 'print a JSON array' }).option('bootstrap', bootstrapOption) as never,
  handler: async (args) => {
    const groups = await withAdmin(args.bootstrap, (admin) => admin.listGroups());
    if (args.json) {
      process.stdout.write(JSON.stringify(groups) + '\n');
      return;
    }
    const lines = groups.map((g) => `${g.groupId.padEnd(32)} ${g.state.padEnd(10)} ${String(g.members).padStart(4)} members  coordinator ${g.coordinator}`);
    if (lines.length > 0) process.stdout.write(lines.join('\n') + '\n');
  },
};

/** Per partition: committed offset, log end, lag and the member that owns it now. */
function describeJson(d: GroupDescription): object {
  const owner = new Map<string, string>();
  for (const m of d.members) for (const p of m.assignment) owner.set(`${p.topic}-${p.partition}`, m.memberId);
  return { ...d, offsets: d.offsets.map((o) => ({ ...o, owner: owner.get(`${o.topic}-${o.partition}`) ?? null })) };
}

const describeCommand: CommandModule<object, { group: string; json: boolean; bootstrap?: string }> = {
  command: 'describe <group>',
  describe: "a group's members and partitions, with committed offset, log end offset and lag per partition",
  builder: (y) =>
    y
      .positional('group', { type: 'string', describe: 'group id' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
      .option('bootstrap', bootstrapOption) as never,
  handler: async (args) => {
    const groupId = groupName(args.group);
    const [d] = await withAdmin(args.bootstrap, (admin) => admin.describeGroups([groupId]));
    const view = describeJson(d!) as GroupDescription & { offsets: Array<GroupDescription['offsets'][number] & { owner: string | null }> };
    if (args.json) {
      process.stdout.write(JSON.stringify(view) + '\n');
      return;
    }
    const out = [`group ${groupId}: ${view.state}, epoch ${view.groupEpoch}, coordinator ${view.coordinator}, ${view.members.length} member(s)`];
    for (const m of view.members) {
      const parts = m.assignment.map((p) => `${p.topic}-${p.partition}`).join(',');
      out.push(`  member ${m.memberId} (client ${m.clientId}, epoch ${m.memberEpoch}): ${parts === '' ? '(none)' : parts}`);
    }
    if (view.offsets.length > 0) {
      out.push(`  ${'PARTITION'.padEnd(28)} ${'COMMITTED'.padStart(12)} ${'LOG-END'.padStart(12)} ${'LAG'.padStart(10)}  OWNER`);
      for (const o of view.offsets) {
        const unknown = (n: number) => (n < 0 ? '-' : String(n));
        out.push(`  ${`${o.topic}-${o.partition}`.padEnd(28)} ${String(o.committedOffset).padStart(12)} ${unknown(o.logEndOffset).padStart(12)} ${unknown(o.lag).padStart(10)}  ${o.owner ?? '-'}`);
      }
    }
    process.stdout.write(out.join('\n') + '\n');
  },
};

interface ResetArgs {
  group: string;
  topic?: string;
  toEarliest: boolean;
  toLatest: boolean;
  toOffset?: unknown;
  bootstrap?: string;
}

const resetCommand: CommandModule<object, ResetArgs> = {
  command: 'reset-offsets <group>',
  describe: "set a group's committed offsets on a topic (only while the group has no members)",
  builder: (y) =>
    y
      .positional('group', { type: 'string', describe: 'group id' })
      .option('topic', { type: 'string', demandOption: true, describe: 'every partition of this topic' })
      .option('to-earliest', { type: 'boolean', default: false, describe: 'to the earliest offset' })
      .option('to-latest', { type: 'boolean', default: false, describe: 'to the log end offset' })
      .option('to-offset', { type: 'string', describe: 'to this offset (kept within earliest..latest)' })
      .option('bootstrap', bootstrapOption) as never,
  handler: async (args) => {
    const groupId = groupName(args.group);
    if (typeof args.topic !== 'string' || args.topic === '') throw new UsageError('--topic needs a topic name');
    const chosen = [args.toEarliest, args.toLatest, args.toOffset !== undefined].filter(Boolean).length;
    if (chosen !== 1) throw new UsageError('give exactly one of --to-earliest, --to-latest, --to-offset N');
    const to: ResetTarget = args.toEarliest ? 'earliest' : args.toLatest ? 'latest' : { offset: intFlag('to-offset', args.toOffset, 0) };
    const topic = args.topic;
    const result = await withAdmin(args.bootstrap, (admin) => admin.resetOffsets({ groupId, topic, to }));
    process.stdout.write(`reset group ${groupId} on ${topic}: ${result.map((r) => `${r.partition}→${r.offset}`).join(' ')}\n`);
  },
};

export const groupsCommand: CommandModule = {
  command: 'groups <command>',
  describe: 'list and describe consumer groups, reset their offsets',
  builder: (y: Argv) => y.command(listCommand).command(describeCommand).command(resetCommand).demandCommand(1, 'name a groups command'),
  handler: () => undefined,
};
