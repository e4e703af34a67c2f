/**
 * The SDK's errors: every failure the world can cause is a TributaryError with `.code` (Kafka's
 * name), `.retriable` and an optional `.cause`. The table lives in protocol/errors.ts (one table
 * for the wire, the servers and the SDK); it is re-exported here for SDK users.
 */
export { ERRORS, TributaryError, errorNameOf, type ErrorName } from '../protocol/errors.js';
