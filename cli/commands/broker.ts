/**
 * `tributary broker`: run one broker in the foreground. SIGTERM/SIGINT → controlled shutdown
 * (leadership moves to other replicas first), then the logs are flushed and closed.
 */
import type { CommandModule } from 'yargs';
import { ConfigFileError } from '../../common/properties.js';
import { loadBrokerConfig } from '../../broker/config.js';
import { BrokerServer } from '../../broker/broker-server.js';
import { UsageError } from '../usage-error.js';
import { tuneBrokerHeap } from '../heap-tuning.js';

interface BrokerArgs {
  config?: string;
  id?: number;
  listen?: string;
  controllers?: string;
  data?: string;
  advertised?: string;
}

export const brokerCommand: CommandModule<object, BrokerArgs> = {
  command: 'broker',
  describe: 'run one broker',
  builder: (y) =>
    y
      .option('config', { type: 'string', describe: 'properties file (node.id, listeners, controller.quorum.voters, log.dirs, replica.lag.time.max.ms, ...)' })
      .option('id', { type: 'number', describe: 'broker id (overrides node.id)' })
      .option('listen', { type: 'string', describe: 'HOST:PORT to listen on (overrides listeners)' })
      .option('controllers', { type: 'string', describe: 'the controller quorum: 1@HOST:PORT,2@HOST:PORT,3@HOST:PORT' })
      .option('data', { type: 'string', describe: 'data directory (overrides log.dirs)' })
      .option('advertised', { type: 'string', describe: 'URL clients use to reach this broker (default ws://LISTEN)' }) as never,
  handler: async (args) => {
    if (args.id !== undefined && (!Number.isInteger(args.id) || args.id < 0)) throw new UsageError(`--id must be a non-negative integer, got ${args.id}`);
    let config;
    try {
      config = loadBrokerConfig(args);
    } catch (error) {
      if (error instanceof ConfigFileError) throw new UsageError(error.message);
      throw error;
    }
    tuneBrokerHeap();
    const broker = await BrokerServer.start(config);
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', () => resolve());
      process.once('SIGINT', () => resolve());
    });
    await broker.close({ controlled: true });
  },
};
