/**
 * One binary WebSocket message written from pieces, by reference: the frame header, then the
 * pieces (Protocol.encodeRequestChunks / encodeResponseChunks), straight onto the TCP socket
 * under a `ws` WebSocket in one writev. ws's own send takes one buffer, so a message made of
 * pieces would otherwise be joined first: a copy of every record byte. (Sending the pieces as
 * fragments of one message instead made the receiver copy the bytes twice, each fragment and
 * then the message, which cost as much as the copy saved.)
 *
 * Writing to the socket beside ws is safe while ws's sender has nothing queued (it queues only
 * for compression, which is off here, and for Blobs, which we never send): every frame it wrote
 * is then already in the socket's write queue, ahead of ours. When it does hold something, the
 * caller joins the pieces and sends through ws.
 *
 * A client's frames must carry a masking key (RFC 6455 5.3). Ours is all zeros (ZERO_MASK, given
 * to ws as generateMask), so the payload is its own masked form and the pieces go out as they
 * are; ws skips the XOR for a zero key on both sides. The RFC asks for an unpredictable key to
 * protect HTTP intermediaries from payloads chosen by browser scripts (section 10.3); the SDK is a
 * Node.js client that talks to brokers directly, so there is no such script to defend against.
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** ws's generateMask for the SDK's connections: the all-zero key (see the header). */
export function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

interface WsInternals {
  _socket?: Duplex;
  _sender?: { _state?: number; _queue?: unknown[] };
}

/** The TCP socket under a WebSocket (ws keeps it in `_socket`). */
export function socketOf(ws: WebSocket): Duplex | undefined {
  return (ws as unknown as WsInternals)._socket;
}

/**
 * Write `pieces` as one final binary frame, masked with the zero key when `masked` (a client).
 * Returns false, writing nothing, when it cannot go around ws now (not open, or ws's sender holds
 * queued frames); the caller then sends Buffer.concat(pieces) through ws. `cb` runs once the last
 * piece is written, as ws.send's callback would.
 */
export function writeFramePieces(ws: WebSocket, pieces: readonly Buffer[], masked: boolean, cb?: (error?: Error | null) => void): boolean {
  const socket = socketOf(ws);
  const sender = (ws as unknown as WsInternals)._sender;
  if (socket === undefined || ws.readyState !== ws.OPEN || sender?._state !== 0 || sender._queue?.length !== 0) return false;
  let length = 0;
  for (const piece of pieces) length += piece.length;
  socket.cork();
  socket.write(frameHeader(length, masked));
  const last = pieces.length - 1;
  for (let i = 0; i < last; i++) socket.write(pieces[i]!);
  socket.write(pieces[last]!, cb);
  socket.uncork();
  return true;
}

/** The header of a final binary frame (RFC 6455 5.2); with `masked`, the mask bit and a zero key. */
export function frameHeader(payloadBytes: number, masked: boolean): Buffer {
  const lengthBytes = payloadBytes < 126 ? 0 : payloadBytes <= 0xffff ? 2 : 8;
  const header = Buffer.alloc(2 + lengthBytes + (masked ? 4 : 0)); // zeroed: the mask key is 0
  header[0] = 0x82;
  header[1] = (masked ? 0x80 : 0) | (lengthBytes === 0 ? payloadBytes : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) header.writeUInt16BE(payloadBytes, 2);
  else if (lengthBytes === 8) header.writeBigUInt64BE(BigInt(payloadBytes), 2);
  return header;
}
