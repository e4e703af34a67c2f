/**
 * `tributary produce TOPIC`: one record per stdin line.
 *
 * Each chunk stdin delivers becomes one send() of the complete lines in it, so an interactive
 * line goes out at once and a large file goes out in large batches. Memory stays bounded: at most
 * `SENDS_IN_FLIGHT_MAX` sends are outstanding (stdin is paused past it), and the producer's own
 * bufferBytesMax applies backpressure on top. With --report each acknowledged record is printed
 * as {"partition","offset","value"}, in input order.
 */
import type { CommandModule } from 'yargs';
import type { Acks, ProduceAck, RecordOffset } from '../../client/index.js';
import { UsageError } from '../usage-error.js';
import { clientFor, intFlag } from './topics.js';

const SENDS_IN_FLIGHT_MAX = 8;

interface ProduceArgs {
  topic: string;
  acks: string;
  key?: string;
  partition?: unknown;
  idempotent?: boolean;
  report: boolean;
  bootstrap?: string;
}

function acksFlag(value: string): Acks {
  switch (value) {
    case 'all':
    case '-1':
      return 'all';
    case '1':
      return 1;
    case '0':
      return 0;
    default:
      throw new UsageError(`--acks must be all, 1 or 0, got '${value}'`);
  }
}

export const produceCommand: CommandModule<object, ProduceArgs> = {
  command: 'produce <topic>',
  describe: 'send one record per stdin line',
  builder: (y) =>
    y
      .positional('topic', { type: 'string', describe: 'topic to write to' })
      .option('acks', { type: 'string', default: 'all', describe: 'all | 1 | 0' })
      .option('key', { type: 'string', describe: 'key of every record (picks the partition by murmur2, as Kafka does)' })
      .option('partition', { type: 'string', describe: 'write every record to this partition' })
      .option('idempotent', { type: 'boolean', describe: 'idempotent producer: retries are written once (the default with --acks all; --no-idempotent turns it off)' })
      .option('report', { type: 'boolean', default: false, describe: 'print {"partition","offset","value"} per acknowledged record' })
      .option('bootstrap', { type: 'string', describe: 'broker urls, comma-separated' }) as never,
  handler: async (args) => {
    if (typeof args.topic !== 'string' || args.topic === '') throw new UsageError('a TOPIC is required');
    const acks = acksFlag(args.acks);
    const partition = args.partition === undefined ? undefined : intFlag('partition', args.partition, 0, 0x7fffffff);
    if (args.idempotent && acks !== 'all') throw new UsageError('--idempotent needs --acks all');
    const key = args.key === undefined ? undefined : Buffer.from(args.key, 'utf8');
    const producer = clientFor(args.bootstrap).producer({ acks, ...(args.idempotent !== undefined ? { idempotent: args.idempotent } : {}) });
    await producer.connect();
    try {
      await pipeStdin(args.topic, producer, { key, partition, report: args.report });
    } finally {
      await producer.disconnect();
    }
  },
};

interface LineProducer {
  send(record: { topic: string; messages: Array<{ key?: Buffer; value: Buffer; partition?: number }> }): Promise<ProduceAck[]>;
  sendWithOffsets(record: { topic: string; messages: Array<{ key?: Buffer; value: Buffer; partition?: number }> }): Promise<{ acks: ProduceAck[]; records: RecordOffset[] }>;
}

function pipeStdin(topic: string, producer: LineProducer, options: { key: Buffer | undefined; partition: number | undefined; report: boolean }): Promise<void> {
  const input = process.stdin;
  return new Promise<void>((resolve, reject) => {
    let rest: Buffer = Buffer.alloc(0);
    let inFlight = 0;
    let ended = false;
    let failed = false;
    // Reports print in input order: each send's printing waits for the one before it.
    let printed: Promise<void> = Promise.resolve();

    const finishIfDone = () => {
      if (ended && inFlight === 0 && !failed) printed.then(resolve, reject);
    };

    const sendLines = (lines: Buffer[]) => {
      if (lines.length === 0) return;
      const messages = lines.map((value) => ({ value, ...(options.key === undefined ? {} : { key: options.key }), ...(options.partition === undefined ? {} : { partition: options.partition }) }));
      inFlight++;
      const sent: Promise<RecordOffset[] | undefined> = options.report
        ? producer.sendWithOffsets({ topic, messages }).then((r) => r.records)
        : producer.send({ topic, messages }).then(() => undefined);
      printed = printed.then(async () => {
        const records = await sent;
        if (records !== undefined) {
          let out = '';
          for (let i = 0; i < records.length; i++) {
            out += JSON.stringify({ partition: records[i]!.partition, offset: records[i]!.offset, value: lines[i]!.toString('utf8') }) + '\n';
          }
          if (!process.stdout.write(out)) await new Promise<void>((r) => process.stdout.once('drain', () => r()));
        }
      });
      printed.then(
        () => {
          inFlight--;
          if (inFlight < SENDS_IN_FLIGHT_MAX && !ended) input.resume();
          finishIfDone();
        },
        (error: unknown) => {
          if (failed) return;
          failed = true;
          input.pause();
          reject(error);
        },
      );
      if (inFlight >= SENDS_IN_FLIGHT_MAX) input.pause();
    };

    input.on('data', (chunk: Buffer) => {
      if (failed) return;
      const data = rest.length === 0 ? chunk : Buffer.concat([rest, chunk]);
      const lines: Buffer[] = [];
      let start = 0;
      for (let nl = data.indexOf(10, start); nl !== -1; nl = data.indexOf(10, start)) {
        const end = nl > start && data[nl - 1] === 13 ? nl - 1 : nl;
        // Copy: the chunk's memory is not kept alive by the records waiting to be acknowledged.
        lines.push(Buffer.from(data.subarray(start, end)));
        start = nl + 1;
      }
      rest = Buffer.from(data.subarray(start));
      sendLines(lines);
    });
    input.on('end', () => {
      ended = true;
      if (rest.length > 0 && !failed) sendLines([rest]);
      rest = Buffer.alloc(0);
      finishIfDone();
    });
    input.on('error', (error) => {
      if (failed) return;
      failed = true;
      reject(error);
    });
  });
}
