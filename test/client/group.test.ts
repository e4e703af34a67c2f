/**
 * Consumer groups in the SDK against the fake coordinator (fake-coordinator.ts): join and consume
 * from committed offsets, revoke → commit → ack ordering, fencing and rejoin, coordinator moves,
 * auto and manual commits, pause/resume, leave on disconnect, max poll interval.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConsumedMessage, Consumer, ConsumerOptions, Tributary } from '../../client/index.js';
import { waitFor } from '../../common/wait.js';
import { FakeCluster, clientFor } from './fake-broker.js';
import type { CoordinatorEvent } from './fake-coordinator.js';

async function withFake(brokers: number, fn: (fake: FakeCluster, t: Tributary) => Promise<void>): Promise<void> {
  const fake = await FakeCluster.start(brokers);
  try {
    await fn(fake, clientFor(fake));
  } finally {
    await fake.close();
  }
}

async function produce(t: Tributary, topic: string, partition: number, values: string[]): Promise<void> {
  const producer = t.producer({ lingerMs: 0 });
  await producer.connect();
  await producer.send({ topic, messages: values.map((value) => ({ value, partition })) });
  await producer.disconnect();
}

/** A consumer in a group, reading in the background into `seen` until stopped. */
class Reader {
  readonly seen: ConsumedMessage[] = [];
  readonly consumer: Consumer;
  private loop: Promise<void> | undefined;

  constructor(t: Tributary, options: ConsumerOptions) {
    this.consumer = t.consumer({ maxWaitMs: 50, ...options });
  }

  async start(topics: string[]): Promise<this> {
    await this.consumer.connect();
    await this.consumer.subscribe({ topics, fromBeginning: true });
    this.loop = this.consumer.run({ eachMessage: (m) => void this.seen.push(m) });
    return this;
  }

  values(partition?: number): string[] {
    return this.seen.filter((m) => partition === undefined || m.partition === partition).map((m) => m.value!.toString());
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect();
    await this.loop;
  }
}

function commitsOf(events: CoordinatorEvent[], memberId: string): Array<Extract<CoordinatorEvent, { api: 'commit' }>> {
  return events.filter((e): e is Extract<CoordinatorEvent, { api: 'commit' }> => e.api === 'commit' && e.memberId === memberId);
}

test('group: a member reads its partitions from the committed offsets (else by the reset policy), commits and leaves on disconnect', () =>
  withFake(1, async (fake, t) => {
    fake.createTopic('orders', 2);
    await produce(t, 'orders', 0, Array.from({ length: 10 }, (_, i) => `p0-${i}`));
    await produce(t, 'orders', 1, Array.from({ length: 10 }, (_, i) => `p1-${i}`));
    fake.coordinator.group('billing').offsets.set('orders\u00000', 6);

    const reader = await new Reader(t, { groupId: 'billing' }).start(['orders']);
    await waitFor('14 records', () => reader.seen.length >= 14);
    assert.deepEqual(reader.values(0), ['p0-6', 'p0-7', 'p0-8', 'p0-9']);
    assert.deepEqual(reader.values(1), Array.from({ length: 10 }, (_, i) => `p1-${i}`));
    const member = reader.consumer.groupMember()!;
    assert.match(member.memberId, /^member-/);
    assert.deepEqual(member.assignment, [{ topic: 'orders', partition: 0 }, { topic: 'orders', partition: 1 }]);

    await reader.stop();
    assert.equal(fake.coordinator.committed('billing', 'orders', 0), 10);
    assert.equal(fake.coordinator.committed('billing', 'orders', 1), 10);
    const leave = fake.coordinator.events.find((e) => e.api === 'heartbeat' && e.memberEpoch === -1);
    assert.equal(leave?.api === 'heartbeat' ? leave.memberId : undefined, member.memberId, 'left with epoch -1');
    assert.equal(fake.coordinator.group('billing').members.size, 0);
    assert.equal(reader.seen.length, 14, 'nothing delivered twice');
  }));

test('group: a revoked partition is committed before it is reported given back, and its new owner starts there', () =>
  withFake(1, async (fake, t) => {
    fake.createTopic('orders', 4);
    for (let p = 0; p < 4; p++) await produce(t, 'orders', p, Array.from({ length: 5 }, (_, i) => `p${p}-${i}`));
    const a = await new Reader(t, { groupId: 'g', autoCommitIntervalMs: 60_000 }).start(['orders']);
    await waitFor('A reads all 20', () => a.seen.length >= 20);
    const revoked: string[] = [];
    a.consumer.on('group.revoked', (e) => void revoked.push(...e.partitions.map((p) => `${p.topic}-${p.partition}`)));
    const memberA = a.consumer.groupMember()!.memberId;

    const b = await new Reader(t, { groupId: 'g' }).start(['orders']);
    await waitFor('B owns 2 partitions', () => b.consumer.groupMember()!.assignment.length === 2);
    await waitFor('A owns 2 partitions', () => a.consumer.groupMember()!.assignment.length === 2);
    assert.equal(revoked.length, 2);

    const events = fake.coordinator.events;
    for (const tp of revoked) {
      const commitAt = events.findIndex((e) => e.api === 'commit' && e.memberId === memberA && e.offsets.some((o) => o.tp === tp && o.offset === 5 && o.error === 'NONE'));
      const ackAt = events.findIndex((e, i) => i > commitAt && e.api === 'heartbeat' && e.memberId === memberA && e.owned !== null && !e.owned.includes(tp));
      const fetches = events.flatMap((e, i) => (e.api === 'fetch' && e.partitions.some((p) => p.tp === tp && p.offset === (i > commitAt ? 5 : -1)) ? [i] : []));
      assert.ok(commitAt >= 0, `A committed ${tp} at 5`);
      assert.ok(ackAt > commitAt, `A reported ${tp} given back after committing it`);
      assert.equal(fetches.length, 2, `${tp}: A's offset fetch when it joined, B's after the hand-over`);
      assert.ok(fetches[1]! > ackAt, `B fetched ${tp}'s offset (5) after A gave it back`);
    }
    // New records reach whoever owns each partition now; nothing is read twice.
    for (let p = 0; p < 4; p++) await produce(t, 'orders', p, [`p${p}-5`]);
    await waitFor('the 4 new records', () => a.seen.length + b.seen.length >= 24);
    const all = [...a.values(), ...b.values()];
    assert.equal(new Set(all).size, all.length, 'no record delivered twice');
    assert.equal(all.length, 24);
    assert.deepEqual(b.seen.map((m) => `${m.topic}-${m.partition}`).sort(), [...revoked].sort(), 'B read only the new record of each partition it took over');
    await Promise.all([a.stop(), b.stop()]);
  }));

test('group: a fenced member (UNKNOWN_MEMBER_ID) loses its partitions without committing, rejoins and resumes at the committed offsets', () =>
  withFake(1, async (fake, t) => {
    fake.createTopic('orders', 1);
    await produce(t, 'orders', 0, ['a', 'b', 'c']);
    const r = new Reader(t, { groupId: 'g', autoCommit: false });
    const lost: boolean[] = [];
    r.consumer.on('group.revoked', (e) => void lost.push(e.lost));
    let joins = 0;
    r.consumer.on('group.joined', () => void joins++);
    await r.start(['orders']);
    await waitFor('3 records', () => r.seen.length >= 3);
    await r.consumer.commitOffsets([{ topic: 'orders', partition: 0, offset: 2 }]);
    const first = r.consumer.groupMember()!.memberId;

    // The coordinator removes the member (as a session timeout would): its next heartbeat is refused.
    fake.coordinator.expel('g', first);
    await waitFor('a rejoin', () => joins >= 2 && r.consumer.groupMember()!.assignment.length === 1);
    assert.notEqual(r.consumer.groupMember()!.memberId, first);
    assert.deepEqual(lost, [true]);
    assert.equal(commitsOf(fake.coordinator.events, first).length, 1, 'only the manual commit: nothing committed when fenced');
    await waitFor('c read again from the committed offset 2', () => r.seen.length >= 4);
    assert.deepEqual(r.values(), ['a', 'b', 'c', 'c']);
    await r.stop();
  }));

test('group: NOT_COORDINATOR (the coordinator moved) → the member finds the new one and carries on', () =>
  withFake(2, async (fake, t) => {
    fake.createTopic('orders', 2);
    const r = await new Reader(t, { groupId: 'g', autoCommitIntervalMs: 50 }).start(['orders']);
    await waitFor('assigned', () => r.consumer.groupMember()!.assignment.length === 2);
    const memberId = r.consumer.groupMember()!.memberId;
    const finds = fake.coordinator.events.filter((e) => e.api === 'find').length;
    fake.coordinator.findCoordinatorErrors.push('COORDINATOR_NOT_AVAILABLE');
    fake.coordinator.coordinatorId = 2;
    await waitFor('FindCoordinator asked again', () => fake.coordinator.events.filter((e) => e.api === 'find').length >= finds + 2);
    await produce(t, 'orders', 1, ['x']);
    await waitFor('x read', () => r.values().includes('x'));
    await waitFor('x committed through the new coordinator', () => fake.coordinator.committed('g', 'orders', 1) === 1);
    assert.equal(r.consumer.groupMember()!.memberId, memberId, 'still the same member');
    await r.stop();
  }));

test('group: auto-commit commits processed positions on its interval; manual commits with autoCommit off', () =>
  withFake(1, async (fake, t) => {
    fake.createTopic('auto', 1);
    fake.createTopic('manual', 1);
    await produce(t, 'auto', 0, ['1', '2', '3']);
    await produce(t, 'manual', 0, ['1', '2', '3']);
    const auto = await new Reader(t, { groupId: 'ga', autoCommitIntervalMs: 50 }).start(['auto']);
    await waitFor('auto-commit of 3', () => fake.coordinator.committed('ga', 'auto', 0) === 3);

    const manual = new Reader(t, { groupId: 'gm', autoCommit: false });
    await manual.consumer.connect();
    await manual.consumer.subscribe({ topics: ['manual'], fromBeginning: true });
    const it = manual.consumer[Symbol.asyncIterator]();
    assert.equal((await it.next()).value?.offset, 0);
    assert.equal((await it.next()).value?.offset, 1);
    // Record 1 is still being processed (the next one was not asked for): commit up to it.
    await manual.consumer.commitOffsets();
    assert.equal(fake.coordinator.committed('gm', 'manual', 0), 1);
    await manual.consumer.commitOffsets([{ topic: 'manual', partition: 0, offset: 3 }]);
    assert.equal(fake.coordinator.committed('gm', 'manual', 0), 3);
    await it.next();
    await manual.consumer.disconnect();
    assert.equal(fake.coordinator.committed('gm', 'manual', 0), 3, 'autoCommit: false commits nothing on disconnect');
    assert.equal(commitsOf(fake.coordinator.events, '').length, 0);
    await auto.stop();
  }));

test('group: pause stops a partition (prefetched records are read again on resume); resume continues it', () =>
  withFake(1, async (fake, t) => {
    fake.createTopic('orders', 2);
    const r = await new Reader(t, { groupId: 'g' }).start(['orders']);
    await waitFor('assigned', () => r.consumer.groupMember()!.assignment.length === 2);
    r.consumer.pause([{ topic: 'orders', partitions: [0] }]);
    assert.deepEqual(r.consumer.pausedPartitions(), [{ topic: 'orders', partition: 0 }]);
    await produce(t, 'orders', 0, ['a0', 'b0']);
    await produce(t, 'orders', 1, ['a1']);
    await waitFor('a1', () => r.values(1).length === 1);
    // The fetch that brought a1 carried no partition 0: paused partitions are not fetched.
    const lastFetches = fake.fetches.slice(-3);
    assert.ok(lastFetches.every((f) => f.partition === 1), 'no fetch of partition 0 while paused');
    assert.deepEqual(r.values(0), []);
    r.consumer.resume([{ topic: 'orders' }]);
    await waitFor('partition 0 resumed', () => r.values(0).length === 2);
    assert.deepEqual(r.values(0), ['a0', 'b0']);
    await r.stop();
  }));

test('group: an application that stops polling for maxPollIntervalMs leaves the group, and rejoins when it polls again', () =>
  withFake(1, async (fake, t) => {
    fake.createTopic('orders', 1);
    await produce(t, 'orders', 0, ['a', 'b']);
    const consumer = t.consumer({ groupId: 'g', maxPollIntervalMs: 300, maxWaitMs: 50 });
    const events: string[] = [];
    consumer.on('group.left', (e) => void events.push(`left:${e.reason}`));
    consumer.on('group.joined', () => void events.push('joined'));
    await consumer.connect();
    await consumer.subscribe({ topics: ['orders'], fromBeginning: true });
    const it = consumer[Symbol.asyncIterator]();
    assert.equal((await it.next()).value?.value?.toString(), 'a');
    assert.equal((await it.next()).value?.value?.toString(), 'b');
    // 'b' is being processed, and processing takes too long:
    await waitFor('left for max poll interval', () => events.includes('left:max-poll-interval'), { timeoutMs: 5000 });
    assert.equal(fake.coordinator.group('g').members.size, 0);
    assert.equal(fake.coordinator.committed('g', 'orders', 0), 1, "a was committed on leaving; b was not processed");
    // Polling again rejoins; b comes back, since its processing never completed.
    assert.equal((await it.next()).value?.value?.toString(), 'b');
    assert.deepEqual(events, ['joined', 'left:max-poll-interval', 'joined']);
    await consumer.disconnect();
    assert.equal(fake.coordinator.committed('g', 'orders', 0), 1, 'b was handed out but its next() never came');
  }));

test('group: misuse is a typed error', () =>
  withFake(1, async (fake, t) => {
    fake.createTopic('orders', 1);
    assert.throws(() => t.consumer({ groupId: '' }), { code: 'INVALID_CONFIG' });
    assert.throws(() => t.consumer({ groupId: 'g', maxPollIntervalMs: 0 }), { code: 'INVALID_CONFIG' });
    assert.throws(() => t.consumer({ groupId: 'g', autoCommitIntervalMs: -5 }), { code: 'INVALID_CONFIG' });
    const plain = t.consumer();
    await plain.connect();
    await assert.rejects(plain.commitOffsets(), { code: 'INVALID_REQUEST' });
    assert.throws(() => plain.on('group.assigned', () => undefined), { code: 'INVALID_REQUEST' });
    await plain.disconnect();
    const c = t.consumer({ groupId: 'g' });
    await c.connect();
    await assert.rejects(c.commitOffsets(), { code: 'INVALID_REQUEST' }, 'not a member yet');
    await c.subscribe({ topics: ['orders'] });
    assert.throws(() => c.assign([{ topic: 'orders', partition: 0 }]), { code: 'INVALID_REQUEST' });
    assert.throws(() => c.seek({ topic: 'orders', partition: 7, offset: 0 }), { code: 'INVALID_REQUEST' });
    assert.throws(() => c.pause([{ topic: 'orders', partitions: [-1] }]), { code: 'INVALID_REQUEST' });
    await c.disconnect();
  }));

test('group: a revoke waits for the record being processed, then commits past it; the new owner does not see it again', () =>
  withFake(1, async (fake, t) => {
    fake.createTopic('orders', 2);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const a = t.consumer({ groupId: 'g', maxWaitMs: 50, autoCommitIntervalMs: 60_000 });
    const processing: string[] = [];
    const revokedAt: number[] = [];
    a.on('group.revoked', () => void revokedAt.push(fake.coordinator.events.length));
    await a.connect();
    await a.subscribe({ topics: ['orders'], fromBeginning: true });
    const running = a.run({
      eachMessage: async (m) => {
        processing.push(m.value!.toString());
        if (m.partition === 1) await gate;
      },
    });
    await waitFor('A owns both partitions', () => a.groupMember()!.assignment.length === 2);
    await produce(t, 'orders', 1, ['slow']);
    await waitFor('A is processing slow', () => processing.includes('slow'));

    // B joins (member-2): the round robin moves partition 1 to it.
    const b = new Reader(t, { groupId: 'g' });
    await b.start(['orders']);
    await waitFor('A was asked to give partition 1 back', () => revokedAt.length === 1);
    const memberA = a.groupMember()!.memberId;
    // Until the record in processing is done, nothing is committed and B does not get partition 1.
    await waitFor('several heartbeats of A meanwhile', () => fake.coordinator.events.filter((e, i) => i > revokedAt[0]! && e.api === 'heartbeat' && e.memberId === memberA).length >= 3);
    assert.equal(commitsOf(fake.coordinator.events, memberA).length, 0);
    assert.deepEqual(b.consumer.groupMember()!.assignment, []);

    release();
    await waitFor('B owns partition 1', () => b.consumer.groupMember()!.assignment.some((p) => p.partition === 1));
    assert.equal(fake.coordinator.committed('g', 'orders', 1), 1, 'A committed past the record it finished');
    await produce(t, 'orders', 1, ['next']);
    await waitFor('B reads next', () => b.values(1).includes('next'));
    assert.deepEqual(b.values(1), ['next'], 'B never saw slow');
    await a.disconnect();
    await running;
    await b.stop();
  }));

test('group: a group.revoked listener runs (and is awaited) before the revoked partitions are committed', () =>
  withFake(1, async (fake, t) => {
    fake.createTopic('orders', 2);
    await produce(t, 'orders', 1, ['x']);
    const a = await new Reader(t, { groupId: 'g', autoCommitIntervalMs: 60_000 }).start(['orders']);
    await waitFor('x read', () => a.values(1).includes('x'));
    const memberA = a.consumer.groupMember()!.memberId;
    const order: string[] = [];
    let finish!: () => void;
    a.consumer.on('group.revoked', async (e) => {
      order.push(`revoked ${e.partitions.map((p) => p.partition).join(',')} (commits so far: ${commitsOf(fake.coordinator.events, memberA).length})`);
      await new Promise<void>((resolve) => (finish = resolve));
      order.push('listener done');
    });
    a.consumer.on('group.committed', (e) => void order.push(`committed ${e.offsets.map((o) => `${o.partition}@${o.offset}`).join(',')}`));
    const b = await new Reader(t, { groupId: 'g' }).start(['orders']);
    await waitFor('the listener to start', () => order.length === 1);
    assert.equal(commitsOf(fake.coordinator.events, memberA).length, 0, 'nothing committed while the listener runs');
    finish();
    await waitFor('B owns partition 1', () => b.consumer.groupMember()!.assignment.some((p) => p.partition === 1));
    assert.deepEqual(order, ['revoked 1 (commits so far: 0)', 'listener done', 'committed 1@1']);
    await Promise.all([a.stop(), b.stop()]);
  }));

test('group: a throw out of a for-await loop does not commit the record that failed; the next member of the group gets it again', () =>
  withFake(1, async (fake, t) => {
    fake.createTopic('jobs', 1);
    await produce(t, 'jobs', 0, ['j0', 'j1', 'j2', 'j3']);
    const consumer = t.consumer({ groupId: 'workers', maxWaitMs: 50 });
    await consumer.connect();
    await consumer.subscribe({ topics: ['jobs'], fromBeginning: true });
    const done: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const m of consumer) {
          if (m.value!.toString() === 'j2') throw new Error('processing j2 failed');
          done.push(m.value!.toString());
        }
      })(),
      /processing j2 failed/,
    );
    assert.deepEqual(done, ['j0', 'j1']);
    await consumer.disconnect();
    assert.equal(fake.coordinator.committed('workers', 'jobs', 0), 2, 'committed up to j2 (the next to process), not past it');

    const next = await new Reader(t, { groupId: 'workers' }).start(['jobs']);
    await waitFor('j2 and j3 again', () => next.seen.length >= 2);
    assert.deepEqual(next.values(), ['j2', 'j3']);
    await next.stop();
  }));

test('group: a record whose eachMessage throws during a revoke is released at once: the revoke commits before it and the new owner gets it', () =>
  withFake(1, async (fake, t) => {
    fake.createTopic('orders', 2);
    let fail!: () => void;
    const gate = new Promise<void>((_, reject) => (fail = () => reject(new Error('slow failed'))));
    // maxPollIntervalMs 10 minutes: were the failed record still counted as in processing, the
    // revoke would wait that long and B would not get partition 1 within the test's time.
    const a = t.consumer({ groupId: 'g', maxWaitMs: 50, autoCommitIntervalMs: 60_000, maxPollIntervalMs: 600_000 });
    const processing: string[] = [];
    const revokedAt: number[] = [];
    a.on('group.revoked', () => void revokedAt.push(fake.coordinator.events.length));
    await a.connect();
    await a.subscribe({ topics: ['orders'], fromBeginning: true });
    const running = a.run({
      eachMessage: async (m) => {
        processing.push(m.value!.toString());
        if (m.value!.toString() === 'slow') await gate;
      },
    });
    await waitFor('A owns both partitions', () => a.groupMember()!.assignment.length === 2);
    await produce(t, 'orders', 1, ['ok', 'slow']);
    await waitFor('A is processing slow', () => processing.includes('slow'));
    const b = new Reader(t, { groupId: 'g' });
    await b.start(['orders']);
    await waitFor('A was asked to give partition 1 back', () => revokedAt.length === 1);
    const memberA = a.groupMember()!.memberId;
    await waitFor('a heartbeat of A after the revoke', () => fake.coordinator.events.some((e, i) => i > revokedAt[0]! && e.api === 'heartbeat' && e.memberId === memberA));

    fail();
    await assert.rejects(running, /slow failed/);
    await waitFor('B owns partition 1', () => b.consumer.groupMember()!.assignment.some((p) => p.partition === 1), { timeoutMs: 20_000 });
    assert.equal(fake.coordinator.committed('g', 'orders', 1), 1, 'A committed up to slow, not past it');
    await waitFor('B reads slow', () => b.values(1).includes('slow'));
    assert.deepEqual(b.values(1), ['slow'], 'B starts at the record that failed');
    await a.disconnect();
    await b.stop();
  }));
