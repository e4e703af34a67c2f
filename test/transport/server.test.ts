/**
 * RpcServer: real round trips over loopback, and everything a client can get wrong (DESIGN
 * rule 6): an error response naming what is wrong, or, when framing itself is broken, that one
 * connection closed while the server keeps serving everyone else.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Packr } from 'msgpackr';
import { waitFor } from '../../common/wait.js';
import { ApiKey, Protocol, TributaryError, defaultProtocol, type FetchResponse } from '../../protocol/index.js';
import { RpcConnection, handler, type RequestContext } from '../../protocol/transport/index.js';
import {
  HEARTBEAT_RESPONSE,
  closeOf,
  deferred,
  fetchRequest,
  heartbeat,
  nextMessage,
  rawClient,
  startServer,
} from './helpers.js';

const packr = new Packr({ useRecords: false });

function rejection(promise: Promise<unknown>): Promise<TributaryError> {
  return promise.then(
    () => assert.fail('expected a rejection'),
    (error: unknown) => {
      assert.ok(error instanceof TributaryError, `expected a TributaryError, got ${String(error)}`);
      return error;
    },
  );
}

const heartbeatOk = handler(ApiKey.BrokerHeartbeat, () => HEARTBEAT_RESPONSE);

/** A Fetch answer for one topic: partitions firstIndex, firstIndex + 1, ... with these record sets. */
function fetchAnswer(topic: string, highWatermark: number, recordSets: Buffer[], firstIndex = 0): FetchResponse {
  const partitions = recordSets.map((records, i) => ({
    partitionIndex: firstIndex + i,
    errorCode: 0,
    highWatermark,
    lastStableOffset: highWatermark,
    logStartOffset: 0,
    preferredReadReplica: -1,
    records,
  }));
  return { throttleTimeMs: 0, responses: [{ topic, partitions }] };
}

test('round trip of a real API: Fetch with record bytes, the context the handler sees, default ApiVersions', async (t) => {
  const records = Buffer.from('a record batch stand-in');
  const seen: RequestContext[] = [];
  const { server, url } = await startServer([
    handler(ApiKey.Fetch, (body, ctx): FetchResponse => {
      seen.push(ctx);
      const partition = body.topics[0]!.partitions[0]!;
      return fetchAnswer(body.topics[0]!.topic, partition.fetchOffset + 10, [records], partition.partition);
    }),
  ]);
  t.after(() => server.close());
  const connection = await RpcConnection.connect(url, { clientId: 'test-client' });
  t.after(() => connection.close());

  const response = await connection.request(ApiKey.Fetch, fetchRequest(2 ** 40));
  const partition = response.responses[0]!.partitions[0]!;
  assert.equal(partition.highWatermark, 2 ** 40 + 10);
  assert.deepEqual(Buffer.from(partition.records!), records);
  assert.equal(seen[0]!.clientId, 'test-client');
  assert.equal(seen[0]!.apiVersion, 0);
  assert.equal(seen[0]!.closed, false);
  assert.match(seen[0]!.remoteAddress, /^127\.0\.0\.1:\d+$/);
  assert.equal(server.connections(), 1);

  const versions = await connection.request(ApiKey.ApiVersions, {});
  assert.deepEqual(
    versions.apiKeys.map((v) => v.apiKey),
    [ApiKey.Fetch, ApiKey.ApiVersions].sort((a, b) => a - b),
  );
});

test('Fetch answers with large record sets go out as fragments by reference and arrive byte-exact, concurrent ones unmixed', async (t) => {
  const setsFor = (offset: number) =>
    [100_000, 5_000, 10, 300_000].map((n, i) => Buffer.alloc(n, (offset * 7 + i) & 0xff));
  const { server, url } = await startServer([
    handler(ApiKey.Fetch, async (body): Promise<FetchResponse> => {
      const offset = body.topics[0]!.partitions[0]!.fetchOffset;
      await new Promise((r) => setImmediate(r)); // answers finish together, in one corked write
      return fetchAnswer(body.topics[0]!.topic, offset, setsFor(offset));
    }),
  ]);
  t.after(() => server.close());
  const connection = await RpcConnection.connect(url, { clientId: 'test-client' });
  t.after(() => connection.close());
  const offsets = [1, 2, 3, 4, 5, 6];
  const responses = await Promise.all(offsets.map((o) => connection.request(ApiKey.Fetch, fetchRequest(o))));
  responses.forEach((response, k) => {
    const partitions = response.responses[0]!.partitions;
    assert.equal(partitions[0]!.highWatermark, offsets[k]);
    assert.deepEqual(partitions.map((p) => Buffer.from(p.records!)), setsFor(offsets[k]!));
  });
});

test('a handler throwing TributaryError reaches the client as that typed error', async (t) => {
  const { server, url } = await startServer([
    handler(ApiKey.BrokerHeartbeat, (body) => {
      throw new TributaryError('STALE_BROKER_EPOCH', `broker ${body.brokerId} epoch ${body.brokerEpoch} is not registered`);
    }),
  ]);
  t.after(() => server.close());
  const connection = await RpcConnection.connect(url);
  t.after(() => connection.close());
  const error = await rejection(connection.request(ApiKey.BrokerHeartbeat, heartbeat()));
  assert.equal(error.code, 'STALE_BROKER_EPOCH');
  assert.equal(error.retriable, false);
  assert.equal(error.message, 'STALE_BROKER_EPOCH: broker 2 epoch 17 is not registered');
});

test('a handler throwing a TypeError: UNKNOWN_SERVER_ERROR, a log line, and the server keeps serving', async (t) => {
  let calls = 0;
  const { server, url, logger } = await startServer([
    handler(ApiKey.BrokerHeartbeat, (body) => {
      calls++;
      if (body.brokerId === 13) {
        const missing = undefined as unknown as { field: number };
        return { ...HEARTBEAT_RESPONSE, leaseDurationMs: missing.field }; // TypeError
      }
      return HEARTBEAT_RESPONSE;
    }),
    handler(ApiKey.Fetch, async () => {
      await Promise.resolve();
      throw new RangeError('async failure');
    }),
  ]);
  t.after(() => server.close());
  const connection = await RpcConnection.connect(url);
  t.after(() => connection.close());

  const error = await rejection(connection.request(ApiKey.BrokerHeartbeat, heartbeat({ brokerId: 13 })));
  assert.equal(error.code, 'UNKNOWN_SERVER_ERROR');
  assert.match(error.message, /unexpected error handling BrokerHeartbeat/);
  assert.doesNotMatch(error.message, /TypeError/, 'internals stay in the server log');
  const asyncError = await rejection(connection.request(ApiKey.Fetch, fetchRequest(0)));
  assert.equal(asyncError.code, 'UNKNOWN_SERVER_ERROR');

  const logged = logger.lines.filter((l) => l.level === 'error');
  assert.equal(logged.length, 2);
  assert.ok((logged[0]!.fields as { err: unknown }).err instanceof TypeError);
  assert.ok((logged[1]!.fields as { err: unknown }).err instanceof RangeError);

  // Same connection, and a new one, both still served.
  assert.deepEqual(await connection.request(ApiKey.BrokerHeartbeat, heartbeat()), HEARTBEAT_RESPONSE);
  const other = await RpcConnection.connect(url);
  t.after(() => other.close());
  assert.deepEqual(await other.request(ApiKey.BrokerHeartbeat, heartbeat()), HEARTBEAT_RESPONSE);
  assert.equal(calls, 3);
});

test('garbage bytes close that connection with the reason; others are still served', async (t) => {
  const { server, url } = await startServer([heartbeatOk]);
  t.after(() => server.close());
  const healthy = await RpcConnection.connect(url);
  t.after(() => healthy.close());

  const notMsgpack = await rawClient(url);
  const closed = closeOf(notMsgpack);
  notMsgpack.send(Buffer.from([0xc1, 0x00, 0xff])); // 0xc1 is never valid msgpack
  const { code, reason } = await closed;
  assert.equal(code, 1007);
  assert.match(reason, /^INVALID_REQUEST: frame: not a valid msgpack value/);

  const notAnArray = await rawClient(url);
  const closed2 = closeOf(notAnArray);
  notAnArray.send(packr.pack({ apiKey: 63 }));
  assert.deepEqual(await closed2, { code: 1007, reason: 'INVALID_REQUEST: frame: expected an array [apiKey, apiVersion, correlationId, clientId, body]' });

  const text = await rawClient(url);
  const closed3 = closeOf(text);
  text.send('hello');
  assert.equal((await closed3).code, 1003);

  assert.deepEqual(await healthy.request(ApiKey.BrokerHeartbeat, heartbeat()), HEARTBEAT_RESPONSE);
  await waitFor('server to drop the closed connections', () => server.connections() === 1);
});

test('a frame with a bad field gets INVALID_REQUEST naming the field; the connection stays', async (t) => {
  const { server, url } = await startServer([heartbeatOk]);
  t.after(() => server.close());
  const connection = await RpcConnection.connect(url);
  t.after(() => connection.close());
  // Encoding trusts its input, so a wrong value reaches the server as it would from a buggy client.
  const error = await rejection(connection.request(ApiKey.BrokerHeartbeat, heartbeat({ brokerId: -5 })));
  assert.equal(error.code, 'INVALID_REQUEST');
  assert.equal(error.message, 'INVALID_REQUEST: brokerId: expected an integer in [0, 2147483647], got -5');
  const unknownVersion = await rejection(connection.request(ApiKey.BrokerHeartbeat, heartbeat(), { apiVersion: 9 }));
  assert.equal(unknownVersion.code, 'UNSUPPORTED_VERSION');
  const unserved = await rejection(connection.request(ApiKey.Fetch, fetchRequest(0)));
  assert.equal(unserved.code, 'UNSUPPORTED_VERSION');
  assert.match(unserved.message, /does not serve Fetch/);

  // A raw frame with a readable header but a broken body: an error response, not a close.
  const raw = await rawClient(url);
  t.after(() => raw.close());
  raw.send(packr.pack([ApiKey.BrokerHeartbeat, 0, 77, null, [2, 17, null, 'no', 5, []]]));
  const frame = defaultProtocol.decodeResponse(ApiKey.BrokerHeartbeat, 0, await nextMessage(raw));
  assert.deepEqual(frame, { correlationId: 77, errorCode: 42, errorMessage: 'wantShutDown: expected a boolean, got the string "no"' });
  assert.deepEqual(await connection.request(ApiKey.BrokerHeartbeat, heartbeat()), HEARTBEAT_RESPONSE);
});

test('a frame above frameBytesMax closes that connection only', async (t) => {
  const protocol = new Protocol({ frameBytesMax: 64 * 1024, batchBytesMax: 32 * 1024 });
  const { server, url } = await startServer(
    [
      handler(ApiKey.Produce, () => ({ responses: [], throttleTimeMs: 0 })),
      heartbeatOk,
    ],
    { protocol },
  );
  t.after(() => server.close());
  const healthy = await RpcConnection.connect(url);
  t.after(() => healthy.close());
  const big = await RpcConnection.connect(url); // default limits: it may send 100 KiB
  const produce = (bytes: number) => ({
    transactionalId: null,
    acks: 1 as const,
    timeoutMs: 1000,
    topicData: [{ name: 't', partitionData: [{ index: 0, currentLeaderEpoch: -1, records: Buffer.alloc(bytes) }] }],
  });
  assert.deepEqual(await big.request(ApiKey.Produce, produce(1000)), { responses: [], throttleTimeMs: 0 });
  const error = await rejection(big.request(ApiKey.Produce, produce(100 * 1024)));
  assert.equal(error.code, 'NETWORK_EXCEPTION');
  assert.match(error.message, /1009/);
  assert.equal(big.isClosed, true);
  assert.deepEqual(await healthy.request(ApiKey.BrokerHeartbeat, heartbeat()), HEARTBEAT_RESPONSE);
});

test('past inflightRequestsMax on a connection: THROTTLING_QUOTA_EXCEEDED at once, the rest complete', async (t) => {
  const release = deferred();
  let started = 0;
  const { server, url } = await startServer(
    [
      handler(ApiKey.BrokerHeartbeat, async () => {
        started++;
        await release.promise;
        return HEARTBEAT_RESPONSE;
      }),
    ],
    { inflightRequestsMax: 2 },
  );
  t.after(() => server.close());
  const connection = await RpcConnection.connect(url);
  t.after(() => connection.close());
  const first = connection.request(ApiKey.BrokerHeartbeat, heartbeat());
  const second = connection.request(ApiKey.BrokerHeartbeat, heartbeat());
  const third = await rejection(connection.request(ApiKey.BrokerHeartbeat, heartbeat()));
  assert.equal(third.code, 'THROTTLING_QUOTA_EXCEEDED');
  assert.equal(third.retriable, true);
  assert.match(third.message, /inflightRequestsMax=2/);
  assert.equal(started, 2);
  release.resolve();
  assert.deepEqual(await Promise.all([first, second]), [HEARTBEAT_RESPONSE, HEARTBEAT_RESPONSE]);
});

test('requests are dispatched in arrival order and may complete out of order', async (t) => {
  const order: number[] = [];
  const gates = new Map([[1, deferred()], [2, deferred()]]);
  const { server, url } = await startServer([
    handler(ApiKey.BrokerHeartbeat, async (body) => {
      order.push(body.brokerId);
      await gates.get(body.brokerId)!.promise;
      return { ...HEARTBEAT_RESPONSE, leaseDurationMs: body.brokerId };
    }),
  ]);
  t.after(() => server.close());
  const connection = await RpcConnection.connect(url);
  t.after(() => connection.close());
  const first = connection.request(ApiKey.BrokerHeartbeat, heartbeat({ brokerId: 1 }));
  const second = connection.request(ApiKey.BrokerHeartbeat, heartbeat({ brokerId: 2 }));
  await waitFor('both requests to reach the handler', () => order.length === 2);
  assert.deepEqual(order, [1, 2]);
  gates.get(2)!.resolve();
  assert.equal((await second).leaseDurationMs, 2);
  gates.get(1)!.resolve();
  assert.equal((await first).leaseDurationMs, 1);
});

test('GET /healthz, a custom route and 404 share the WebSocket port', async (t) => {
  const { server, url } = await startServer([heartbeatOk], {
    httpRoutes: (req, res) => {
      if (req.url !== '/metrics') return false;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end('tributary_up 1\n');
      return true;
    },
  });
  t.after(() => server.close());
  const base = url.replace('ws://', 'http://');
  const health = await fetch(`${base}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(await health.text(), 'ok\n');
  const metrics = await fetch(`${base}/metrics`);
  assert.equal(metrics.status, 200);
  assert.equal(await metrics.text(), 'tributary_up 1\n');
  const missing = await fetch(`${base}/nope`);
  assert.equal(missing.status, 404);
  await missing.text();
  // And the same port still speaks WebSocket.
  const connection = await RpcConnection.connect(url);
  t.after(() => connection.close());
  assert.deepEqual(await connection.request(ApiKey.BrokerHeartbeat, heartbeat()), HEARTBEAT_RESPONSE);
});

test('connectionsMax: the next upgrade gets HTTP 503, a slot frees when one closes', async (t) => {
  const { server, url, logger } = await startServer([heartbeatOk], { connectionsMax: 2 });
  t.after(() => server.close());
  const a = await RpcConnection.connect(url);
  const b = await RpcConnection.connect(url);
  t.after(() => b.close());
  const refused = await rejection(RpcConnection.connect(url));
  assert.equal(refused.code, 'NETWORK_EXCEPTION');
  assert.ok(refused.message.includes(url), refused.message);
  assert.match(refused.message, /HTTP 503 connectionsMax=2 reached/);
  assert.ok(logger.lines.some((l) => l.level === 'warn' && /connectionsMax/.test(l.message)));
  await a.close();
  await waitFor('the server to see the close', () => server.connections() === 1);
  const c = await RpcConnection.connect(url);
  t.after(() => c.close());
  assert.deepEqual(await c.request(ApiKey.BrokerHeartbeat, heartbeat()), HEARTBEAT_RESPONSE);
});

test('server close: pending requests reject NETWORK_EXCEPTION and handlers see the abort', async (t) => {
  const aborted = deferred<boolean>();
  const entered = deferred();
  const { server, url } = await startServer([
    handler(ApiKey.Fetch, (_body, ctx) => {
      entered.resolve();
      // A long poll that gives up when the connection goes.
      return new Promise<never>((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => {
          aborted.resolve(ctx.closed);
          reject(new TributaryError('REQUEST_TIMED_OUT', 'abandoned'));
        });
      });
    }),
  ]);
  const connection = await RpcConnection.connect(url);
  t.after(() => connection.close());
  const pending = connection.request(ApiKey.Fetch, fetchRequest(0));
  await entered.promise;
  const closing = server.close();
  const error = await rejection(pending);
  assert.equal(error.code, 'NETWORK_EXCEPTION');
  assert.equal(error.retriable, true);
  assert.match(error.message, /Fetch \(correlation id 1\) failed: connection to ws:\/\/127\.0\.0\.1:\d+ closed \(close code 1001: server shutting down\)/);
  assert.equal(await aborted.promise, true);
  await closing;
  assert.equal(server.connections(), 0);
  const later = await rejection(connection.request(ApiKey.Fetch, fetchRequest(0)));
  assert.equal(later.code, 'NETWORK_EXCEPTION');
  await rejection(RpcConnection.connect(url));
});
