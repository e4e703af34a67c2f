/**
 * `tributary consume TOPIC`: print each record's value on its own line (or, with --json,
 * {"partition","offset","key","value","timestamp"}). Exits after --max-messages, else runs until
 * Ctrl-C. Without --partition it reads every partition of the topic; with --group G it joins
 * group G, reads the partitions the coordinator gives it from the group's committed offsets, and
 * commits what it printed (every 5 s, and on exit).
 */
import type { CommandModule } from 'yargs';
import type { ConsumedMessage, ReadFrom } from '../../client/index.js';
import { UsageError } from '../usage-error.js';
import { clientFor, intFlag } from './topics.js';

interface ConsumeArgs {
  topic: string;
  fromBeginning: boolean;
  partition?: unknown;
  offset?: unknown;
  group?: string;
  maxMessages?: unknown;
  readFrom: string;
  json: boolean;
  bootstrap?: string;
}

function text(b: Buffer | null): string | null {
  return b === null ? null : b.toString('utf8');
}

export const consumeCommand: CommandModule<object, ConsumeArgs> = {
  command: 'consume <topic>',
  describe: 'print records of a topic',
  builder: (y) =>
    y
      .positional('topic', { type: 'string', describe: 'topic to read' })
      .option('from-beginning', { type: 'boolean', default: false, describe: 'start at the earliest offset (default: only new records)' })
      .option('partition', { type: 'string', describe: 'read only this partition' })
      .option('offset', { type: 'string', describe: 'start at this offset (needs --partition)' })
      .option('group', { type: 'string', describe: 'join this consumer group: share its partitions, start at and commit its offsets' })
      .option('max-messages', { type: 'string', describe: 'exit after this many records' })
      .option('read-from', { type: 'string', default: 'leader', describe: 'leader | follower' })
      .option('json', { type: 'boolean', default: false, describe: 'print {"partition","offset","key","value","timestamp"} per record' })
      .option('bootstrap', { type: 'string', describe: 'broker urls, comma-separated' }) as never,
  handler: async (args) => {
    if (typeof args.topic !== 'string' || args.topic === '') throw new UsageError('a TOPIC is required');
    const partition = args.partition === undefined ? undefined : intFlag('partition', args.partition, 0, 0x7fffffff);
    const offset = args.offset === undefined ? undefined : intFlag('offset', args.offset, 0);
    if (offset !== undefined && partition === undefined) throw new UsageError('--offset needs --partition');
    if (args.group !== undefined && (typeof args.group !== 'string' || args.group.trim() === '')) throw new UsageError('--group needs a group id');
    if (args.group !== undefined && partition !== undefined) throw new UsageError('--group and --partition do not mix: the group coordinator assigns partitions');
    const maxMessages = args.maxMessages === undefined ? undefined : intFlag('max-messages', args.maxMessages, 1);
    if (args.readFrom !== 'leader' && args.readFrom !== 'follower') throw new UsageError(`--read-from must be leader or follower, got '${args.readFrom}'`);
    const readFrom: ReadFrom = args.readFrom;

    const consumer = clientFor(args.bootstrap).consumer({
      readFrom,
      ...(args.group === undefined ? {} : { groupId: args.group }),
      autoOffsetReset: args.fromBeginning ? 'earliest' : 'latest',
    });
    const stop = () => void consumer.disconnect();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      await consumer.connect();
      if (partition === undefined) {
        await consumer.subscribe({ topics: [args.topic], fromBeginning: args.fromBeginning });
      } else {
        consumer.assign([{ topic: args.topic, partition, ...(offset === undefined ? {} : { offset }) }]);
      }
      let count = 0;
      // Lines are written in chunks: when nothing more is prefetched (so output is never held
      // back waiting for records) or 64 KiB have gathered; stdout's backpressure is honoured.
      let pending = '';
      const write = async () => {
        const out = pending;
        pending = '';
        if (out !== '' && !process.stdout.write(out)) await new Promise<void>((resolve) => process.stdout.once('drain', () => resolve()));
      };
      try {
        for await (const m of consumer) {
          pending += (args.json ? JSON.stringify(toJson(m)) : (text(m.value) ?? '')) + '\n';
          count++;
          if (maxMessages !== undefined && count >= maxMessages) {
            // The last record is printed (processed). Leaving the loop alone would not count it
            // (the SDK cannot tell a break from a throw), so in a group commit past it by seeking.
            if (args.group !== undefined) {
              try {
                consumer.seek({ topic: m.topic, partition: m.partition, offset: m.offset + 1 });
              } catch {
                // Revoked meanwhile: the next owner reads it again (at least once).
              }
            }
            break;
          }
          if (pending.length >= 65_536 || consumer.prefetched.messages === 0) await write();
        }
      } finally {
        await write();
      }
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      await consumer.disconnect();
    }
  },
};

function toJson(m: ConsumedMessage): { partition: number; offset: number; key: string | null; value: string | null; timestamp: number } {
  return { partition: m.partition, offset: m.offset, key: text(m.key), value: text(m.value), timestamp: m.timestamp };
}
