/**
 * One consumer-group member as its own OS process, for the groups integration test (and usable by
 * hand): `node dist/test/integration/group-worker.js BOOTSTRAP GROUP TOPIC NAME`.
 *
 * Prints one JSON line per event on stdout, stamped with wall-clock ms (all workers run on one
 * machine, so their stamps compare):
 *   {"ev":"record","p":P,"o":O,"t":T}          a record processed (printed inside eachMessage,
 *                                              so before its offset can be committed)
 *   {"ev":"assigned"|"revoked","ps":[P..],"lost":B,"t":T}
 *   {"ev":"committed","offsets":[[P,O]..],"t":T}
 *   {"ev":"joined","member":ID,"t":T}, {"ev":"closed","t":T}
 * SIGTERM disconnects cleanly (commit, leave) and exits 0; SIGKILL is the crash case.
 */
import { Tributary } from '../../client/index.js';

const [bootstrap, groupId, topic, name] = process.argv.slice(2);
// `node --test dist/test/` runs every file under it, this one too, without arguments: nothing to do.
if (bootstrap === undefined && process.env.NODE_TEST_CONTEXT !== undefined) process.exit(0);
if (bootstrap === undefined || groupId === undefined || topic === undefined || name === undefined) {
  process.stderr.write('usage: group-worker BOOTSTRAP GROUP TOPIC NAME\n');
  process.exit(2);
}

const out = (line: object): void => void process.stdout.write(JSON.stringify({ ...line, t: Date.now() }) + '\n');

const client = new Tributary({ clientId: name, bootstrap: bootstrap.split(','), requestTimeoutMs: 10_000, connectTimeoutMs: 2000, retry: { retries: 10, initialRetryTimeMs: 50, maxRetryTimeMs: 250 } });
const consumer = client.consumer({ groupId, autoCommitIntervalMs: 200, maxWaitMs: 100 });
consumer.on('group.joined', (e) => out({ ev: 'joined', member: e.memberId }));
consumer.on('group.assigned', (e) => out({ ev: 'assigned', ps: e.partitions.map((p) => p.partition) }));
consumer.on('group.revoked', (e) => out({ ev: 'revoked', ps: e.partitions.map((p) => p.partition), lost: e.lost }));
consumer.on('group.committed', (e) => out({ ev: 'committed', offsets: e.offsets.map((o) => [o.partition, o.offset]) }));

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  void consumer.disconnect().then(() => {
    out({ ev: 'closed' });
    process.exit(0);
  });
});

await consumer.connect();
await consumer.subscribe({ topics: [topic], fromBeginning: true });
await consumer.run({ eachMessage: (m) => out({ ev: 'record', p: m.partition, o: m.offset }) });
