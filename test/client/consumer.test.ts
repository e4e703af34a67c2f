import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ConsumedMessage, Consumer } from '../../client/index.js';
import { waitFor } from '../../common/wait.js';
import { FakeCluster, clientFor } from './fake-broker.js';

async function withFake(brokers: number, fn: (fake: FakeCluster) => Promise<void>): Promise<void> {
  const fake = await FakeCluster.start(brokers);
  try {
    await fn(fake);
  } finally {
    await fake.close();
  }
}

async function take(consumer: Consumer, n: number): Promise<ConsumedMessage[]> {
  const out: ConsumedMessage[] = [];
  if (n === 0) return out;
  for await (const m of consumer) {
    out.push(m);
    if (out.length >= n) break;
  }
  return out;
}

test('subscribe fromBeginning reads every record back byte-exact, per partition in order', () =>
  withFake(1, async (fake) => {
    fake.createTopic('orders', 3);
    const t = clientFor(fake);
    const producer = t.producer({ acks: 'all', lingerMs: 2, compression: 'gzip' });
    await producer.connect();
    const sent = Array.from({ length: 300 }, (_, i) => ({
      key: i % 7 === 0 ? null : randomBytes(1 + (i % 5)),
      value: i % 11 === 0 ? null : randomBytes(i % 200),
      headers: { n: String(i), bin: randomBytes(3) },
    }));
    for (let i = 0; i < sent.length; i += 50) await producer.send({ topic: 'orders', messages: sent.slice(i, i + 50) });
    await producer.disconnect();

    const consumer = t.consumer({ groupId: 'billing', prefetchMessagesMax: 64 });
    await consumer.connect();
    await consumer.subscribe({ topics: ['orders'], fromBeginning: true });
    const got = await take(consumer, sent.length);
    const byN = new Map(got.map((m) => [Number(m.headers.n!.toString()), m]));
    assert.equal(byN.size, sent.length);
    for (const [i, s] of sent.entries()) {
      const m = byN.get(i)!;
      assert.deepEqual(m.key, s.key === null ? null : s.key);
      assert.deepEqual(m.value, s.value);
      assert.deepEqual(m.headers.bin, s.headers.bin);
      assert.equal(m.topic, 'orders');
      assert.ok(m.timestamp > 0);
    }
    for (let p = 0; p < 3; p++) {
      const offsets = got.filter((m) => m.partition === p).map((m) => m.offset);
      assert.deepEqual(offsets, offsets.map((_, i) => i), `partition ${p} in order from 0`);
    }
    assert.equal(consumer.groupId, 'billing');
    await consumer.disconnect();
  }));

test('subscribe without fromBeginning starts at the end; run() delivers until disconnect', () =>
  withFake(1, async (fake) => {
    fake.createTopic('late', 1);
    const t = clientFor(fake);
    const producer = t.producer({ lingerMs: 0 });
    await producer.connect();
    await producer.send({ topic: 'late', messages: [{ value: 'old' }] });
    const consumer = t.consumer({ maxWaitMs: 50 });
    await consumer.connect();
    await consumer.subscribe({ topics: ['late'] });
    const seen: string[] = [];
    let resolveSeen!: () => void;
    const gotTwo = new Promise<void>((r) => (resolveSeen = r));
    const running = consumer.run({
      eachMessage: async (m) => {
        seen.push(m.value!.toString());
        if (seen.length === 2) resolveSeen();
      },
    });
    // Wait until the consumer holds its starting position before producing.
    await waitFor('the starting position', () => consumer.positions()[0]!.position !== undefined);
    await producer.send({ topic: 'late', messages: [{ value: 'new1' }, { value: 'new2' }] });
    await gotTwo;
    await consumer.disconnect();
    await running;
    assert.deepEqual(seen, ['new1', 'new2']);
    await producer.disconnect();
  }));

test('assign from an offset, seek drops what was prefetched and continues from the new offset', () =>
  withFake(1, async (fake) => {
    fake.createTopic('seek', 2);
    const t = clientFor(fake);
    const producer = t.producer({ lingerMs: 0 });
    await producer.connect();
    await producer.send({ topic: 'seek', messages: Array.from({ length: 20 }, (_, i) => ({ value: `v${i}`, partition: 1 })) });
    const consumer = t.consumer();
    await consumer.connect();
    consumer.assign([{ topic: 'seek', partition: 1, offset: 5 }]);
    const first = await take(consumer, 3);
    assert.deepEqual(first.map((m) => m.offset), [5, 6, 7]);
    assert.deepEqual(first.map((m) => m.value!.toString()), ['v5', 'v6', 'v7']);
    consumer.seek({ topic: 'seek', partition: 1, offset: 2 });
    const after = await take(consumer, 2);
    assert.deepEqual(after.map((m) => m.offset), [2, 3]);
    assert.throws(() => consumer.seek({ topic: 'seek', partition: 0, offset: 1 }), /not assigned/);
    // Out of range: autoOffsetReset (earliest here) takes over.
    const resetting = t.consumer({ autoOffsetReset: 'earliest' });
    await resetting.connect();
    resetting.assign([{ topic: 'seek', partition: 1, offset: 1000 }]);
    assert.deepEqual((await take(resetting, 1)).map((m) => m.offset), [0]);
    await Promise.all([consumer.disconnect(), resetting.disconnect(), producer.disconnect()]);
  }));

test('the prefetch buffer never holds more than prefetchMessagesMax or prefetchBytesMax', () =>
  withFake(1, async (fake) => {
    fake.createTopic('big', 2);
    const t = clientFor(fake);
    const producer = t.producer({ lingerMs: 0, batchBytesMax: 4096 });
    await producer.connect();
    const value = 'p'.repeat(100);
    await producer.send({ topic: 'big', messages: Array.from({ length: 400 }, (_, i) => ({ value, partition: i % 2 })) });
    await producer.disconnect();

    const consumer = t.consumer({ prefetchMessagesMax: 10, prefetchBytesMax: 700 });
    await consumer.connect();
    await consumer.subscribe({ topics: ['big'], fromBeginning: true });
    let count = 0;
    for await (const m of consumer) {
      const now = consumer.prefetched;
      assert.ok(now.messages <= 10, `prefetched ${now.messages} messages`);
      assert.ok(now.bytes <= 700, `prefetched ${now.bytes} bytes`);
      assert.equal(m.value!.length, 100);
      count++;
      if (count === 400) break;
      if (count % 50 === 0) await new Promise((r) => setTimeout(r, 5)); // let fetches fill the buffer
    }
    assert.ok(consumer.prefetchedBytesHighWater <= 700);
    assert.ok(consumer.prefetchedBytesHighWater > 0);
    for (const f of fake.fetches) assert.ok(f.maxBytes <= 700 && f.partitionMaxBytes <= 700, `fetch asked for ${f.maxBytes}/${f.partitionMaxBytes}`);
    await consumer.disconnect();
  }));

test('follower read with minOffset: a follower that has not reached it (or is behind the position) sends us to the leader', () =>
  withFake(2, async (fake) => {
    fake.createTopic('ryw', 1, 2);
    const part = fake.partition('ryw', 0);
    assert.equal(part.leader, 1);
    const t = clientFor(fake);
    const producer = t.producer({ lingerMs: 0 });
    await producer.connect();
    const acks = await producer.send({ topic: 'ryw', messages: Array.from({ length: 10 }, (_, i) => ({ value: `r${i}` })) });
    const minOffset = acks[0]!.baseOffset + 10;
    part.followerEnd = 3; // broker 2 has replicated only offsets 0..2

    const consumer = t.consumer({ readFrom: 'follower', minOffset });
    await consumer.connect();
    consumer.assign([{ topic: 'ryw', partition: 0, offset: 0 }]);
    const got = await take(consumer, 10);
    assert.deepEqual(got.map((m) => m.value!.toString()), Array.from({ length: 10 }, (_, i) => `r${i}`));
    const fetches = fake.fetches.filter((f) => f.topic === 'ryw');
    assert.equal(fetches[0]!.brokerId, 2, 'first asked the follower');
    assert.equal(fetches[0]!.minOffset, minOffset);
    assert.ok(fetches.some((f) => f.brokerId === 1), 'then the leader');
    assert.equal(fetches.find((f) => f.brokerId === 1)!.minOffset, undefined);

    // A follower behind the position answers OFFSET_OUT_OF_RANGE: read from the leader, no reset.
    const behind = t.consumer({ readFrom: 'follower' });
    await behind.connect();
    behind.assign([{ topic: 'ryw', partition: 0, offset: 8 }]);
    assert.deepEqual((await take(behind, 2)).map((m) => m.offset), [8, 9]);
    await behind.disconnect();

    // A follower that has caught up serves the read itself.
    part.followerEnd = undefined;
    const fresh = t.consumer({ readFrom: 'follower' });
    await fresh.connect();
    fresh.assign([{ topic: 'ryw', partition: 0, offset: 0, minOffset }]);
    const before = fake.fetches.length;
    assert.equal((await take(fresh, 10)).length, 10);
    assert.ok(fake.fetches.slice(before).every((f) => f.brokerId === 2));
    await Promise.all([consumer.disconnect(), fresh.disconnect(), producer.disconnect()]);
  }));

test('FENCED_LEADER_EPOCH / NOT_LEADER after a leader move: the consumer refreshes metadata and follows', () =>
  withFake(2, async (fake) => {
    fake.createTopic('mv', 1, 2);
    const t = clientFor(fake);
    const producer = t.producer({ lingerMs: 0 });
    await producer.connect();
    await producer.send({ topic: 'mv', messages: [{ value: 'a' }] });
    const consumer = t.consumer({ maxWaitMs: 50 });
    await consumer.connect();
    await consumer.subscribe({ topics: ['mv'], fromBeginning: true });
    assert.deepEqual((await take(consumer, 1)).map((m) => m.value!.toString()), ['a']);
    fake.moveLeader('mv', 0, 2);
    fake.partition('mv', 0).isr = [2];
    await producer.send({ topic: 'mv', messages: [{ value: 'b' }] });
    assert.deepEqual((await take(consumer, 1)).map((m) => m.value!.toString()), ['b']);
    assert.equal(fake.fetches[fake.fetches.length - 1]!.brokerId, 2);
    await Promise.all([consumer.disconnect(), producer.disconnect()]);
  }));

test('subscribing to a topic that does not exist fails with UNKNOWN_TOPIC_OR_PARTITION', () =>
  withFake(1, async (fake) => {
    const consumer = clientFor(fake, { requestTimeoutMs: 300 }).consumer();
    await consumer.connect();
    await assert.rejects(consumer.subscribe({ topics: ['nope'] }), /UNKNOWN_TOPIC_OR_PARTITION/);
    await consumer.disconnect();
  }));
