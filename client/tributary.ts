/**
 * Tributary: the SDK's entry point. Holds the client configuration and makes the three clients,
 * each with its own metadata cache and connections (as KafkaJS does):
 *
 *   const t = new Tributary({ clientId: 'app', bootstrap: ['ws://127.0.0.1:9092'] });
 *   const admin = t.admin(); const producer = t.producer({ acks: 'all' }); const consumer = t.consumer();
 */
import { TributaryError } from '../protocol/errors.js';
import { Admin } from './admin.js';
import { DEFAULT_RETRY, normaliseBootstrap, type ClusterOptions, type RetryOptions } from './cluster.js';
import { Consumer, type ConsumerOptions } from './consumer.js';
import { Producer, type ProducerOptions } from './producer.js';
import { positiveInt, nonNegativeInt } from '../protocol/options.js';

export interface TributaryConfig {
  /** Sent with every request; shows up in the brokers' logs. Default 'tributary'. */
  clientId?: string;
  /** Broker urls to start from (ws://host:port, or host:port). */
  bootstrap: string[];
  /** Deadline of one request. Default 30 000. */
  requestTimeoutMs?: number;
  /** TCP connect + WebSocket handshake. Default 10 000. */
  connectTimeoutMs?: number;
  /** Backoff between retries of a failed operation. */
  retry?: Partial<RetryOptions>;
  /** Two metadata refreshes start at least this far apart. Default 100. */
  metadataRefreshMinMs?: number;
}

export class Tributary {
  private readonly clusterOptions: ClusterOptions;
  private readonly retry: RetryOptions;

  constructor(config: TributaryConfig) {
    if (config === null || typeof config !== 'object') throw new TributaryError('INVALID_CONFIG', 'expected a config object { clientId, bootstrap }');
    if (!Array.isArray(config.bootstrap) || config.bootstrap.length === 0) {
      throw new TributaryError('INVALID_CONFIG', 'bootstrap: expected a non-empty array of broker urls, e.g. ["ws://127.0.0.1:9092"]');
    }
    const bootstrap = config.bootstrap.map(normaliseBootstrap);
    this.retry = {
      retries: nonNegativeInt('retry.retries', config.retry?.retries ?? DEFAULT_RETRY.retries),
      initialRetryTimeMs: positiveInt('retry.initialRetryTimeMs', config.retry?.initialRetryTimeMs ?? DEFAULT_RETRY.initialRetryTimeMs),
      maxRetryTimeMs: positiveInt('retry.maxRetryTimeMs', config.retry?.maxRetryTimeMs ?? DEFAULT_RETRY.maxRetryTimeMs),
    };
    if (this.retry.maxRetryTimeMs < this.retry.initialRetryTimeMs) {
      throw new TributaryError('INVALID_CONFIG', `retry.maxRetryTimeMs (${this.retry.maxRetryTimeMs}) is below retry.initialRetryTimeMs (${this.retry.initialRetryTimeMs})`);
    }
    this.clusterOptions = {
      clientId: config.clientId ?? 'tributary',
      bootstrap,
      requestTimeoutMs: positiveInt('requestTimeoutMs', config.requestTimeoutMs ?? 30_000),
      connectTimeoutMs: positiveInt('connectTimeoutMs', config.connectTimeoutMs ?? 10_000),
      metadataRefreshMinMs: nonNegativeInt('metadataRefreshMinMs', config.metadataRefreshMinMs ?? 100),
      retry: this.retry,
    };
  }

  admin(): Admin {
    return new Admin({ cluster: this.clusterOptions, retry: this.retry });
  }

  producer(options: ProducerOptions = {}): Producer {
    return new Producer({ cluster: this.clusterOptions, retry: this.retry }, options);
  }

  consumer(options: ConsumerOptions = {}): Consumer {
    return new Consumer({ cluster: this.clusterOptions, retry: this.retry }, options);
  }
}


