/**
 * Logging: one pino root per process, child loggers tagged with the component and node id so
 * every line says who wrote it (`{"component":"broker","nodeId":2,...}`).
 *
 * Logs go to stderr: stdout belongs to the CLI's output (`tributary consume` prints records there).
 * The level comes from TRIBUTARY_LOG_LEVEL (default `info`; tests run `silent` unless told).
 */
import { pino, type Logger } from 'pino';

export type { Logger };

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

function levelFromEnv(): string {
  const wanted = process.env.TRIBUTARY_LOG_LEVEL;
  if (wanted !== undefined && LEVELS.has(wanted)) return wanted;
  return process.env.NODE_TEST_CONTEXT !== undefined ? 'silent' : 'info';
}

let root: Logger | undefined;

/** The process's root logger, created on first use. */
export function rootLogger(): Logger {
  root ??= pino({ level: levelFromEnv(), base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }));
  return root;
}

/** A child logger for one component of one node: `createLogger('broker', 2)`. */
export function createLogger(component: string, nodeId?: number, extra: Record<string, unknown> = {}): Logger {
  const bindings: Record<string, unknown> = { component, ...extra };
  if (nodeId !== undefined) bindings.nodeId = nodeId;
  return rootLogger().child(bindings);
}
