/**
 * Small text checkpoints in the partition directory (recovery point, high watermark, leader
 * epochs). Kafka's layout: a version line, then the payload lines. Written atomically — temp
 * file, fsync, rename, fsync the directory — so a crash leaves either the old file or the new
 * one, never a torn mix. A missing or unparsable file reads as null and the caller falls back
 * (a full recovery scan, a rebuild from batch headers), so damage costs time, never data.
 */
import fs from 'node:fs';
import path from 'node:path';

export const CHECKPOINT_VERSION = 0;
export const TEMP_SUFFIX = '.tmp';

/** Bound on what we are willing to parse; a leader-epoch file with a million epochs is damage. */
const CHECKPOINT_BYTES_MAX = 16 * 1024 * 1024;

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Replace `file` by writing a temp file and renaming it over. With `sync` (the default) the temp
 * file and the directory are fsynced too, so the new contents survive power loss; without, a
 * crash may leave the old file (never a torn one once the rename is visible).
 */
export function writeFileAtomic(file: string, contents: string | Buffer, sync = true): void {
  const temp = file + TEMP_SUFFIX;
  const fd = fs.openSync(temp, 'w');
  try {
    fs.writeFileSync(fd, contents);
    if (sync) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temp, file);
  if (sync) fsyncDir(path.dirname(file));
}

/** Payload lines after the version line, or null when the file is missing or not ours. */
export function readCheckpointLines(file: string): string[] | null {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile() || stat.size > CHECKPOINT_BYTES_MAX) return null;
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0 || lines[0] !== String(CHECKPOINT_VERSION)) return null;
  return lines.slice(1);
}

/** The file's text: the version line, then the payload lines. */
function checkpointText(lines: readonly string[]): string {
  return [String(CHECKPOINT_VERSION), ...lines].join('\n') + '\n';
}

export function writeCheckpointLines(file: string, lines: readonly string[], sync = true): void {
  writeFileAtomic(file, checkpointText(lines), sync);
}

/** fsync a file or directory by path, the wait in libuv's thread pool (fsyncDir's async twin). */
export async function fsyncPathAsync(file: string): Promise<void> {
  const handle = await fs.promises.open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Parse a non-negative safe integer written by us; anything else is damage. */
export function parseOffset(text: string | undefined): number | null {
  if (text === undefined || !/^\d{1,16}$/.test(text)) return null;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : null;
}

/** A checkpoint holding one offset: `0\n<offset>\n`. */
export function readOffsetCheckpoint(file: string): number | null {
  const lines = readCheckpointLines(file);
  if (lines === null || lines.length !== 1) return null;
  return parseOffset(lines[0]);
}

export function writeOffsetCheckpoint(file: string, offset: number): void {
  writeCheckpointLines(file, [String(offset)]);
}

/**
 * writeOffsetCheckpoint off the event loop: the same temp file, fsync, rename, directory fsync,
 * with the waits in libuv's thread pool, for periodic checkpoints of many partitions (one fsync
 * each would stall appends). Its own temp name (still `*.tmp`, which the loader removes), so it
 * cannot mix with a synchronous write of the same file. `stillValid` is asked right before the
 * rename, which happens in the same tick: if the value is no longer right to save (the caller's
 * state moved on while the bytes were being synced), the temp file is dropped and it returns false.
 */
export async function writeOffsetCheckpointAsync(file: string, offset: number, stillValid: () => boolean): Promise<boolean> {
  const temp = `${file}.async${TEMP_SUFFIX}`;
  const handle = await fs.promises.open(temp, 'w');
  try {
    await handle.writeFile(checkpointText([String(offset)]));
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (!stillValid()) {
    await fs.promises.rm(temp, { force: true });
    return false;
  }
  fs.renameSync(temp, file);
  await fsyncPathAsync(path.dirname(file));
  return true;
}
