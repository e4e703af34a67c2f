/**
 * `tributary consume --group`, `groups list|describe|reset-offsets` against the fake cluster and
 * its fake coordinator, by spawning the real CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../../common/wait.js';
import { runCli } from './cli-run.js';
import { FakeCluster, clientFor } from './fake-broker.js';

const run = (args: string[]) => runCli(args);

test('CLI groups: consume --group resumes where the group left off; list, describe (lag), reset-offsets', async () => {
  const fake = await FakeCluster.start(2);
  const b = ['--bootstrap', fake.bootstrap.join(',')];
  try {
    fake.createTopic('orders', 2);
    const t = clientFor(fake);
    const producer = t.producer({ lingerMs: 0 });
    await producer.connect();
    for (let i = 0; i < 10; i++) await producer.send({ topic: 'orders', messages: [{ value: `v${i}`, partition: i % 2 }] });
    await producer.disconnect();

    const first = await run(['consume', 'orders', '--group', 'billing', '--from-beginning', '--max-messages', '6', '--json', ...b]);
    assert.equal(first.code, 0, first.stderr);
    const second = await run(['consume', 'orders', '--group', 'billing', '--from-beginning', '--max-messages', '4', '--json', ...b]);
    assert.equal(second.code, 0, second.stderr);
    const values = [...first.stdout.trim().split('\n'), ...second.stdout.trim().split('\n')].map((l) => (JSON.parse(l) as { value: string }).value);
    assert.deepEqual([...values].sort(), Array.from({ length: 10 }, (_, i) => `v${i}`).sort(), 'the second run starts where the first committed: nothing twice, nothing skipped');

    const list = await run(['groups', 'list', '--json', ...b]);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout), [{ groupId: 'billing', state: 'empty', members: 0, coordinator: 1 }]);

    const described = await run(['groups', 'describe', 'billing', '--json', ...b]);
    assert.equal(described.code, 0, described.stderr);
    const d = JSON.parse(described.stdout) as { state: string; members: unknown[]; offsets: Array<{ topic: string; partition: number; committedOffset: number; logEndOffset: number; lag: number }> };
    assert.equal(d.state, 'empty');
    assert.deepEqual(d.offsets.map((o) => [o.partition, o.committedOffset, o.logEndOffset, o.lag]), [[0, 5, 5, 0], [1, 5, 5, 0]]);

    const reset = await run(['groups', 'reset-offsets', 'billing', '--topic', 'orders', '--to-offset', '2', ...b]);
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /0→2 1→2/);
    const text = await run(['groups', 'describe', 'billing', ...b]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /orders-0\s+2\s+5\s+3/);

    // A member joins: the group is not empty, so a reset is refused and nothing changes.
    const consumer = t.consumer({ groupId: 'billing', maxWaitMs: 50 });
    await consumer.connect();
    await consumer.subscribe({ topics: ['orders'] });
    await waitFor('a member', () => fake.coordinator.group('billing').members.size === 1);
    const refused = await run(['groups', 'reset-offsets', 'billing', '--topic', 'orders', '--to-earliest', ...b]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^tributary: NON_EMPTY_GROUP: group billing has active members/);
    assert.equal(fake.coordinator.committed('billing', 'orders', 0), 2);
    const described2 = await run(['groups', 'describe', 'billing', '--json', ...b]);
    const d2 = JSON.parse(described2.stdout) as { members: Array<{ assignment: unknown[] }>; offsets: Array<{ owner: string | null }> };
    assert.equal(d2.members.length, 1);
    assert.equal(d2.members[0]!.assignment.length, 2);
    await consumer.disconnect();

    const earliest = await run(['groups', 'reset-offsets', 'billing', '--topic', 'orders', '--to-earliest', ...b]);
    assert.equal(earliest.code, 0, earliest.stderr);
    assert.equal(fake.coordinator.committed('billing', 'orders', 1), 0);

    const missing = await run(['groups', 'describe', 'nope', ...b]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^tributary: GROUP_ID_NOT_FOUND: /);
  } finally {
    await fake.close();
  }
});

test('CLI groups: bad usage is one line and exit 2', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['groups', 'reset-offsets', 'g', '--topic', 't'], /exactly one of --to-earliest, --to-latest, --to-offset/],
    [['groups', 'reset-offsets', 'g', '--topic', 't', '--to-earliest', '--to-offset', '3'], /exactly one of/],
    [['groups', 'reset-offsets', 'g', '--topic', 't', '--to-offset', '-3'], /--to-offset must be an integer >= 0/],
    [['groups', 'reset-offsets', 'g', '--to-latest'], /topic/],
    [['groups', 'describe'], /Not enough non-option arguments/],
    [['groups', 'list', '--bogus'], /bogus/],
    [['consume', 'x', '--group', 'g', '--partition', '1'], /--group and --partition do not mix/],
  ];
  for (const [args, pattern] of cases) {
    const r = await run([...args, '--bootstrap', 'ws://127.0.0.1:1']);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}, stderr ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^tributary: /);
    assert.match(r.stderr, pattern, args.join(' '));
  }
});
