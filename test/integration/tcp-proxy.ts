/**
 * A tiny one-way TCP proxy for making real network partitions between processes on loopback.
 *
 * Every link (from → to) that a test may cut gets its own proxy: the sender dials the proxy's
 * port instead of the receiver's. `cut()` makes the link fail the way a partition does:
 *
 * - `'drop'` (default): bytes are black-holed. Existing connections stay open but nothing gets
 *   through in either direction; new connections are accepted and then hang. This is what a
 *   pulled cable looks like, so the endpoints must notice by their own timeouts/keep-alives.
 * - `'reset'`: existing connections are destroyed and new ones are closed at once (a refused or
 *   reset connection, noticed immediately).
 *
 * `restore()` lets new connections through again; connections that lived through a 'drop' cut
 * are destroyed at that moment (bytes were lost mid-stream, so their framing is broken) and the
 * endpoints reconnect.
 */
import net from 'node:net';

export type CutMode = 'drop' | 'reset';

interface Pair {
  client: net.Socket;
  upstream: net.Socket | undefined;
  /** Lived through a 'drop' cut: must not carry bytes again. */
  poisoned: boolean;
}

export class TcpProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<Pair>();
  private cutMode: CutMode | undefined;
  private boundPort = 0;
  /** Connections accepted over the proxy's life (for diagnostics). */
  accepted = 0;

  constructor(
    readonly target: { host: string; port: number },
    readonly name = `proxy→${target.host}:${target.port}`,
    private readonly listenHost = '127.0.0.1',
  ) {}

  /** Listen (on `port`, or an ephemeral port) and return the port. */
  async start(port = 0): Promise<number> {
    const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => this.accept(socket));
    server.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.listenHost, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.boundPort = (server.address() as net.AddressInfo).port;
    return this.boundPort;
  }

  get port(): number {
    return this.boundPort;
  }

  get address(): string {
    return `${this.listenHost}:${this.boundPort}`;
  }

  get isCut(): boolean {
    return this.cutMode !== undefined;
  }

  /** Open connections right now. */
  get connections(): number {
    return this.pairs.size;
  }

  cut(mode: CutMode = 'drop'): void {
    this.cutMode = mode;
    for (const pair of this.pairs) {
      if (mode === 'reset') this.destroy(pair);
      else pair.poisoned = true;
    }
  }

  restore(): void {
    this.cutMode = undefined;
    for (const pair of this.pairs) if (pair.poisoned) this.destroy(pair);
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) this.destroy(pair);
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.accepted++;
    const pair: Pair = { client, upstream: undefined, poisoned: false };
    this.pairs.add(pair);
    client.on('error', () => this.destroy(pair));
    client.on('close', () => this.destroy(pair));
    if (this.cutMode === 'reset') {
      this.destroy(pair);
      return;
    }
    if (this.cutMode === 'drop') {
      // Accepted, then silence: read and discard so the sender's buffers do not tell it anything.
      pair.poisoned = true;
      client.on('data', () => undefined);
      client.resume();
      return;
    }
    const upstream = net.connect({ host: this.target.host, port: this.target.port, noDelay: true });
    pair.upstream = upstream;
    upstream.on('error', () => this.destroy(pair));
    upstream.on('close', () => this.destroy(pair));
    upstream.on('connect', () => client.resume());
    // Forward by hand (not pipe) so a cut can silence a live connection without closing it.
    client.on('data', (chunk: Buffer) => {
      if (pair.poisoned) return;
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (pair.poisoned) return;
      if (!client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
    client.on('end', () => {
      if (!pair.poisoned) upstream.end();
    });
    upstream.on('end', () => {
      if (!pair.poisoned) client.end();
    });
  }

  private destroy(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}
