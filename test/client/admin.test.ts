import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tributary, TributaryError } from '../../client/index.js';
import { FakeCluster, clientFor } from './fake-broker.js';

test('admin: create, list, describe (partitions and configs), alter, delete; per-topic errors throw', async () => {
  const fake = await FakeCluster.start(3);
  const admin = clientFor(fake).admin();
  try {
    await admin.connect();
    await admin.createTopics([{ topic: 'orders', partitions: 3, replicationFactor: 3, config: { 'min.insync.replicas': '2' } }]);
    assert.deepEqual(await admin.listTopics(), ['orders']);
    const [d] = await admin.describeTopics(['orders']);
    assert.equal(d!.topic, 'orders');
    assert.equal(d!.partitions.length, 3);
    assert.deepEqual(d!.partitions[0], { partition: 0, leader: 1, leaderEpoch: 0, replicas: [1, 2, 3], isr: [1, 2, 3] });
    assert.equal(d!.config['min.insync.replicas'], '2');

    await admin.alterConfigs('orders', { 'retention.ms': '1000' });
    assert.equal((await admin.describeTopics(['orders']))[0]!.config['retention.ms'], '1000');

    await assert.rejects(admin.createTopics([{ topic: 'orders', partitions: 1, replicationFactor: 1 }]), (e: unknown) => {
      assert.ok(e instanceof TributaryError);
      assert.equal(e.code, 'TOPIC_ALREADY_EXISTS');
      assert.match(e.message, /orders/);
      return true;
    });
    await assert.rejects(admin.createTopics([{ topic: 'wide', partitions: 1, replicationFactor: 4 }]), /INVALID_REPLICATION_FACTOR/);
    await assert.rejects(admin.describeTopics(['missing']), /UNKNOWN_TOPIC_OR_PARTITION/);

    const cluster = await admin.describeCluster();
    assert.equal(cluster.controllerId, 1);
    assert.deepEqual(cluster.brokers.map((b) => b.id), [1, 2, 3]);
    assert.match(cluster.brokers[0]!.address, /^127\.0\.0\.1:\d+$/);

    await admin.deleteTopics(['orders']);
    assert.deepEqual(await admin.listTopics(), []);
    await assert.rejects(admin.deleteTopics(['orders']), /UNKNOWN_TOPIC_OR_PARTITION/);
  } finally {
    await admin.disconnect();
    await fake.close();
  }
});

test('config is checked up front with INVALID_CONFIG; no reachable broker is NETWORK_EXCEPTION naming the urls', async () => {
  assert.throws(() => new Tributary({ bootstrap: [] }), /INVALID_CONFIG: bootstrap/);
  assert.throws(() => new Tributary({ bootstrap: ['http://x:1'] }), /INVALID_CONFIG/);
  const t = new Tributary({ bootstrap: ['127.0.0.1:1'], retry: { retries: 1, initialRetryTimeMs: 5, maxRetryTimeMs: 10 } });
  assert.throws(() => t.producer({ acks: 2 as never }), /INVALID_CONFIG: acks/);
  assert.throws(() => t.producer({ idempotent: true, acks: 1 }), /INVALID_CONFIG/);
  assert.throws(() => t.consumer({ readFrom: 'nearest' as never }), /INVALID_CONFIG: readFrom/);
  const admin = t.admin();
  await assert.rejects(admin.connect(), (e: unknown) => e instanceof TributaryError && e.code === 'NETWORK_EXCEPTION' && /ws:\/\/127\.0\.0\.1:1/.test(e.message));
  await admin.disconnect();
  const producer = t.producer();
  await assert.rejects(producer.send({ topic: 't', messages: [{ value: 'x' }] }), /not connected/);
});

test('admin listGroups: a broker still loading groups (COORDINATOR_LOAD_IN_PROGRESS) is asked again; a lasting error throws', async () => {
  const fake = await FakeCluster.start(3);
  const admin = clientFor(fake).admin();
  try {
    await admin.connect();
    fake.coordinator.group('billing').offsets.set('orders\u00000', 5);
    fake.coordinator.listGroupsErrors.push('COORDINATOR_LOAD_IN_PROGRESS', 'COORDINATOR_LOAD_IN_PROGRESS');
    assert.deepEqual((await admin.listGroups()).map((g) => [g.groupId, g.coordinator]), [['billing', 1]]);
    assert.equal(fake.coordinator.listGroupsErrors.length, 0);
    // More failures than retry.retries (5 in clientFor): the error surfaces, typed.
    fake.coordinator.listGroupsErrors.push(...Array.from({ length: 10 }, () => 'COORDINATOR_LOAD_IN_PROGRESS' as const));
    await assert.rejects(admin.listGroups(), (e: unknown) => e instanceof TributaryError && e.code === 'COORDINATOR_LOAD_IN_PROGRESS');
    // A non-retriable error is not retried.
    fake.coordinator.listGroupsErrors.length = 0;
    fake.coordinator.listGroupsErrors.push('INVALID_REQUEST', 'INVALID_REQUEST');
    await assert.rejects(admin.listGroups(), /INVALID_REQUEST/);
    assert.equal(fake.coordinator.listGroupsErrors.length, 1);
  } finally {
    await admin.disconnect();
    await fake.close();
  }
});
