/**
 * The follower's side of a fetch session (KIP-227), against a scripted leader: the first request
 * is full and opens a session, later ones name only the partitions whose fetch state moved and
 * the ones to forget, and a refused session (FETCH_SESSION_ID_NOT_FOUND) makes the next request
 * a full one again.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import type { BrokerConfig } from '../../broker/config.js';
import type { ControllerLink } from '../../broker/controller-link.js';
import { Partition } from '../../broker/replica-manager.js';
import { ReplicaFetcher } from '../../broker/replication/replica-fetcher.js';
import { ApiKey, ERRORS, Protocol, type FetchRequest, type FetchResponse } from '../../protocol/index.js';
import { stampBatch } from '../../protocol/record-batch.js';
import { RpcServer, handler } from '../../protocol/transport/index.js';
import { waitFor } from '../../common/wait.js';
import { makeBatch, openLog } from '../log/helpers.js';

const LEADER = 1;
const TOPIC = 't';

type Named = Record<number, number>;

/** partition -> fetchOffset of what a request names. */
function named(request: FetchRequest): Named {
  const out: Named = {};
  for (const t of request.topics) for (const p of t.partitions) out[p.partition] = p.fetchOffset;
  return out;
}

function forgotten(request: FetchRequest): number[] {
  return (request.forgottenTopics ?? []).flatMap((t) => t.partitions).sort();
}

function answer(partitions: FetchResponse['responses'][number]['partitions'], session: { sessionId?: number; errorCode?: number } = {}): FetchResponse {
  return { throttleTimeMs: 0, responses: partitions.length === 0 ? [] : [{ topic: TOPIC, partitions }], errorCode: session.errorCode ?? 0, sessionId: session.sessionId ?? 0 };
}

test('a follower opens a session, names only what moved, forgets, and starts over when the session is lost', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-fetcher-'));
  const parts = [0, 1, 2].map((i) => {
    const part = new Partition(TOPIC, i, openLog(`${dir}/${TOPIC}-${i}`));
    part.leaderId = LEADER;
    part.leaderEpoch = 0;
    return part;
  });
  const batch = makeBatch({ records: 2 });
  stampBatch(batch, 0, 0, 0);

  const seen: FetchRequest[] = [];
  let fetcher: ReplicaFetcher | undefined;
  let release: () => void = () => undefined;
  const parked = new Promise<void>((r) => (release = r));
  // The leader's script, one answer per request, by position.
  const script: Array<(request: FetchRequest) => FetchResponse | Promise<FetchResponse>> = [
    // 1: full, opens session 7, records for partition 0.
    () => answer([{ partitionIndex: 0, errorCode: 0, highWatermark: 2, lastStableOffset: 2, logStartOffset: 0, preferredReadReplica: -1, records: batch }], { sessionId: 7 }),
    // 2: incremental; the leader lost the session.
    () => answer([], { errorCode: ERRORS.FETCH_SESSION_ID_NOT_FOUND.code }),
    // 3: full again, opens session 8; partition 2 leaves this fetcher meanwhile.
    () => {
      fetcher!.remove(parts[2]!);
      return answer([], { sessionId: 8 });
    },
    // 4 and 5: incremental in session 8.
    () => answer([], { sessionId: 8 }),
    () => answer([], { sessionId: 8 }),
  ];
  const server = new RpcServer({
    host: '127.0.0.1',
    port: 0,
    logger: { debug: () => undefined, warn: () => undefined, error: () => undefined },
    handlers: new Map([
      handler(ApiKey.Fetch, async (body) => {
        seen.push(body);
        const next = script[seen.length - 1];
        if (next === undefined) {
          await parked;
          return answer([], { sessionId: 8 });
        }
        return next(body);
      }),
    ]),
  });
  await server.listen();
  t.after(async () => {
    release();
    fetcher?.stop();
    await server.close();
    for (const p of parts) p.log.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const config = { brokerId: 2, replicaFetchWaitMaxMs: 100, replicaFetchMaxBytes: 1024 * 1024 } as BrokerConfig;
  const link = { brokerEpoch: 5 } as unknown as ControllerLink;
  const appended: string[] = [];
  fetcher = new ReplicaFetcher(LEADER, server.url, config, link, pino({ level: 'silent' }), (part) => appended.push(part.key));
  fetcher.setPartitions(parts);
  fetcher.start();
  await waitFor('six fetch requests', () => seen.length >= 6, { timeoutMs: 10_000 });

  const [r1, r2, r3, r4, r5] = seen as [FetchRequest, FetchRequest, FetchRequest, FetchRequest, FetchRequest];
  // 1: a full request that asks for a session, naming every partition.
  assert.equal(r1.sessionEpoch, 0);
  assert.equal(r1.sessionId, 0);
  assert.deepEqual(named(r1), { 0: 0, 1: 0, 2: 0 });
  assert.equal(parts[0]!.log.logEndOffset, 2);
  assert.equal(parts[0]!.log.highWatermark, 2);
  // 2: incremental in session 7, naming only partition 0 (its offset moved).
  assert.equal(r2.sessionId, 7);
  assert.equal(r2.sessionEpoch, 1);
  assert.deepEqual(named(r2), { 0: 2 });
  assert.deepEqual(forgotten(r2), []);
  // 3: the session was lost: full again, every partition at its current offset.
  assert.equal(r3.sessionEpoch, 0);
  assert.deepEqual(named(r3), { 0: 2, 1: 0, 2: 0 });
  // 4: incremental in session 8; nothing moved, partition 2 is forgotten.
  assert.equal(r4.sessionId, 8);
  assert.equal(r4.sessionEpoch, 1);
  assert.deepEqual(named(r4), {});
  assert.deepEqual(forgotten(r4), [2]);
  // 5: epoch 2, nothing to name or forget.
  assert.equal(r5.sessionEpoch, 2);
  assert.deepEqual(named(r5), {});
  assert.deepEqual(forgotten(r5), []);
  assert.ok(appended.includes(`${TOPIC}-0`));
});

test('a leader that speaks only Fetch v0 gets full fetches without a session', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-fetcher-v0-'));
  const parts = [0, 1].map((i) => {
    const part = new Partition(TOPIC, i, openLog(`${dir}/${TOPIC}-${i}`));
    part.leaderId = LEADER;
    part.leaderEpoch = 0;
    return part;
  });
  // An older build's codec: Fetch versions 0..0, so a v1 request is refused with UNSUPPORTED_VERSION.
  const protocol = new Protocol();
  (protocol.api(ApiKey.Fetch) as { versions: { min: number; max: number } }).versions = { min: 0, max: 0 };
  const seen: Array<{ version: number; body: FetchRequest }> = [];
  const server = new RpcServer({
    host: '127.0.0.1',
    port: 0,
    protocol,
    logger: { debug: () => undefined, warn: () => undefined, error: () => undefined },
    handlers: new Map([
      handler(ApiKey.Fetch, (body, ctx) => {
        seen.push({ version: ctx.apiVersion, body });
        return answer([]);
      }),
    ]),
  });
  await server.listen();
  const config = { brokerId: 2, replicaFetchWaitMaxMs: 100, replicaFetchMaxBytes: 1024 * 1024 } as BrokerConfig;
  const fetcher = new ReplicaFetcher(LEADER, server.url, config, { brokerEpoch: 5 } as unknown as ControllerLink, pino({ level: 'silent' }), () => undefined);
  t.after(async () => {
    fetcher.stop();
    await server.close();
    for (const p of parts) p.log.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  fetcher.setPartitions(parts);
  fetcher.start();
  await waitFor('three v0 fetches', () => seen.length >= 3, { timeoutMs: 10_000 });
  for (const { version, body } of seen.slice(0, 3)) {
    assert.equal(version, 0);
    assert.deepEqual(named(body), { 0: 0, 1: 0 }, 'without a session every request names every partition');
  }
});
