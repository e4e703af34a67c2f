/**
 * `tributary`: the command line. Thin by design: parse and validate arguments, then call the SDK
 * or start a process, then print. Each command lives in cli/commands/ and is registered here.
 *
 * Every error ends as one line on stderr naming its cause and a non-zero exit code:
 * 2 for bad usage (unknown command, bad flag), 1 for an operation that failed.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { TributaryError } from '../protocol/errors.js';
import { brokerCommand } from './commands/broker.js';
import { clusterCommand } from './commands/cluster.js';
import { consumeCommand } from './commands/consume.js';
import { controllerCommand } from './commands/controller.js';
import { dumpLogCommand } from './commands/dump-log.js';
import { groupsCommand } from './commands/groups.js';
import { produceCommand } from './commands/produce.js';
import { topicsCommand } from './commands/topics.js';
import { UsageError } from './usage-error.js';

export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

function fail(message: string, code: number): never {
  process.stderr.write(`tributary: ${message.split('\n')[0]}\n`);
  process.exit(code);
}

export async function main(argv: string[]): Promise<void> {
  const parser = yargs(argv)
    .scriptName('tributary')
    .usage('$0 <command> [options]\n\nA partitioned, replicated message broker.')
    .command(controllerCommand)
    .command(brokerCommand)
    .command(clusterCommand)
    .command(dumpLogCommand)
    .command(topicsCommand)
    .command(produceCommand)
    .command(consumeCommand)
    .command(groupsCommand)
    .demandCommand(1, 'name a command (see --help)')
    .recommendCommands()
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((message, error) => {
      if (error !== undefined && error !== null) throw error;
      fail(message, EXIT_USAGE);
    });
  try {
    await parser.parseAsync();
  } catch (error) {
    if (error instanceof UsageError) fail(error.message, EXIT_USAGE);
    if (error instanceof TributaryError) fail(error.message, EXIT_FAILED);
    if (error instanceof Error) fail(error.message, EXIT_FAILED);
    fail(String(error), EXIT_FAILED);
  }
}

await main(hideBin(process.argv));
