/** The transport's public surface; see README.md. */
export { RpcConnection, type RequestOptions, type RpcConnectionOptions } from './connection.js';
export { ConnectionPool } from './pool.js';
export {
  RpcServer,
  handler,
  type AnyHandler,
  type Handler,
  type HandlerResult,
  type HttpRoutes,
  type RequestContext,
  type RpcServerOptions,
} from './server.js';
export { NO_RESPONSE, stderrLogger, type TransportLogger } from './types.js';
