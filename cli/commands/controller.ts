/**
 * `tributary controller`: run one member of the controller quorum in the foreground until
 * SIGTERM/SIGINT, then close cleanly (the Raft log and tables are in SQLite; nothing is lost).
 */
import type { CommandModule } from 'yargs';
import { ConfigFileError } from '../../common/properties.js';
import { loadControllerConfig } from '../../controller/config.js';
import { ControllerServer } from '../../controller/controller-server.js';
import { UsageError } from '../usage-error.js';

interface ControllerArgs {
  config?: string;
  id?: number;
  listen?: string;
  voters?: string;
  data?: string;
}

export const controllerCommand: CommandModule<object, ControllerArgs> = {
  command: 'controller',
  describe: 'run one member of the controller Raft quorum',
  builder: (y) =>
    y
      .option('config', { type: 'string', describe: 'properties file (node.id, listeners, controller.quorum.voters, log.dirs, ...)' })
      .option('id', { type: 'number', describe: 'node id (overrides node.id)' })
      .option('listen', { type: 'string', describe: 'HOST:PORT to listen on (overrides listeners)' })
      .option('voters', { type: 'string', describe: 'the quorum: 1@HOST:PORT,2@HOST:PORT,3@HOST:PORT' })
      .option('data', { type: 'string', describe: 'data directory (overrides log.dirs)' }) as never,
  handler: async (args) => {
    if (args.id !== undefined && (!Number.isInteger(args.id) || args.id < 1)) throw new UsageError(`--id must be a positive integer, got ${args.id}`);
    let config;
    try {
      config = loadControllerConfig(args);
    } catch (error) {
      if (error instanceof ConfigFileError) throw new UsageError(error.message);
      throw error;
    }
    const server = await ControllerServer.start(config);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    await server.close();
  },
};
