/**
 * `tributary topics|produce|consume` against the fake cluster, by spawning the real CLI
 * (`node bin/tributary.js ...`). Spawned asynchronously: the fake brokers live in this process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from './cli-run.js';
import { FakeCluster } from './fake-broker.js';

const run = runCli;

test('CLI: topics create/list/describe/alter/delete, produce from stdin, consume --json', async () => {
  const fake = await FakeCluster.start(2);
  const b = ['--bootstrap', fake.bootstrap.join(',')];
  try {
    const created = await run(['topics', 'create', 'orders', '--partitions', '3', '--replication-factor', '2', '--config', 'min.insync.replicas=2', ...b]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /created topic orders/);

    const list = await run(['topics', 'list'], { env: { TRIBUTARY_BOOTSTRAP: fake.url(2) } });
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stdout, 'orders\n');

    const described = await run(['topics', 'describe', 'orders', '--json', ...b]);
    assert.equal(described.code, 0, described.stderr);
    const d = JSON.parse(described.stdout) as { partitions: Array<Record<string, unknown>>; config: Record<string, string> };
    assert.deepEqual(d.partitions[0], { topic: 'orders', partition: 0, leader: 1, leaderEpoch: 0, replicas: [1, 2], isr: [1, 2] });
    assert.equal(d.partitions.length, 3);
    assert.equal(d.config['min.insync.replicas'], '2');

    const again = await run(['topics', 'create', 'orders', '--partitions', '3', '--replication-factor', '2', ...b]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^tributary: TOPIC_ALREADY_EXISTS: .*orders.*\n$/);

    const lines = Array.from({ length: 500 }, (_, i) => `line-${i} ✓`);
    const produced = await run(['produce', 'orders', '--acks', 'all', '--report', ...b], { stdin: lines.join('\n') + '\n' });
    assert.equal(produced.code, 0, produced.stderr);
    const reports = produced.stdout.trim().split('\n').map((l) => JSON.parse(l) as { partition: number; offset: number; value: string });
    assert.deepEqual(reports.map((r) => r.value), lines);
    const perPartition = new Map<number, number[]>();
    for (const r of reports) perPartition.set(r.partition, [...(perPartition.get(r.partition) ?? []), r.offset]);
    let total = 0;
    for (const [p, offsets] of perPartition) {
      assert.deepEqual([...offsets].sort((x, y) => x - y), offsets.map((_, i) => i), `partition ${p} offsets dense from 0`);
      assert.equal(fake.partition('orders', p).logEndOffset, offsets.length);
      total += offsets.length;
    }
    assert.equal(total, 500);

    const keyed = await run(['produce', 'orders', '--key', 'kafka', '--report', ...b], { stdin: 'k1\nk2' });
    assert.equal(keyed.code, 0, keyed.stderr);
    assert.deepEqual(keyed.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { partition: number }).partition), [1, 1]); // murmur2("kafka") % 3
    // Idempotent by default (producer id stamped); --no-idempotent and --acks 1 turn it off.
    assert.ok(fake.produced.length > 0 && fake.produced.every((p) => p.header.producerId >= 0));
    const producedBefore = fake.produced.length;
    const plain = await run(['produce', 'orders', '--no-idempotent', '--partition', '0', ...b], { stdin: 'p1\n' });
    assert.equal(plain.code, 0, plain.stderr);
    const leaderOnly = await run(['produce', 'orders', '--acks', '1', '--partition', '0', ...b], { stdin: 'p2\n' });
    assert.equal(leaderOnly.code, 0, leaderOnly.stderr);
    assert.deepEqual(fake.produced.slice(producedBefore).map((p) => [p.acks, p.header.producerId]), [[-1, -1], [1, -1]]);

    const consumed = await run(['consume', 'orders', '--from-beginning', '--max-messages', '504', '--json', ...b]);
    assert.equal(consumed.code, 0, consumed.stderr);
    const records = consumed.stdout.trim().split('\n').map((l) => JSON.parse(l) as { partition: number; offset: number; key: string | null; value: string; timestamp: number });
    assert.equal(records.length, 504);
    assert.deepEqual(new Set(records.map((r) => r.value)), new Set([...lines, 'k1', 'k2', 'p1', 'p2']));
    assert.deepEqual(Object.keys(records[0]!).sort(), ['key', 'offset', 'partition', 'timestamp', 'value']);
    assert.ok(records.filter((r) => r.key === 'kafka').length === 2);

    const one = await run(['consume', 'orders', '--partition', '1', '--offset', '1', '--max-messages', '1', ...b]);
    assert.equal(one.code, 0, one.stderr);
    const second = records.find((r) => r.partition === 1 && r.offset === 1)!;
    assert.equal(one.stdout, `${second.value}\n`);

    const follower = await run(['consume', 'orders', '--from-beginning', '--read-from', 'follower', '--max-messages', '3', '--group', 'g1', ...b]);
    assert.equal(follower.code, 0, follower.stderr);
    assert.equal(follower.stdout.trim().split('\n').length, 3);

    const altered = await run(['topics', 'alter', 'orders', '--config', 'retention.ms=1000', ...b]);
    assert.equal(altered.code, 0, altered.stderr);
    assert.equal(fake.topics.get('orders')!.config['retention.ms'], '1000');

    const deleted = await run(['topics', 'delete', 'orders', ...b]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.equal(fake.topics.has('orders'), false);
    const missing = await run(['topics', 'describe', 'orders', ...b]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^tributary: UNKNOWN_TOPIC_OR_PARTITION: /);
  } finally {
    await fake.close();
  }
});

test('CLI: bad usage is one line on stderr and exit 2; an unreachable cluster one line and exit 1', async () => {
  const cases: Array<[string[], RegExp, number]> = [
    [['topics', 'create', 'x', '--partitions', 'abc', '--replication-factor', '1'], /--partitions must be an integer/, 2],
    [['topics', 'create', 'x', '--partitions', '3'], /replication-factor/, 2],
    [['topics', 'create', 'x', '--partitions', '3', '--replication-factor', '1', '--config', 'novalue'], /--config must be key=value/, 2],
    [['produce', 'x', '--acks', '2'], /--acks must be all, 1 or 0/, 2],
    [['produce', 'x', '--partition', '-1'], /--partition must be an integer/, 2],
    [['produce', 'x', '--idempotent', '--acks', '1'], /--idempotent needs --acks all/, 2],
    [['consume', 'x', '--read-from', 'nearest'], /--read-from must be leader or follower/, 2],
    [['consume', 'x', '--offset', '3'], /--offset needs --partition/, 2],
    [['consume', 'x', '--max-messages', '0'], /--max-messages must be an integer >= 1/, 2],
    [['consume', 'x', '--bogus'], /bogus/, 2],
    [['topics', 'list', '--bootstrap', 'http://nope:1'], /--bootstrap/, 2],
    [['topics', 'list'], /^tributary: NETWORK_EXCEPTION: no broker reachable .*127\.0\.0\.1:1/, 1],
  ];
  const results = await Promise.all(cases.map(([args]) => run(args, { env: { TRIBUTARY_BOOTSTRAP: 'ws://127.0.0.1:1' } })));
  for (const [i, [args, pattern, code]] of cases.entries()) {
    const r = results[i]!;
    assert.equal(r.code, code, `${args.join(' ')}: exit ${r.code}, stderr ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^tributary: /);
    assert.match(r.stderr, pattern, args.join(' '));
  }
});
