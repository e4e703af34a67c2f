/** RpcConnection: deadlines, the client-side in-flight bound and queue, fire-and-forget, closing, keep-alive, and the pool. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import * as wsModule from 'ws';
import { WebSocket, WebSocketServer } from 'ws';
import { waitFor } from '../../common/wait.js';
import { ApiKey, TributaryError, type ProduceRequest, type RaftMessagesRequest } from '../../protocol/index.js';
import { frameHeader, writeFramePieces, zeroMask } from '../../protocol/transport/ws-pieces.js';
import { ConnectionPool, NO_RESPONSE, RpcConnection, handler } from '../../protocol/transport/index.js';
import { HEARTBEAT_RESPONSE, deferred, freePort, heartbeat, recordingLogger, startServer, type Deferred } from './helpers.js';

function rejection(promise: Promise<unknown>): Promise<TributaryError> {
  return promise.then(
    () => assert.fail('expected a rejection'),
    (error: unknown) => {
      assert.ok(error instanceof TributaryError, `expected a TributaryError, got ${String(error)}`);
      return error;
    },
  );
}

test('a request past its deadline fails REQUEST_TIMED_OUT; the late response is dropped', async (t) => {
  const release = deferred();
  const { server, url } = await startServer([
    handler(ApiKey.BrokerHeartbeat, async (body) => {
      if (body.brokerId === 1) await release.promise;
      return HEARTBEAT_RESPONSE;
    }),
  ]);
  t.after(() => server.close());
  const connection = await RpcConnection.connect(url, { inflightRequestsMax: 1 });
  t.after(() => connection.close());
  const error = await rejection(connection.request(ApiKey.BrokerHeartbeat, heartbeat({ brokerId: 1 }), { timeoutMs: 30 }));
  assert.equal(error.code, 'REQUEST_TIMED_OUT');
  assert.match(error.message, /BrokerHeartbeat to ws:\/\/127\.0\.0\.1:\d+ got no response within 30 ms/);
  assert.equal(connection.inflight, 0, 'the slot is freed');
  release.resolve();
  await waitFor('the late response to arrive and be dropped', () => connection.unmatchedResponses === 1);
  // The freed slot works; the connection is fine.
  assert.deepEqual(await connection.request(ApiKey.BrokerHeartbeat, heartbeat()), HEARTBEAT_RESPONSE);
});

test('client inflightRequestsMax queues, queuedRequestsMax rejects at once, queued requests time out too', async (t) => {
  const gates: Array<Deferred<void>> = [];
  const { server, url } = await startServer([
    handler(ApiKey.BrokerHeartbeat, async (body) => {
      const gate = deferred<void>();
      gates.push(gate);
      await gate.promise;
      return { ...HEARTBEAT_RESPONSE, leaseDurationMs: body.brokerId };
    }),
  ]);
  t.after(() => server.close());
  const connection = await RpcConnection.connect(url, { inflightRequestsMax: 1, queuedRequestsMax: 2 });
  t.after(() => connection.close());
  const first = connection.request(ApiKey.BrokerHeartbeat, heartbeat({ brokerId: 1 }));
  const second = connection.request(ApiKey.BrokerHeartbeat, heartbeat({ brokerId: 2 }));
  const expires = connection.request(ApiKey.BrokerHeartbeat, heartbeat({ brokerId: 3 }), { timeoutMs: 20 });
  assert.equal(connection.inflight, 1);
  assert.equal(connection.queuedRequests, 2);
  const refused = await rejection(connection.request(ApiKey.BrokerHeartbeat, heartbeat({ brokerId: 4 })));
  assert.equal(refused.code, 'THROTTLING_QUOTA_EXCEEDED');
  assert.match(refused.message, /queuedRequestsMax=2/);
  const expired = await rejection(expires);
  assert.equal(expired.code, 'REQUEST_TIMED_OUT');
  assert.match(expired.message, /still queued/);
  assert.equal(connection.queuedRequests, 1);

  await waitFor('the first request to reach the handler', () => gates.length === 1);
  gates[0]!.resolve();
  assert.equal((await first).leaseDurationMs, 1);
  await waitFor('the queued request to be sent', () => gates.length === 2);
  gates[1]!.resolve();
  assert.equal((await second).leaseDurationMs, 2);
  assert.equal(gates.length, 2, 'the expired request was never sent');
});

test('fire-and-forget: the handler runs, nothing comes back', async (t) => {
  const received: RaftMessagesRequest[] = [];
  const { server, url } = await startServer([
    handler(ApiKey.RaftMessages, (body) => {
      received.push(body);
      return NO_RESPONSE;
    }),
    handler(ApiKey.BrokerHeartbeat, () => HEARTBEAT_RESPONSE),
  ]);
  t.after(() => server.close());
  const connection = await RpcConnection.connect(url);
  t.after(() => connection.close());
  for (let term = 1; term <= 3; term++) {
    assert.equal(
      connection.send(ApiKey.RaftMessages, {
        fromId: 1,
        toId: 2,
        messages: [{ type: 'Heartbeat', from: 1, to: 2, term, leaderCommit: 0, readRound: 0 }],
      }),
      true,
    );
  }
  await waitFor('three batches to arrive', () => received.length === 3);
  assert.deepEqual(
    received.map((r) => r.messages[0]!.term),
    [1, 2, 3],
  );
  // A later request's response comes after anything the fire-and-forget ones could have produced.
  await connection.request(ApiKey.BrokerHeartbeat, heartbeat());
  assert.equal(connection.unmatchedResponses, 0);
  await connection.close();
  assert.equal(connection.send(ApiKey.RaftMessages, { fromId: 1, toId: 2, messages: [] }), false);
});

test('connect failures are NETWORK_EXCEPTION naming the url and the cause', async () => {
  const url = `ws://127.0.0.1:${await freePort()}`;
  const refused = await rejection(RpcConnection.connect(url, { connectTimeoutMs: 2000 }));
  assert.equal(refused.code, 'NETWORK_EXCEPTION');
  assert.ok(refused.message.startsWith(`NETWORK_EXCEPTION: cannot connect to ${url}: `), refused.message);
  assert.match(refused.message, /ECONNREFUSED/);
  const malformed = await rejection(RpcConnection.connect('not a url'));
  assert.equal(malformed.code, 'INVALID_CONFIG');
});

test('close(): pending requests fail at once, onClose is called, later requests fail', async (t) => {
  const { server, url } = await startServer([handler(ApiKey.BrokerHeartbeat, () => new Promise<never>(() => {}))]);
  t.after(() => server.close());
  const reasons: TributaryError[] = [];
  const connection = await RpcConnection.connect(url, { onClose: (reason) => reasons.push(reason) });
  const pending = rejection(connection.request(ApiKey.BrokerHeartbeat, heartbeat()));
  const closed = connection.close();
  const error = await pending;
  assert.equal(error.code, 'NETWORK_EXCEPTION');
  assert.match(error.message, /closed by this client/);
  assert.equal((await closed).code, 'NETWORK_EXCEPTION');
  assert.equal(reasons.length, 1);
  assert.equal((await rejection(connection.request(ApiKey.BrokerHeartbeat, heartbeat()))).code, 'NETWORK_EXCEPTION');
  await waitFor('the server to see the close', () => server.connections() === 0);
});

test('keep-alive: a peer that stops answering pings is cut and pending requests fail', async (t) => {
  // A server whose process is alive at the TCP level but never answers (like a paused process).
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false });
  await once(wss, 'listening');
  t.after(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  wss.on('connection', (ws) => ws.on('error', () => {}));
  const { port } = wss.address() as { port: number };
  const logger = recordingLogger();
  const connection = await RpcConnection.connect(`ws://127.0.0.1:${port}`, { keepAliveIntervalMs: 25, requestTimeoutMs: 0, logger });
  const pending = rejection(connection.request(ApiKey.BrokerHeartbeat, heartbeat()));
  const reason = await connection.closed;
  assert.equal(reason.code, 'NETWORK_EXCEPTION');
  assert.match(reason.message, /no response to a ping within keepAliveIntervalMs=25/);
  assert.equal((await pending).code, 'NETWORK_EXCEPTION');
  assert.ok(logger.lines.some((l) => l.level === 'warn' && /no pong/.test(l.message)));
});

test('pool: concurrent gets share one connection; a closed one is replaced; a failed connect is retried', async (t) => {
  const { server, url } = await startServer([handler(ApiKey.BrokerHeartbeat, () => HEARTBEAT_RESPONSE)]);
  t.after(() => server.close());
  const pool = new ConnectionPool({ clientId: 'pooled' });
  t.after(() => pool.closeAll());

  const [a, b] = await Promise.all([pool.get(url), pool.get(url)]);
  assert.equal(a, b);
  assert.equal(await pool.get(url), a);
  assert.equal(server.connections(), 1);
  assert.deepEqual(await a.request(ApiKey.BrokerHeartbeat, heartbeat()), HEARTBEAT_RESPONSE);

  // Closed by us: replaced at once, even before the close handshake finishes.
  void a.close();
  const c = await pool.get(url);
  assert.notEqual(c, a);
  assert.deepEqual(await c.request(ApiKey.BrokerHeartbeat, heartbeat()), HEARTBEAT_RESPONSE);

  // Nothing listening: the failure is not remembered.
  const down = `ws://127.0.0.1:${await freePort()}`;
  await rejection(pool.get(down));
  await rejection(pool.get(down)); // tried again, not a remembered failure
  assert.equal(pool.size(), 1);

  await pool.closeAll();
  await c.closed;
  assert.equal((await rejection(pool.get(url))).code, 'NETWORK_EXCEPTION');
});

test('pool: a connection the server closes is replaced on the next get', async (t) => {
  const first = await startServer([handler(ApiKey.BrokerHeartbeat, () => HEARTBEAT_RESPONSE)]);
  const pool = new ConnectionPool();
  t.after(() => pool.closeAll());
  const a = await pool.get(first.url);
  await first.server.close();
  await a.closed;
  // A new server on the same port (the process restarted).
  const second = await startServer([handler(ApiKey.BrokerHeartbeat, () => HEARTBEAT_RESPONSE)], { port: first.server.address.port });
  t.after(() => second.server.close());
  const b = await pool.get(first.url);
  assert.notEqual(b, a);
  assert.deepEqual(await b.request(ApiKey.BrokerHeartbeat, heartbeat()), HEARTBEAT_RESPONSE);
});

test('byReference requests: record batches go out by reference under a zero mask and arrive byte-exact, concurrent and fire-and-forget ones unmixed', async (t) => {
  const batchesFor = (k: number) => [100_000, 5_000, 10, 70_000].map((n, i) => Buffer.alloc(n, (k * 7 + i) & 0xff));
  const produce = (k: number, acks: -1 | 0): ProduceRequest => ({
    transactionalId: null,
    acks,
    timeoutMs: 1000,
    topicData: [{ name: `t${k}`, partitionData: batchesFor(k).map((records, index) => ({ index, currentLeaderEpoch: -1, records })) }],
  });
  const received = new Map<string, Buffer[]>();
  const { server, url } = await startServer([
    handler(ApiKey.Produce, (body) => {
      const topic = body.topicData[0]!;
      received.set(topic.name, topic.partitionData.map((p) => Buffer.from(p.records!)));
      if (body.acks === 0) return NO_RESPONSE;
      return { responses: [{ name: topic.name, partitionResponses: [] }], throttleTimeMs: 0 };
    }),
  ]);
  t.after(() => server.close());
  const connection = await RpcConnection.connect(url);
  t.after(() => connection.close());
  const ks = [1, 2, 3, 4, 5, 6];
  const answers = await Promise.all(ks.map((k) => connection.request(ApiKey.Produce, produce(k, -1), { byReference: true })));
  assert.deepEqual(answers.map((a) => a.responses[0]!.name), ks.map((k) => `t${k}`));
  assert.equal(connection.send(ApiKey.Produce, produce(7, 0), { byReference: true }), true);
  await waitFor('the fire-and-forget produce', () => received.has('t7'));
  for (const k of [...ks, 7]) assert.deepEqual(received.get(`t${k}`), batchesFor(k), `t${k}`);
});

/** ws's frame builder (exported at runtime, not in @types/ws). */
const { Sender } = wsModule as unknown as { Sender: { frame(data: Buffer, options: object): Buffer[] } };

test('frameHeader is the header ws writes for the same frame, masked (zero key) and not, at every length encoding', () => {
  for (const length of [0, 125, 126, 65_535, 65_536, 1_000_000]) {
    for (const mask of [false, true]) {
      const [header] = Sender.frame(Buffer.alloc(length), { fin: true, opcode: 2, mask, readOnly: false, rsv1: false, generateMask: zeroMask });
      assert.deepEqual(frameHeader(length, mask), header, `length ${length}, masked ${mask}`);
    }
  }
});

test('writeFramePieces writes nothing and says so when the WebSocket is not open', async (t) => {
  const { server, url } = await startServer([]);
  t.after(() => server.close());
  const ws = new WebSocket(url);
  assert.equal(writeFramePieces(ws, [Buffer.alloc(1), Buffer.alloc(1)], true), false); // still connecting
  await once(ws, 'open');
  ws.close();
  await once(ws, 'close');
  assert.equal(writeFramePieces(ws, [Buffer.alloc(1), Buffer.alloc(1)], true), false);
});
