/**
 * Transport micro-benchmark (a measurement, not a test): RpcConnection → RpcServer over
 * loopback, the server in a child process so client and server do not share an event loop.
 *
 *   node dist/bench/transport.js [--seconds 3]
 *   WS_NO_BUFFER_UTIL=1 node dist/bench/transport.js     # force ws's JavaScript masking even if bufferutil is installed
 *
 * Measures, each after a short warm-up:
 *   - round trips/s of a small Produce (100-byte batch) with 1 and with 64 requests in flight;
 *   - MB/s of 1 MiB Produce requests (8 in flight), and the same bytes over bare `ws` (the peer:
 *     what the socket can do without our codec), so our overhead is visible.
 * Prints one JSON object.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import WebSocket, { WebSocketServer } from 'ws';
import { ApiKey, type ProduceRequest, type ProduceResponse } from '../protocol/index.js';
import { RpcConnection, RpcServer, handler } from '../protocol/transport/index.js';

const MIB = 1024 * 1024;

function produce(recordBytes: number): ProduceRequest {
  return {
    transactionalId: null,
    acks: 1,
    timeoutMs: 30_000,
    topicData: [{ name: 'bench', partitionData: [{ index: 0, currentLeaderEpoch: -1, records: Buffer.alloc(recordBytes, 7) }] }],
  };
}

// ---- server (child process) ------------------------------------------------------------------

async function runServer(): Promise<void> {
  let baseOffset = 0;
  const server = new RpcServer({
    host: '127.0.0.1',
    port: 0,
    handlers: new Map([
      handler(ApiKey.Produce, (body): ProduceResponse => {
        const partition = body.topicData[0]!.partitionData[0]!;
        baseOffset += 1;
        return {
          responses: [
            { name: body.topicData[0]!.name, partitionResponses: [{ index: partition.index, errorCode: 0, baseOffset, logAppendTimeMs: -1, logStartOffset: 0 }] },
          ],
          throttleTimeMs: 0,
        };
      }),
    ]),
  });
  const { port } = await server.listen();
  // The peer: bare ws, no codec; answers each message with 4 bytes.
  const raw = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 64 * MIB });
  await once(raw, 'listening');
  const ack = Buffer.alloc(4);
  raw.on('connection', (ws) => ws.on('message', () => ws.send(ack)));
  process.send?.({ port, rawPort: (raw.address() as { port: number }).port });
  process.on('disconnect', () => process.exit(0));
}

// ---- client ----------------------------------------------------------------------------------

/** Run `inflight` loops of `once` for `seconds`; returns completed operations per second. */
async function measure(seconds: number, inflight: number, once: () => Promise<unknown>): Promise<number> {
  const run = async (ms: number): Promise<number> => {
    const deadline = performance.now() + ms;
    let done = 0;
    await Promise.all(
      Array.from({ length: inflight }, async () => {
        while (performance.now() < deadline) {
          await once();
          done++;
        }
      }),
    );
    return done;
  };
  await run(Math.min(500, seconds * 250)); // warm-up: JIT, TCP windows
  const started = performance.now();
  const done = await run(seconds * 1000);
  return done / ((performance.now() - started) / 1000);
}

function bufferutilLoaded(): boolean {
  if (process.env['WS_NO_BUFFER_UTIL'] !== undefined) return false;
  try {
    createRequire(import.meta.url).resolve('bufferutil');
    return true;
  } catch {
    return false;
  }
}

async function runClient(seconds: number): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--server'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [{ port, rawPort }] = (await once(child, 'message')) as [{ port: number; rawPort: number }];
  try {
    const connection = await RpcConnection.connect(`ws://127.0.0.1:${port}`, { clientId: 'bench', inflightRequestsMax: 256 });
    const small = produce(100);
    const rtt1 = await measure(seconds, 1, () => connection.request(ApiKey.Produce, small));
    const rtt64 = await measure(seconds, 64, () => connection.request(ApiKey.Produce, small));
    const big = produce(MIB);
    const bigPerSecond = await measure(seconds, 8, () => connection.request(ApiKey.Produce, big));
    await connection.close();

    // Bare ws, same payload size and concurrency: one pending callback queue, replies in order.
    const ws = new WebSocket(`ws://127.0.0.1:${rawPort}`, { perMessageDeflate: false });
    await once(ws, 'open');
    const waiting: Array<() => void> = [];
    ws.on('message', () => waiting.shift()?.());
    const payload = Buffer.alloc(MIB + 64, 7);
    const rawPerSecond = await measure(seconds, 8, () => new Promise<void>((resolve) => {
      waiting.push(resolve);
      ws.send(payload);
    }));
    ws.close();

    const result = {
      bench: 'transport',
      node: process.version,
      bufferutil: bufferutilLoaded(),
      seconds,
      roundTripsPerSecond: { inflight1: Math.round(rtt1), inflight64: Math.round(rtt64) },
      produce1MiB: { inflight: 8, requestsPerSecond: Math.round(bigPerSecond), MBps: Math.round((bigPerSecond * MIB) / 1e6) },
      bareWs1MiB: { inflight: 8, messagesPerSecond: Math.round(rawPerSecond), MBps: Math.round((rawPerSecond * (MIB + 64)) / 1e6) },
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    child.disconnect();
    child.kill();
  }
}

if (process.argv.includes('--server')) {
  await runServer();
} else {
  const at = process.argv.indexOf('--seconds');
  const seconds = at > 0 ? Number(process.argv[at + 1]) : 3;
  await runClient(seconds > 0 ? seconds : 3);
}
