/**
 * Kafka-style `.properties` config files: `key=value` lines, `#` or `!` comments, blank lines
 * ignored, whitespace around keys and values trimmed. Operators' existing habits carry over.
 */
import { readFileSync } from 'node:fs';

export class ConfigFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigFileError';
  }
}

export const CONFIG_FILE_BYTES_MAX = 1024 * 1024;

export function parseProperties(text: string, source = 'config'): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('!')) continue;
    const eq = line.search(/[=:]/);
    if (eq <= 0) throw new ConfigFileError(`${source}:${i + 1}: expected key=value, got "${line}"`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (out.has(key)) throw new ConfigFileError(`${source}:${i + 1}: ${key} is set twice`);
    out.set(key, value);
  }
  return out;
}

export function readPropertiesFile(path: string): Map<string, string> {
  let text: string;
  try {
    const buf = readFileSync(path);
    if (buf.length > CONFIG_FILE_BYTES_MAX) throw new ConfigFileError(`${path}: larger than ${CONFIG_FILE_BYTES_MAX} bytes`);
    text = buf.toString('utf8');
  } catch (error) {
    if (error instanceof ConfigFileError) throw error;
    throw new ConfigFileError(`cannot read config file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  return parseProperties(text, path);
}

/** `host:port` with a port in 0..65535 (0 = ephemeral). */
export function parseHostPort(value: string, what: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(value.trim());
  if (m === null) throw new ConfigFileError(`${what}: expected HOST:PORT, got "${value}"`);
  const port = Number(m[2]);
  if (port > 65535) throw new ConfigFileError(`${what}: port ${port} is above 65535`);
  return { host: m[1]!, port };
}

/** Kafka's `controller.quorum.voters` form: `1@host:port,2@host:port,3@host:port`. */
export function parseVoters(value: string, what = 'voters'): Map<number, { host: string; port: number }> {
  const out = new Map<number, { host: string; port: number }>();
  for (const part of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const at = part.indexOf('@');
    if (at <= 0) throw new ConfigFileError(`${what}: expected ID@HOST:PORT, got "${part}"`);
    const id = Number(part.slice(0, at));
    if (!Number.isInteger(id) || id < 1 || id > 0x7fffffff) throw new ConfigFileError(`${what}: "${part.slice(0, at)}" is not a positive node id`);
    if (out.has(id)) throw new ConfigFileError(`${what}: node id ${id} appears twice`);
    out.set(id, parseHostPort(part.slice(at + 1), `${what} (node ${id})`));
  }
  if (out.size === 0) throw new ConfigFileError(`${what}: no voters given`);
  return out;
}

/** A positive integer option, or the default; a clear error naming the key otherwise. */
export function intOption(props: ReadonlyMap<string, string>, key: string, defaultValue: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = props.get(key);
  if (raw === undefined) return defaultValue;
  if (!/^-?\d+$/.test(raw)) throw new ConfigFileError(`${key}=${raw}: expected an integer`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigFileError(`${key}=${raw}: must be between ${min} and ${max}`);
  return n;
}

export function boolOption(props: ReadonlyMap<string, string>, key: string, defaultValue: boolean): boolean {
  const raw = props.get(key);
  if (raw === undefined) return defaultValue;
  if (raw !== 'true' && raw !== 'false') throw new ConfigFileError(`${key}=${raw}: expected true or false`);
  return raw === 'true';
}
