/**
 * The group coordinator (issue 6, server side) with real processes: 3 controllers + 3 brokers,
 * driven by raw protocol requests (the SDK's group consumer is written elsewhere). Members here
 * are `RawMember`s: a heartbeat loop that keeps what it is given, and gives revoked partitions
 * back only when the test says so (or at once, with autoRevoke). After every assignment each
 * member checks that nothing it was just given is still held by another member.
 *
 * One story in order, sharing the cluster: FindCoordinator creates __consumer_offsets; two
 * members split a 4-partition topic, the second getting its share only after the first released
 * it; commits, fetches and lag; refused commits; a member leaving; the coordinator's broker killed
 * (-9) — the new coordinator has the offsets and the members, who carry on at their epochs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { waitFor } from '../../common/wait.js';
import type { Admin, Tributary } from '../../client/index.js';
import { fromWire, toWire, type TopicPartitionKey } from '../../broker/groups/topic-partitions.js';
import { OFFSETS_TOPIC, partitionForGroup } from '../../broker/groups/offsets-topic.js';
import { ApiKey } from '../../protocol/api-keys.js';
import { ERRORS, errorNameOf, TributaryError } from '../../protocol/errors.js';
import { buildBatch } from '../../protocol/record-batch.js';
import { ConnectionPool } from '../../protocol/transport/pool.js';
import type { RpcConnection } from '../../protocol/transport/connection.js';
import { Harness } from './harness.js';
import { describePartitions, startDataCluster, waitFullIsr, type DataCluster } from './data-path-helpers.js';
import { fetchMetrics, metricValue } from './failover-helpers.js';

const TEST_TIMEOUT_MS = 60_000;
const GROUP = 'billing';
const TOPIC = 'orders';
const COORDINATOR_ERRORS = new Set<number>([ERRORS.NOT_COORDINATOR.code, ERRORS.COORDINATOR_NOT_AVAILABLE.code, ERRORS.COORDINATOR_LOAD_IN_PROGRESS.code]);

let harness: Harness;
let cluster: DataCluster;
let client: Tributary;
let admin: Admin;
let pool: ConnectionPool;
const killed = new Set<number>();

async function withDiagnostics(t: TestContext, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    const text = cluster === undefined ? `temp dir ${harness?.root}` : cluster.diagnostics(25);
    for (const line of text.split('\n')) t.diagnostic(line);
    throw error;
  }
}

async function anyBroker(): Promise<RpcConnection> {
  for (const id of cluster.brokerIds) {
    if (killed.has(id)) continue;
    try {
      return await pool.get(cluster.broker(id).url);
    } catch {
      // try the next one
    }
  }
  throw new Error('no broker reachable');
}

/** FindCoordinator through any live broker: { nodeId, url } or the error name. */
async function findCoordinator(groupId: string): Promise<{ nodeId: number; url: string } | { error: string }> {
  const r = await (await anyBroker()).request(ApiKey.FindCoordinator, { keyType: 0, keys: [groupId] });
  const c = r.coordinators[0]!;
  return c.errorCode === 0 ? { nodeId: c.nodeId, url: c.url } : { error: errorNameOf(c.errorCode) };
}

async function coordinator(groupId = GROUP): Promise<{ nodeId: number; conn: RpcConnection }> {
  return waitFor(`a coordinator for ${groupId}`, async () => {
    const found = await findCoordinator(groupId);
    if ('error' in found) return undefined;
    return { nodeId: found.nodeId, conn: await pool.get(found.url) };
  }, { timeoutMs: 20_000, intervalMs: 100 });
}

/** A group member speaking ConsumerGroupHeartbeat directly. */
class RawMember {
  memberId = '';
  epoch = 0;
  readonly owned = new Set<TopicPartitionKey>();
  /** Taken away by the coordinator, not yet given back. */
  readonly revoked = new Set<TopicPartitionKey>();
  fenced = 0;
  okHeartbeats = 0;
  /** The coordinator of the last successful heartbeat. */
  lastCoordinator = -1;
  private connectedTo = -1;
  readonly violations: string[] = [];
  private conn: RpcConnection | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private stopped = false;

  constructor(
    readonly name: string,
    private readonly everyone: RawMember[],
    /** Give revoked partitions back at once (else only on release()). */
    public autoRevoke: boolean,
  ) {
    everyone.push(this);
  }

  start(): void {
    const loop = () => {
      if (this.stopped) return;
      void this.heartbeat().finally(() => {
        if (!this.stopped) this.timer = setTimeout(loop, 150);
      });
    };
    loop();
  }

  /** One heartbeat (joined with one already in flight). */
  heartbeat(): Promise<void> {
    this.inFlight ??= this.heartbeatNow().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async heartbeatNow(): Promise<void> {
    try {
      if (this.conn === undefined || this.conn.isClosed) {
        const c = await findCoordinator(GROUP);
        if ('error' in c) return;
        this.conn = await pool.get(c.url);
        this.connectedTo = c.nodeId;
      }
      const r = await this.conn.request(ApiKey.ConsumerGroupHeartbeat, {
        groupId: GROUP,
        memberId: this.memberId,
        memberEpoch: this.epoch,
        clientId: this.name,
        rebalanceTimeoutMs: 60_000,
        subscribedTopicNames: this.epoch === 0 ? [TOPIC] : null,
        ownedPartitions: toWire(this.owned),
      }, { timeoutMs: 5000 });
      if (COORDINATOR_ERRORS.has(r.errorCode)) {
        this.conn = undefined;
        return;
      }
      if (r.errorCode === ERRORS.UNKNOWN_MEMBER_ID.code || r.errorCode === ERRORS.ILLEGAL_GENERATION.code) {
        this.fenced++;
        this.owned.clear();
        this.revoked.clear();
        this.epoch = 0;
        if (r.errorCode === ERRORS.UNKNOWN_MEMBER_ID.code) this.memberId = '';
        return;
      }
      if (r.errorCode !== 0) throw TributaryError.fromWire(r.errorCode, r.errorMessage ?? undefined);
      this.okHeartbeats++;
      this.lastCoordinator = this.connectedTo;
      this.memberId = r.memberId ?? this.memberId;
      this.epoch = r.memberEpoch;
      if (r.assignment !== null) {
        const assigned = fromWire(r.assignment.topicPartitions);
        for (const k of this.owned) if (!assigned.has(k)) this.revoked.add(k);
        for (const k of assigned) {
          if (!this.owned.has(k)) {
            for (const other of this.everyone) {
              if (other !== this && !other.stopped && other.owned.has(k)) this.violations.push(`${this.name} got ${k} while ${other.name} still owns it`);
            }
          }
          this.owned.add(k);
          this.revoked.delete(k);
        }
        if (this.autoRevoke) this.release();
      }
    } catch (error) {
      if (error instanceof TributaryError && (error.code === 'NETWORK_EXCEPTION' || error.code === 'REQUEST_TIMED_OUT')) {
        this.conn = undefined;
        return;
      }
      this.violations.push(`${this.name}: ${String(error)}`);
    }
  }

  /** Give back what was revoked (as a consumer does after committing). */
  release(): void {
    for (const k of this.revoked) this.owned.delete(k);
    this.revoked.clear();
  }

  /** A stable member: owns `n` partitions and has nothing to give back. */
  async waitOwns(n: number): Promise<void> {
    await waitFor(`${this.name} owning ${n} partitions (owns ${[...this.owned]})`, () => this.owned.size === n && this.revoked.size === 0, { timeoutMs: 20_000 });
  }

  async leave(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.inFlight;
    const { conn } = await coordinator();
    const r = await conn.request(ApiKey.ConsumerGroupHeartbeat, { groupId: GROUP, memberId: this.memberId, memberEpoch: -1, clientId: this.name, rebalanceTimeoutMs: -1, subscribedTopicNames: null, ownedPartitions: null });
    assert.equal(r.errorCode, 0, `leave: ${r.errorMessage}`);
    this.owned.clear();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

const members: RawMember[] = [];

async function commit(memberId: string, memberEpoch: number, offsets: Array<[number, number]>): Promise<Map<number, string>> {
  const { conn } = await coordinator();
  const r = await conn.request(ApiKey.OffsetCommit, {
    groupId: GROUP,
    memberId,
    memberEpoch,
    topics: [{ name: TOPIC, partitions: offsets.map(([p, o]) => ({ partitionIndex: p, committedOffset: o, committedLeaderEpoch: -1, committedMetadata: null })) }],
  });
  return new Map(r.topics[0]!.partitions.map((p) => [p.partitionIndex, p.errorCode === 0 ? 'ok' : errorNameOf(p.errorCode)]));
}

async function fetchOffsets(): Promise<Map<number, number>> {
  return waitFor('OffsetFetch from the coordinator', async () => {
    const { conn } = await coordinator();
    const r = await conn.request(ApiKey.OffsetFetch, { groupId: GROUP, topics: null });
    if (r.errorCode !== 0) return undefined;
    return new Map((r.topics.find((t) => t.name === TOPIC)?.partitions ?? []).map((p) => [p.partitionIndex, p.committedOffset]));
  }, { timeoutMs: 20_000 });
}

function partitionsOf(m: RawMember): number[] {
  return [...m.owned].map((k) => Number(k.slice(TOPIC.length + 1))).sort((a, b) => a - b);
}

describe('group coordinator with real processes', { timeout: 4 * TEST_TIMEOUT_MS }, () => {
  before(async () => {
    harness = new Harness('groups');
    cluster = await startDataCluster(harness, {
      brokers: 3,
      brokerProperties: {
        'offsets.topic.num.partitions': '4',
        'group.consumer.heartbeat.interval.ms': '200',
        // Long enough that a loaded machine never expires a member between test steps.
        'group.consumer.session.timeout.ms': '20000',
        'group.lag.refresh.interval.ms': '300',
      },
    });
    client = cluster.client('it-groups');
    admin = client.admin();
    await admin.connect();
    pool = new ConnectionPool({ clientId: 'it-groups', connectTimeoutMs: 2000, requestTimeoutMs: 10_000 });
    harness.track({ close: () => pool.closeAll() });
    await admin.createTopics([{ topic: TOPIC, partitions: 4, replicationFactor: 3, config: { 'min.insync.replicas': '2' } }]);
    await waitFullIsr(admin, TOPIC);
  });

  after(async () => {
    for (const m of members) m.stop();
    await admin?.disconnect().catch(() => undefined);
    await harness?.cleanup();
  });

  test('FindCoordinator creates __consumer_offsets (compacted, RF 3, min ISR 2) and names the leader of the group\'s partition', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      const first = await findCoordinator(GROUP);
      if ('error' in first) assert.equal(first.error, 'COORDINATOR_NOT_AVAILABLE');
      const { nodeId } = await coordinator();
      const partitions = await waitFullIsr(admin, OFFSETS_TOPIC);
      assert.equal(partitions.length, 4);
      for (const p of partitions) assert.equal(p.replicas.length, 3);
      assert.equal(partitions[partitionForGroup(GROUP, 4)]!.leader, nodeId);
      const configs = await (await anyBroker()).request(ApiKey.DescribeConfigs, { resources: [{ resourceType: 2, resourceName: OFFSETS_TOPIC, configurationKeys: ['cleanup.policy', 'min.insync.replicas'] }] });
      const values = new Map(configs.results[0]!.configs.map((c) => [c.name, c.value]));
      assert.equal(values.get('cleanup.policy'), 'compact');
      assert.equal(values.get('min.insync.replicas'), '2');
      // Clients cannot write into it or delete it.
      const produce = (await anyBroker()).request(ApiKey.Produce, { transactionalId: null, acks: -1, timeoutMs: 5000, topicData: [{ name: OFFSETS_TOPIC, partitionData: [{ index: 0, currentLeaderEpoch: -1, records: buildBatch({ records: [{ key: Buffer.from('k'), value: Buffer.from('v') }], firstTimestamp: Date.now() }) }] }] });
      await assert.rejects(produce, (e: unknown) => e instanceof TributaryError && e.code === 'INVALID_TOPIC_EXCEPTION');
      await assert.rejects(admin.deleteTopics([OFFSETS_TOPIC]), (e: unknown) => e instanceof TributaryError && e.code === 'INVALID_TOPIC_EXCEPTION');
      // Group ids are checked.
      const bad = await (await anyBroker()).request(ApiKey.FindCoordinator, { keyType: 0, keys: [''] });
      assert.equal(bad.coordinators[0]!.errorCode, ERRORS.INVALID_GROUP_ID.code);
    });
  });

  test('two members split the topic with no overlap; the second gets its share only after the first released it', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      const a = new RawMember('a', members, false);
      a.start();
      await a.waitOwns(4);
      const epochAlone = a.epoch;
      const b = new RawMember('b', members, true);
      b.start();
      // a is told to give two partitions back; while it holds them b gets nothing.
      await waitFor('a asked to revoke two partitions', () => a.revoked.size === 2, { timeoutMs: 20_000 });
      assert.equal(a.epoch, epochAlone, 'a keeps its epoch until it acknowledges');
      const heartbeatsBefore = b.okHeartbeats;
      await waitFor('b heartbeating meanwhile', () => b.okHeartbeats >= heartbeatsBefore + 3, { timeoutMs: 20_000 });
      assert.equal(b.owned.size, 0, 'b owns nothing while a still holds the revoked partitions');
      assert.equal(a.owned.size, 4);
      a.release();
      await a.waitOwns(2);
      await b.waitOwns(2);
      assert.deepEqual([...partitionsOf(a), ...partitionsOf(b)].sort(), [0, 1, 2, 3]);
      assert.ok(a.epoch > epochAlone);
      assert.deepEqual(members.flatMap((m) => m.violations), []);
      const { conn } = await coordinator();
      const d = await conn.request(ApiKey.ConsumerGroupDescribe, { groupIds: [GROUP] });
      const g = d.groups[0]!;
      assert.equal(g.errorCode, 0);
      await waitFor('the group stable', async () => (await conn.request(ApiKey.ConsumerGroupDescribe, { groupIds: [GROUP] })).groups[0]!.groupState === 'stable');
      assert.equal(g.members.length, 2);
      assert.equal(g.groupEpoch, g.assignmentEpoch);
      const listed = await conn.request(ApiKey.ListGroups, { statesFilter: [] });
      assert.deepEqual(listed.groups.filter((x) => x.groupId === GROUP).map((x) => x.members), [2]);
    });
  });

  test('commits by owners are stored and fetched, with lag; a non-owner and an admin commit to a live group are refused', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      const [a, b] = members as [RawMember, RawMember];
      const producer = client.producer({ acks: 'all' });
      await producer.connect();
      for (let p = 0; p < 4; p++) await producer.send({ topic: TOPIC, messages: Array.from({ length: 5 + p }, (_, i) => ({ value: `v${i}`, partition: p })) });
      await producer.disconnect();
      const aParts = partitionsOf(a);
      const bParts = partitionsOf(b);
      assert.deepEqual(await commit(a.memberId, a.epoch, aParts.map((p) => [p, 2 + p])), new Map(aParts.map((p) => [p, 'ok'])));
      assert.deepEqual(await commit(b.memberId, b.epoch, bParts.map((p) => [p, 3 + p])), new Map(bParts.map((p) => [p, 'ok'])));
      // b committing a's partition: refused, and nothing changes.
      assert.deepEqual(await commit(b.memberId, b.epoch, [[aParts[0]!, 99]]), new Map([[aParts[0]!, 'ILLEGAL_GENERATION']]));
      assert.deepEqual(await commit('no-such-member', 1, [[0, 99]]), new Map([[0, 'UNKNOWN_MEMBER_ID']]));
      assert.deepEqual(await commit('', -1, [[0, 99]]), new Map([[0, 'NON_EMPTY_GROUP']]));
      const want = new Map([...aParts.map((p) => [p, 2 + p] as const), ...bParts.map((p) => [p, 3 + p] as const)]);
      assert.deepEqual(await fetchOffsets(), want);
      // Describe: committed offset, high watermark (5 + p records in partition p) and lag.
      const { conn, nodeId } = await coordinator();
      const d = (await conn.request(ApiKey.ConsumerGroupDescribe, { groupIds: [GROUP] })).groups[0]!;
      for (const o of d.offsets) {
        assert.equal(o.committedOffset, want.get(o.partition));
        assert.equal(o.logEndOffset, 5 + o.partition, `partition ${o.partition} log end offset`);
        assert.equal(o.lag, 5 + o.partition - want.get(o.partition)!);
      }
      assert.equal(d.offsets.length, 4);
      // The coordinator exports the same lag.
      const broker = cluster.broker(nodeId);
      await waitFor('lag metrics', async () => {
        const text = await fetchMetrics(broker.host, broker.port);
        return metricValue(text, 'tributary_group_members', { group: GROUP }) === 2 && metricValue(text, 'tributary_group_lag', { group: GROUP, topic: TOPIC, partition: '3' }) === 8 - want.get(3)!;
      }, { timeoutMs: 20_000 });
    });
  });

  test('a member leaving frees its partitions for the other', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      const [a, b] = members as [RawMember, RawMember];
      a.release();
      await b.leave();
      await a.waitOwns(4);
      assert.deepEqual(members.flatMap((m) => m.violations), []);
      // b's id is gone.
      const { conn } = await coordinator();
      const r = await conn.request(ApiKey.ConsumerGroupHeartbeat, { groupId: GROUP, memberId: b.memberId, memberEpoch: b.epoch, clientId: 'b', rebalanceTimeoutMs: -1, subscribedTopicNames: null, ownedPartitions: [] });
      assert.equal(r.errorCode, ERRORS.UNKNOWN_MEMBER_ID.code);
      // A member sending an epoch it never had is ILLEGAL_GENERATION, and is fenced: its next
      // heartbeat is UNKNOWN_MEMBER_ID, and a keeps (or gets back) everything.
      a.autoRevoke = true;
      const join = await conn.request(ApiKey.ConsumerGroupHeartbeat, { groupId: GROUP, memberId: '', memberEpoch: 0, clientId: 'd', rebalanceTimeoutMs: 60_000, subscribedTopicNames: [TOPIC], ownedPartitions: [] });
      assert.equal(join.errorCode, 0);
      const stale = await conn.request(ApiKey.ConsumerGroupHeartbeat, { groupId: GROUP, memberId: join.memberId!, memberEpoch: join.memberEpoch + 5, clientId: 'd', rebalanceTimeoutMs: -1, subscribedTopicNames: null, ownedPartitions: null });
      assert.equal(stale.errorCode, ERRORS.ILLEGAL_GENERATION.code);
      const gone = await conn.request(ApiKey.ConsumerGroupHeartbeat, { groupId: GROUP, memberId: join.memberId!, memberEpoch: join.memberEpoch, clientId: 'd', rebalanceTimeoutMs: -1, subscribedTopicNames: null, ownedPartitions: [] });
      assert.equal(gone.errorCode, ERRORS.UNKNOWN_MEMBER_ID.code);
      await a.waitOwns(4);
      assert.deepEqual(members.flatMap((m) => m.violations), []);
    });
  });

  test('kill -9 the coordinator: FindCoordinator names the new leader, which has the offsets and the members at their epochs', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withDiagnostics(t, async () => {
      const a = members[0]!;
      a.autoRevoke = true;
      const c = new RawMember('c', members, true);
      c.start();
      await waitFor('a and c sharing the topic', () => a.owned.size + c.owned.size === 4 && c.owned.size === 2 && a.revoked.size === 0 && c.revoked.size === 0, { timeoutMs: 20_000 });
      const before = await fetchOffsets();
      const { nodeId: old } = await coordinator();
      const ids = { a: a.memberId, c: c.memberId };
      const epochs = { a: a.epoch, c: c.epoch };
      const fencedBefore = a.fenced + c.fenced;
      await cluster.kill(old);
      killed.add(old);
      const moved = await waitFor('a new coordinator', async () => {
        const found = await findCoordinator(GROUP);
        return !('error' in found) && found.nodeId !== old ? found.nodeId : undefined;
      }, { timeoutMs: 20_000, intervalMs: 100 });
      assert.notEqual(moved, old);
      const leader = (await describePartitions(admin, OFFSETS_TOPIC))[partitionForGroup(GROUP, 4)]!.leader;
      assert.equal(moved, leader);
      // The members' next heartbeats at their epochs succeed at the new coordinator.
      await waitFor('both members heartbeating at the new coordinator', () => a.lastCoordinator === moved && c.lastCoordinator === moved, { timeoutMs: 20_000 });
      assert.equal(a.fenced + c.fenced, fencedBefore, 'no member was fenced by the failover');
      assert.deepEqual({ a: a.memberId, c: c.memberId }, ids);
      assert.deepEqual({ a: a.epoch, c: c.epoch }, epochs);
      assert.deepEqual(await fetchOffsets(), before);
      const { conn } = await coordinator();
      const d = (await conn.request(ApiKey.ConsumerGroupDescribe, { groupIds: [GROUP] })).groups[0]!;
      assert.deepEqual(d.members.map((m) => m.memberId).sort(), [ids.a, ids.c].sort());
      assert.deepEqual(members.flatMap((m) => m.violations), []);
      // Everyone leaves; now an admin commit (reset-offsets) is accepted.
      await a.leave();
      await c.leave();
      assert.deepEqual(await commit('', -1, [[0, 1], [1, 1]]), new Map([[0, 'ok'], [1, 'ok']]));
      const after = await fetchOffsets();
      assert.equal(after.get(0), 1);
      assert.equal(after.get(1), 1);
      const listed = await conn.request(ApiKey.ListGroups, { statesFilter: ['empty'] });
      assert.deepEqual(listed.groups.filter((x) => x.groupId === GROUP).map((x) => [x.groupState, x.members]), [['empty', 0]]);
    });
  });
});
