/**
 * ApiVersions (Kafka key 18): which APIs and versions this server speaks. A client sends it first
 * on a new connection and then uses, per API, the highest version both sides support.
 */
import { ApiKey, defineApi } from '../api-keys.js';
import type { ProtocolLimits } from '../frame.js';
import { array, int16, int32, struct, type Infer } from '../schema.js';

function schemas(limits: ProtocolLimits) {
  const request = struct({});
  const response = struct({
    errorCode: int16,
    apiKeys: array(struct({ apiKey: int16, minVersion: int16, maxVersion: int16 }), { maxItems: limits.arrayItemsMax }),
    throttleTimeMs: int32,
  });
  return { request, response };
}

type Schemas = ReturnType<typeof schemas>;
export type ApiVersionsRequest = Infer<Schemas['request']>;
export type ApiVersionsResponse = Infer<Schemas['response']>;

export const ApiVersionsApi = defineApi({ apiKey: ApiKey.ApiVersions, name: 'ApiVersions', versions: { min: 0, max: 0 }, schemas });
