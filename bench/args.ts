/** Flags and entry points shared by the benchmarks. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** `--NAME N` as a positive integer, or `fallback`; throws naming the flag otherwise. */
export function positiveIntFlag(argv: readonly string[], name: string, fallback: number): number {
  const at = argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(argv[at + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} needs a positive integer, got ${JSON.stringify(argv[at + 1] ?? '')}`);
  return value;
}

/** True when the module at `moduleUrl` is the script node was started with. */
export function isMainModule(moduleUrl: string): boolean {
  const entry = process.argv[1];
  return entry !== undefined && path.resolve(entry) === fileURLToPath(moduleUrl);
}

/** Run a benchmark as a script: a bad flag is one line on stderr and exit code 2. */
export async function runAsScript(run: (argv: readonly string[]) => Promise<void>): Promise<void> {
  try {
    await run(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
}
