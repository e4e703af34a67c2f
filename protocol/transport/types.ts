/**
 * What the server and the connection share: the logger shape, the fire-and-forget marker, and
 * close-reason formatting. No IO here.
 */

/**
 * The logging the transport needs: pino's Logger fits as it is (`createLogger('transport', id)`),
 * and tests pass a recorder. protocol/ imports nothing else of ours, so this is an interface.
 */
export interface TransportLogger {
  error(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

/** Used when no logger is given: errors and warnings as JSON lines on stderr, no debug. */
export const stderrLogger: TransportLogger = {
  error: (fields, message) => writeLine('error', fields, message),
  warn: (fields, message) => writeLine('warn', fields, message),
  debug: () => {},
};

function writeLine(level: string, fields: object, message: string): void {
  process.stderr.write(`${JSON.stringify({ level, component: 'transport', ...fields, msg: message })}\n`);
}

/**
 * What a handler returns for a fire-and-forget request (`RpcConnection.send`): the server sends
 * nothing back. RaftMessages works this way: Raft replies are messages in their own right.
 */
export const NO_RESPONSE: unique symbol = Symbol('tributary.noResponse');

/** WebSocket close reasons are at most 123 UTF-8 bytes (RFC 6455 §5.5: control frames ≤ 125 bytes). */
export function closeReason(text: string): string {
  if (Buffer.byteLength(text) <= 123) return text;
  let out = text.slice(0, 120);
  while (Buffer.byteLength(out) > 120) out = out.slice(0, -1);
  return `${out}...`;
}

/** Close codes the transport uses (RFC 6455 §7.4.1). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  /** Text frames: we speak binary msgpack only. */
  unsupportedData: 1003,
  /** Bytes that are not one msgpack request frame. */
  invalidPayload: 1007,
  policyViolation: 1008,
  /** Larger than frameBytesMax; ws sends this itself. */
  messageTooBig: 1009,
} as const;

export function describeClose(code: number, reason: Buffer | string): string {
  const text = typeof reason === 'string' ? reason : reason.toString('utf8');
  return text === '' ? `close code ${code}` : `close code ${code}: ${text}`;
}
