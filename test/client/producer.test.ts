import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../../common/wait.js';
import { TributaryError } from '../../client/index.js';
import { partitionForKey } from '../../client/partitioner.js';
import { decodeBatchRecords, iterateBatches, readBatchHeader } from '../../protocol/record-batch.js';
import { FakeCluster, clientFor } from './fake-broker.js';

function values(log: Buffer): string[] {
  const out: string[] = [];
  for (const { pos } of iterateBatches(log)) for (const r of decodeBatchRecords(log, pos)) out.push(r.value?.toString() ?? 'null');
  return out;
}

async function withFake(brokers: number, fn: (fake: FakeCluster) => Promise<void>): Promise<void> {
  const fake = await FakeCluster.start(brokers);
  try {
    await fn(fake);
  } finally {
    await fake.close();
  }
}

test('send resolves with one ack per partition touched, keys placed by murmur2, offsets as the broker stamped', () =>
  withFake(1, async (fake) => {
    fake.createTopic('orders', 3);
    const producer = clientFor(fake).producer({ acks: 'all', lingerMs: 1 });
    await producer.connect();
    const keys = ['a', 'hello', 'kafka', 'foobar', 'a'];
    const acks = await producer.send({ topic: 'orders', messages: keys.map((k, i) => ({ key: k, value: `v${i}`, headers: { h: 'x' } })) });
    const expected = new Set(keys.map((k) => partitionForKey(Buffer.from(k), 3)));
    assert.deepEqual(new Set(acks.map((a) => a.partition)), expected);
    for (const a of acks) assert.equal(a.baseOffset, 0);
    assert.equal(acks.length, expected.size);
    // Both 'a' records went to the same partition, in order.
    const pa = partitionForKey(Buffer.from('a'), 3);
    const inA = values(fake.log('orders', pa));
    assert.deepEqual(inA.filter((v) => v === 'v0' || v === 'v4'), ['v0', 'v4']);
    const second = await producer.send({ topic: 'orders', messages: [{ key: 'a', value: 'again' }] });
    assert.deepEqual(second, [{ topic: 'orders', partition: pa, baseOffset: inA.length }]);
    const withOffsets = await producer.sendWithOffsets({ topic: 'orders', messages: [{ key: 'a', value: 'x' }, { key: 'kafka', value: 'y' }, { key: 'a', value: 'z' }] });
    assert.equal(partitionForKey(Buffer.from('kafka'), 3), pa); // both land on partition 1 of 3
    assert.deepEqual(withOffsets.records, [
      { partition: pa, offset: inA.length + 1 },
      { partition: pa, offset: inA.length + 2 },
      { partition: pa, offset: inA.length + 3 },
    ]);
    await producer.disconnect();
  }));

test('records sent within lingerMs share one batch; a full batch goes at once without waiting for linger', () =>
  withFake(1, async (fake) => {
    fake.createTopic('t', 1);
    const producer = clientFor(fake).producer({ acks: 1, lingerMs: 20 });
    await producer.connect();
    await Promise.all([0, 1, 2].map((i) => producer.send({ topic: 't', messages: [{ value: `m${i}` }] })));
    assert.equal(fake.produced.length, 1);
    assert.equal(fake.produced[0]!.header.recordCount, 3);
    assert.equal(fake.produced[0]!.acks, 1);

    const slow = clientFor(fake).producer({ acks: 1, lingerMs: 60_000, batchBytesMax: 1000 });
    await slow.connect();
    const value = 'x'.repeat(200); // ~216 bytes each with overhead: 4 fit in 1000 bytes, the 5th closes it
    const sends = [0, 1, 2, 3, 4, 5].map(() => slow.send({ topic: 't', messages: [{ value }] }));
    await Promise.all(sends.slice(0, 4)); // resolved long before the 60 s linger
    assert.equal(fake.produced.length, 2);
    assert.equal(fake.produced[1]!.header.recordCount, 4);
    let fifthDone = false;
    void sends[4]!.then(() => (fifthDone = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(fifthDone, false, 'the open batch waits for linger (or flush)');
    await slow.flush();
    assert.equal(fifthDone, true);
    assert.equal(fake.produced.length, 3);
    assert.equal(fake.produced[2]!.header.recordCount, 2);
    await Promise.all([producer.disconnect(), slow.disconnect()]);
  }));

test('a burst to a partition with room in flight goes as 128 KiB batches at once, the sticky partition unmoved; without room it gathers', () =>
  withFake(1, async (fake) => {
    fake.createTopic('burst', 4);
    const value = 'x'.repeat(1024);
    const messages = Array.from({ length: 300 }, () => ({ value })); // ~310 KiB with overhead
    const producer = clientFor(fake).producer({ acks: 1, lingerMs: 60_000 }); // batchBytesMax 1 MiB
    await producer.connect();
    const sent = producer.send({ topic: 'burst', messages });
    await waitFor('two 128 KiB batches sent without waiting for linger', () => fake.produced.length === 2);
    for (const p of fake.produced) {
      assert.ok(p.bytes >= 120 * 1024 && p.bytes < 140 * 1024, `a batch of ${p.bytes} bytes`);
    }
    await producer.flush(); // the rest lingers until then
    await sent;
    assert.equal(fake.produced.length, 3);
    assert.equal(fake.produced.reduce((n, p) => n + p.header.recordCount, 0), 300);
    assert.equal(new Set(fake.produced.map((p) => p.partition)).size, 1, 'not a full batch: the sticky partition stays');

    // With one batch allowed in flight, the second would have to wait: the records gather instead.
    const single = clientFor(fake).producer({ acks: 1, lingerMs: 60_000, maxInFlightPerPartition: 1 });
    await single.connect();
    const again = single.send({ topic: 'burst', messages: messages.map((m) => ({ ...m, partition: 0 })) });
    await waitFor('the first batch sent', () => fake.produced.length === 4);
    await single.flush();
    await again;
    assert.equal(fake.produced.length, 5);
    assert.ok(fake.produced[4]!.header.recordCount > 150, 'the rest went as one batch');

    // pipelineBatchBytes at batchBytesMax: the burst stays one batch until the linger (the flush).
    const whole = clientFor(fake).producer({ acks: 1, lingerMs: 60_000, pipelineBatchBytes: 1024 * 1024 });
    await whole.connect();
    const third = whole.send({ topic: 'burst', messages });
    await whole.flush();
    await third;
    assert.equal(fake.produced.length, 6);
    assert.equal(fake.produced[5]!.header.recordCount, 300);
    await Promise.all([producer.disconnect(), single.disconnect(), whole.disconnect()]);
  }));

/**
 * A connected acks=1 producer on a new topic with batchBytesMax 500 and a round-robin "random"
 * for the sticky partitioner, and a value of 116 bytes with overhead (4 fit in a batch).
 */
async function stickyProducer(fake: FakeCluster, topic: string, partitions: number, lingerMs: number) {
  fake.createTopic(topic, partitions);
  let r = 0;
  const producer = clientFor(fake).producer({ acks: 1, lingerMs, batchBytesMax: 500, random: (n) => r++ % n });
  await producer.connect();
  return { producer, value: 'v'.repeat(100) };
}

test('keyless records stick to one partition until its batch is full, then switch', () =>
  withFake(1, async (fake) => {
    const { producer, value } = await stickyProducer(fake, 's', 4, 60_000);
    const sent = producer.send({ topic: 's', messages: Array.from({ length: 12 }, () => ({ value })) });
    await waitFor('two full batches sent', () => fake.produced.length === 2);
    await producer.flush(); // the third is still lingering
    await sent;
    assert.equal(fake.produced.length, 3);
    for (const p of fake.produced) assert.equal(p.header.recordCount, 4);
    assert.notEqual(fake.produced[0]!.partition, fake.produced[1]!.partition);
    assert.notEqual(fake.produced[1]!.partition, fake.produced[2]!.partition);
    await producer.disconnect();
  }));

test('a batch closed by lingering does not move the sticky partition; batchBytesMax sent to it does (KIP-794)', () =>
  withFake(1, async (fake) => {
    const { producer, value } = await stickyProducer(fake, 'lg', 4, 0);
    const first = await producer.send({ topic: 'lg', messages: [{ value }] });
    const second = await producer.send({ topic: 'lg', messages: [{ value }] });
    const third = await producer.send({ topic: 'lg', messages: [{ value }] });
    assert.equal(fake.produced.length, 3, 'each send lingered out in its own batch');
    assert.equal(second[0]!.partition, first[0]!.partition);
    assert.equal(third[0]!.partition, first[0]!.partition);
    // 348 bytes so far; the fifth record reaches 580 >= 500: the sixth goes elsewhere.
    const fourth = await producer.send({ topic: 'lg', messages: [{ value }] });
    const fifth = await producer.send({ topic: 'lg', messages: [{ value }] });
    const sixth = await producer.send({ topic: 'lg', messages: [{ value }] });
    assert.equal(fourth[0]!.partition, first[0]!.partition);
    assert.equal(fifth[0]!.partition, first[0]!.partition);
    assert.notEqual(sixth[0]!.partition, first[0]!.partition);
    await producer.disconnect();
  }));

test('a record following the sticky partition to a part-filled batch never makes that batch exceed batchBytesMax', () =>
  withFake(1, async (fake) => {
    const { producer, value } = await stickyProducer(fake, 'ov', 2, 0);
    // One record lingers out alone on the first sticky partition; then nine in one send: four fill
    // the other partition's batch, the fifth moves back to the first, whose part-filled batch
    // (1 record) can take only three more.
    await producer.send({ topic: 'ov', messages: [{ value }] });
    await producer.send({ topic: 'ov', messages: Array.from({ length: 9 }, () => ({ value })) });
    await producer.flush();
    for (const p of fake.produced) assert.ok(p.header.recordCount <= 4, `a batch of ${p.header.recordCount} records (> 500 bytes) on partition ${p.partition}`);
    assert.equal(fake.produced.reduce((n, p) => n + p.header.recordCount, 0), 10);
    await producer.disconnect();
  }));

test('send waits while bufferBytesMax of records are unacknowledged, then proceeds in order', () =>
  withFake(1, async (fake) => {
    fake.createTopic('bp', 1);
    let release!: () => void;
    fake.produceGate = new Promise<void>((r) => (release = r));
    const producer = clientFor(fake).producer({ acks: 1, lingerMs: 0, batchBytesMax: 2048, bufferBytesMax: 2048 });
    await producer.connect();
    const value = 'b'.repeat(600); // 616 bytes each: three fit in 2048
    let resolved = 0;
    const sends = Array.from({ length: 10 }, (_, i) => producer.send({ topic: 'bp', messages: [{ value: `${i}:${value}` }] }).then((acks) => (resolved++, acks)));
    await waitFor('the first batch at the broker', () => fake.produced.length >= 1);
    await new Promise((r) => setImmediate(r));
    assert.ok(producer.bufferedBytesNow <= 2048, `buffered ${producer.bufferedBytesNow}`);
    const accepted = fake.produced.reduce((n, p) => n + p.header.recordCount, 0);
    assert.equal(accepted, 3, 'only what fits in the buffer was accepted');
    assert.equal(resolved, 0);
    release();
    fake.produceGate = undefined;
    const acks = await Promise.all(sends);
    assert.deepEqual(acks.map((a) => a[0]!.baseOffset), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(values(fake.log('bp', 0)).map((v) => v.split(':')[0]), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    assert.equal(producer.bufferedBytesNow, 0);
    await producer.disconnect();
  }));

test('NOT_LEADER_OR_FOLLOWER after the leader moved: metadata refresh, retry on the new leader with its epoch', () =>
  withFake(2, async (fake) => {
    fake.createTopic('moving', 1);
    assert.equal(fake.partition('moving', 0).leader, 1);
    const producer = clientFor(fake).producer({ acks: 'all', lingerMs: 0 });
    await producer.connect();
    assert.deepEqual(await producer.send({ topic: 'moving', messages: [{ value: 'one' }] }), [{ topic: 'moving', partition: 0, baseOffset: 0 }]);
    fake.moveLeader('moving', 0, 2);
    const metadataBefore = fake.metadataRequests.length;
    assert.deepEqual(await producer.send({ topic: 'moving', messages: [{ value: 'two' }] }), [{ topic: 'moving', partition: 0, baseOffset: 1 }]);
    // The retry may reach the old leader once more before the refreshed metadata arrives (the
    // backoff and metadataRefreshMinMs are both ~10 ms here); it ends on the new leader, with its epoch.
    const route = fake.produced.map((p) => `${p.brokerId}@${p.currentLeaderEpoch}`).join(' ');
    assert.match(route, /^1@0 (1@0 )+2@1$/, route);
    assert.ok(fake.metadataRequests.length > metadataBefore);
    assert.deepEqual(values(fake.log('moving', 0)), ['one', 'two']);
    await producer.disconnect();
  }));

test('a retriable error that persists fails the send after deliveryTimeoutMs with the broker message; a fatal one at once', () =>
  withFake(1, async (fake) => {
    fake.createTopic('orders', 1);
    const message = 'partition orders-0 has 1 in-sync replica, min.insync.replicas=2';
    fake.scriptProduceError('orders', 0, ...Array.from({ length: 10_000 }, () => ({ code: 'NOT_ENOUGH_REPLICAS' as const, message })));
    const producer = clientFor(fake).producer({ acks: 'all', lingerMs: 0, deliveryTimeoutMs: 300 });
    await producer.connect();
    await assert.rejects(producer.send({ topic: 'orders', messages: [{ value: 'x' }] }), (e: unknown) => {
      assert.ok(e instanceof TributaryError);
      assert.equal(e.code, 'NOT_ENOUGH_REPLICAS');
      assert.equal(e.message, `NOT_ENOUGH_REPLICAS: ${message}`);
      return true;
    });
    assert.ok(fake.produced.length > 1, 'it was retried');
    fake.produceErrors.clear();
    fake.scriptProduceError('orders', 0, { code: 'INVALID_REQUEST', message: 'records: bad' });
    const before = fake.produced.length;
    await assert.rejects(producer.send({ topic: 'orders', messages: [{ value: 'y' }] }), /INVALID_REQUEST: records: bad/);
    assert.equal(fake.produced.length, before + 1, 'not retried');
    await assert.rejects(producer.send({ topic: 'orders', messages: [{ value: 'z', partition: 7 }] }), /UNKNOWN_TOPIC_OR_PARTITION: partition 7 of topic orders/);
    await assert.rejects(producer.send({ topic: 'orders', messages: [] }), /INVALID_REQUEST/);
    await producer.disconnect();
  }));

test('the first send to a topic does not wait out metadataRefreshMinMs after connect() refreshed without it', { timeout: 30_000 }, () =>
  withFake(1, async (fake) => {
    fake.createTopic('t', 1);
    // connect() has just refreshed (brokers only); the send needs the topic: a new question,
    // asked at once. Before, it waited out the interval (here 10 min, so the test timed out).
    const producer = clientFor(fake, { metadataRefreshMinMs: 600_000 }).producer({ acks: 'all', lingerMs: 1 });
    await producer.connect();
    const acks = await producer.send({ topic: 't', messages: [{ value: 'first' }] });
    assert.deepEqual(acks, [{ topic: 't', partition: 0, baseOffset: 0 }]);
    await producer.disconnect();
  }));

test('acks=0 resolves once written to the socket, with baseOffset -1 and no reply awaited', () =>
  withFake(1, async (fake) => {
    fake.createTopic('fire', 2);
    fake.produceGate = new Promise<void>(() => undefined); // a reply would never come
    const producer = clientFor(fake).producer({ acks: 0, lingerMs: 0 });
    await producer.connect();
    const acks = await producer.send({ topic: 'fire', messages: [{ value: 'a', partition: 1 }] });
    assert.deepEqual(acks, [{ topic: 'fire', partition: 1, baseOffset: -1 }]);
    await waitFor('the record stored', () => fake.partition('fire', 1).logEndOffset === 1);
    assert.equal(fake.produced[0]!.acks, 0);
    await producer.disconnect();
  }));

test('idempotent: producer id, epoch and per-partition sequences stamped; retried batches land in order, once', () =>
  withFake(1, async (fake) => {
    fake.createTopic('idem', 2);
    fake.scriptProduceError('idem', 0, { code: 'NOT_ENOUGH_REPLICAS', message: 'not yet' });
    const producer = clientFor(fake).producer({ acks: 'all', idempotent: true, lingerMs: 0, batchBytesMax: 200 });
    await producer.connect();
    assert.deepEqual(producer.producerIdentity, { producerId: 1000, producerEpoch: 0 });
    const value = 'i'.repeat(150); // one record per batch: five batches in flight for partition 0
    const acks = await producer.send({ topic: 'idem', messages: Array.from({ length: 5 }, (_, i) => ({ value: `${i}${value}`, partition: 0 })) });
    assert.deepEqual(acks, [{ topic: 'idem', partition: 0, baseOffset: 0 }]);
    assert.deepEqual(values(fake.log('idem', 0)).map((v) => v[0]), ['0', '1', '2', '3', '4']);
    const first = fake.produced.filter((p) => p.partition === 0);
    assert.ok(first.length > 5, 'some batches were retried');
    for (const p of first) {
      assert.equal(p.header.producerId, 1000);
      assert.equal(p.header.producerEpoch, 0);
    }
    // Sequences: 0..4 first, the failed ones again from the first failure on, in order.
    assert.deepEqual(first.slice(0, 5).map((p) => p.header.baseSequence), [0, 1, 2, 3, 4]);
    const retried = first.slice(5).map((p) => p.header.baseSequence);
    assert.deepEqual(retried, [...retried].sort((a, b) => a - b));
    assert.equal(retried[0], 0);
    await producer.send({ topic: 'idem', messages: [{ value: 'a', partition: 1 }, { value: 'b', partition: 1 }] });
    await producer.send({ topic: 'idem', messages: [{ value: 'c', partition: 1 }] });
    assert.deepEqual(fake.produced.filter((p) => p.partition === 1).map((p) => p.header.baseSequence), [0, 2]);
    await producer.disconnect();

    fake.initProducerIdError = 'UNSUPPORTED_VERSION';
    const refused = clientFor(fake).producer({ idempotent: true });
    await assert.rejects(refused.connect(), (e: unknown) => e instanceof TributaryError && e.code === 'UNSUPPORTED_VERSION' && /InitProducerId/.test(e.message));
    await refused.disconnect();
  }));

test('idempotence is the default with acks all (off with acks 1 or 0 unless asked for, refused with them if asked for)', () =>
  withFake(1, async (fake) => {
    fake.createTopic('defaults', 1);
    const byDefault = clientFor(fake).producer({ lingerMs: 0 });
    await byDefault.connect();
    assert.deepEqual(byDefault.producerIdentity, { producerId: 1000, producerEpoch: 0 });
    await byDefault.send({ topic: 'defaults', messages: [{ value: 'a' }] });
    assert.deepEqual([fake.produced[0]!.header.producerId, fake.produced[0]!.header.producerEpoch, fake.produced[0]!.header.baseSequence], [1000, 0, 0]);
    await byDefault.disconnect();

    const leaderAcks = clientFor(fake).producer({ acks: 1, lingerMs: 0 });
    await leaderAcks.connect();
    assert.deepEqual(leaderAcks.producerIdentity, { producerId: -1, producerEpoch: -1 });
    await leaderAcks.send({ topic: 'defaults', messages: [{ value: 'b' }] });
    assert.equal(fake.produced[1]!.header.producerId, -1);
    await leaderAcks.disconnect();

    const optedOut = clientFor(fake).producer({ acks: 'all', idempotent: false, lingerMs: 0 });
    await optedOut.connect();
    await optedOut.send({ topic: 'defaults', messages: [{ value: 'c' }] });
    assert.equal(fake.produced[2]!.header.producerId, -1);
    await optedOut.disconnect();

    assert.throws(() => clientFor(fake).producer({ acks: 0, idempotent: true }), /INVALID_CONFIG/);
    // More than 5 in flight per partition is not idempotent-safe: by default that just turns it off.
    const wide = clientFor(fake).producer({ maxInFlightPerPartition: 8 });
    await wide.connect();
    assert.equal(wide.producerIdentity.producerId, -1);
    await wide.disconnect();
  }));

test('idempotent: a batch refused for good bumps the epoch; the batches behind it are re-stamped from sequence 0 and land in order, once; other partitions undisturbed', () =>
  withFake(1, async (fake) => {
    fake.createTopic('gap', 2);
    // The first Produce for partition 0 is refused with a non-retriable error (nothing written).
    fake.scriptProduceError('gap', 0, { code: 'MESSAGE_TOO_LARGE', message: 'batch over max.message.bytes' });
    const producer = clientFor(fake).producer({ lingerMs: 0, batchBytesMax: 200 });
    await producer.connect();
    const value = 'g'.repeat(150); // one record per batch
    const p0 = Array.from({ length: 5 }, (_, i) => producer.send({ topic: 'gap', messages: [{ value: `${i}${value}`, partition: 0 }] }));
    const p1 = Array.from({ length: 5 }, (_, i) => producer.send({ topic: 'gap', messages: [{ value: `${i}${value}`, partition: 1 }] }));
    const outcomes = await Promise.allSettled(p0);
    assert.equal(outcomes[0]!.status, 'rejected');
    assert.match(String((outcomes[0] as PromiseRejectedResult).reason), /MESSAGE_TOO_LARGE/);
    assert.deepEqual(outcomes.slice(1).map((o) => (o.status === 'fulfilled' ? o.value[0]!.baseOffset : String(o.reason))), [0, 1, 2, 3]);
    assert.deepEqual((await Promise.all(p1)).map((a) => a[0]!.baseOffset), [0, 1, 2, 3, 4]);
    assert.deepEqual(values(fake.log('gap', 0)).map((v) => v[0]), ['1', '2', '3', '4']);
    assert.deepEqual(values(fake.log('gap', 1)).map((v) => v[0]), ['0', '1', '2', '3', '4']);
    assert.deepEqual(producer.producerIdentity, { producerId: 1000, producerEpoch: 1 });
    // Partition 0's log: epoch 1, sequences 0..3.
    const written0 = fake.partition('gap', 0).batches.map((b) => readBatchHeader(b, 0));
    assert.deepEqual(written0.map((h) => [h.producerEpoch, h.baseSequence]), [[1, 0], [1, 1], [1, 2], [1, 3]]);
    // Partition 1 never saw the failure: it kept epoch 0 while busy.
    const written1 = fake.partition('gap', 1).batches.map((b) => readBatchHeader(b, 0));
    assert.deepEqual(written1.map((h) => [h.producerEpoch, h.baseSequence]), [[0, 0], [0, 1], [0, 2], [0, 3], [0, 4]]);
    // Next sends: partition 0 goes on in epoch 1; partition 1 (idle) moves to epoch 1 from 0.
    assert.deepEqual(await producer.send({ topic: 'gap', messages: [{ value: 'x', partition: 0 }] }), [{ topic: 'gap', partition: 0, baseOffset: 4 }]);
    assert.deepEqual(await producer.send({ topic: 'gap', messages: [{ value: 'y', partition: 1 }] }), [{ topic: 'gap', partition: 1, baseOffset: 5 }]);
    const last = fake.produced.slice(-2).map((p) => [p.partition, p.header.producerEpoch, p.header.baseSequence]);
    assert.deepEqual(last, [[0, 1, 4], [1, 1, 0]]);
    await producer.disconnect();
  }));

test('idempotent: a batch whose ack was lost is retried and deduplicated: written once, acked at its first offset', () =>
  withFake(1, async (fake) => {
    fake.createTopic('lost', 1);
    fake.loseProduceAcks = 1;
    const producer = clientFor(fake).producer({ lingerMs: 0, requestTimeoutMs: 200 });
    await producer.connect();
    const acks = await producer.send({ topic: 'lost', messages: [{ value: 'once' }, { value: 'twice?' }] });
    assert.deepEqual(acks, [{ topic: 'lost', partition: 0, baseOffset: 0 }]);
    assert.equal(fake.produced.length, 2, 'sent, then retried after the request timed out');
    assert.deepEqual(fake.produced.map((p) => p.header.baseSequence), [0, 0]);
    assert.deepEqual(values(fake.log('lost', 0)), ['once', 'twice?']);
    assert.deepEqual(await producer.send({ topic: 'lost', messages: [{ value: 'next' }] }), [{ topic: 'lost', partition: 0, baseOffset: 2 }]);
    assert.deepEqual(values(fake.log('lost', 0)), ['once', 'twice?', 'next']);
    await producer.disconnect();
  }));

test('idempotent: after a batch fails with an unknown outcome, the batch sent behind it is retried as it was: accepted (no gap, no bump) or refused out of order (then re-stamped under a new epoch)', () =>
  withFake(1, async (fake) => {
    // Batch 0 gets no answer within its delivery timeout (request 300 + 1000 ms > 1100 ms), so
    // whether it was written is unknown. Batch 1, sent 800 ms later, is answered only after
    // batch 0 failed, with a retriable error; its retry carries its original epoch and sequence.
    const value = 'u'.repeat(150);
    async function scenario(topic: string, batch0Written: boolean): Promise<{ acks: number; epoch: number }> {
      fake.createTopic(topic, 1);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      if (batch0Written) fake.loseProduceAcks = 1;
      else fake.scriptProduceError(topic, 0, { code: 'NOT_ENOUGH_REPLICAS', message: 'not written' });
      fake.produceGate = gate;
      const producer = clientFor(fake).producer({ lingerMs: 0, batchBytesMax: 200, requestTimeoutMs: 300, deliveryTimeoutMs: 1100 });
      await producer.connect();
      const first = producer.send({ topic, messages: [{ value: `0${value}` }] });
      await waitFor('batch 0 at the broker', () => fake.produced.some((p) => p.topic === topic));
      await new Promise((r) => setTimeout(r, 800));
      if (batch0Written) fake.scriptProduceError(topic, 0, { code: 'NOT_LEADER_OR_FOLLOWER', message: 'moving' });
      const second = producer.send({ topic, messages: [{ value: `1${value}` }] });
      await assert.rejects(first, /REQUEST_TIMED_OUT|NOT_ENOUGH_REPLICAS/);
      fake.produceGate = undefined;
      release();
      const acks = await second;
      const sent = fake.produced.filter((p) => p.topic === topic).map((p) => [p.header.producerEpoch, p.header.baseSequence]);
      await producer.disconnect();
      return { acks: acks[0]!.baseOffset, epoch: sent.length > 0 ? sent[sent.length - 1]![0]! : -1 };
    }
    // Batch 0 was written: batch 1 (epoch 0, sequence 1) is accepted as it was.
    assert.deepEqual(await scenario('written', true), { acks: 1, epoch: 0 });
    assert.deepEqual(values(fake.log('written', 0)).map((v) => v[0]), ['0', '1']);
    assert.deepEqual(fake.produced.filter((p) => p.topic === 'written').map((p) => p.header.baseSequence), [0, 1, 1]);
    // Batch 0 was not written: batch 1 as it was is out of order, so it is re-stamped (epoch 1, 0).
    assert.deepEqual(await scenario('unwritten', false), { acks: 0, epoch: 1 });
    assert.deepEqual(values(fake.log('unwritten', 0)).map((v) => v[0]), ['1']);
    assert.deepEqual(fake.produced.filter((p) => p.topic === 'unwritten').map((p) => [p.header.producerEpoch, p.header.baseSequence]), [[0, 0], [0, 1], [1, 0]]);
  }));
