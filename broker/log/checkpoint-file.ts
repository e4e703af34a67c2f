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

/** Distinct temp names for concurrent asynchronous writes (of different files, or of one). */
let asyncWriteSeq = 0;

/**
 * writeOffsetCheckpoint off the event loop: the same temp file, fsync, rename, directory fsync,
 * with the waits in libuv's thread pool, for periodic checkpoints of many partitions (one fsync
 * each would stall appends). Its own temp names (still `*.tmp`, which the loader removes), so it
 * cannot mix with a synchronous write of the same file or with another asynchronous one.
 * `stillValid` is asked right before the rename, which happens in the same tick: if the value is
 * no longer right to save (the caller's state moved on while the bytes were being synced), the
 * temp file is dropped and it returns false. `onRenamed` runs right after the rename, in the same
 * tick too, so the caller's memory of what the file says is never behind the file: the directory
 * fsync that follows only makes the rename durable.
 *
 * The rename itself must not free blocks on the event loop: replacing a file frees the old one's
 * blocks, and on a filesystem mounted with `discard` that is a discard the caller waits for (50 to
 * 130 ms under the produce load on our standard machine, every checkpoint interval, in every
 * broker at once). So the old file first gets a second name on the thread pool; the rename then
 * only drops a link, and the unlink of the second name frees the blocks on the thread pool.
 */
export async function writeOffsetCheckpointAsync(
  file: string,
  offset: number,
  stillValid: () => boolean,
  onRenamed: () => void = () => {},
): Promise<boolean> {
  const seq = asyncWriteSeq++;
  const temp = `${file}.${seq}.async${TEMP_SUFFIX}`;
  const retired = `${file}.${seq}.old${TEMP_SUFFIX}`;
  const handle = await fs.promises.open(temp, 'w');
  try {
    await handle.writeFile(checkpointText([String(offset)]));
    await handle.sync();
  } finally {
    await handle.close();
  }
  let linked = false;
  try {
    await fs.promises.link(file, retired);
    linked = true;
  } catch {
    // No old file yet (ENOENT), or a filesystem without hard links: the rename frees what it frees.
  }
  if (!stillValid()) {
    await Promise.all([fs.promises.rm(temp, { force: true }), linked ? fs.promises.rm(retired, { force: true }) : undefined]);
    return false;
  }
  fs.renameSync(temp, file);
  onRenamed();
  if (linked) await fs.promises.rm(retired, { force: true });
  await fsyncPathAsync(path.dirname(file));
  return true;
}

/** What a file removed by deleteFilesInBackground is called until the thread pool unlinks it. */
export const DELETED_SUFFIX = '.deleted';

/**
 * Remove files without freeing their blocks on the event loop (see writeOffsetCheckpointAsync: a
 * freed block can be a discard the caller waits for, and a 1 GiB segment is 262,144 of them). Each
 * file is renamed to `<name>.<unique>.deleted`, which frees nothing, and unlinked on libuv's thread
 * pool; the rename also frees the name at once for a file created in its place (a segment at the
 * same base offset after a truncation). Kafka renames a deleted segment to `.deleted` and removes
 * it later on a background thread for the same reasons. The loader removes leftovers.
 */
export function deleteFilesInBackground(files: readonly string[]): void {
  for (const file of files) {
    // A name of its own: renaming over a pending one would free that one's blocks right here.
    const doomed = `${file}.${uniqueSuffix()}${DELETED_SUFFIX}`;
    try {
      fs.renameSync(file, doomed);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    // A failure leaves the file for the loader to remove at the next start.
    fs.promises.rm(doomed, { force: true }).catch(() => undefined);
  }
}

/** What a directory removed by deleteDirInBackground ends with until the thread pool removes it. */
export const DELETED_DIR_SUFFIX = '-delete';

/**
 * Remove a directory tree the same way: renamed on the event loop to `<dir>.<unique>-delete`
 * (Kafka's name for a deleted partition's directory), removed on the thread pool. Returns the
 * promise of the removal, for tests; callers need not wait for it.
 */
export function deleteDirInBackground(dir: string): Promise<void> {
  const doomed = `${dir}.${uniqueSuffix()}${DELETED_DIR_SUFFIX}`;
  try {
    fs.renameSync(dir, doomed);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Promise.resolve();
    throw err;
  }
  removingDirs.add(doomed);
  // Retries: an asynchronous checkpoint started before the rename may still be closing a file.
  return fs.promises
    .rm(doomed, { recursive: true, force: true, maxRetries: 5, retryDelay: 10 })
    .catch(() => undefined)
    .finally(() => removingDirs.delete(doomed));
}

/** Directories this process renamed for removal and is still removing. */
const removingDirs = new Set<string>();

/** Whether `dir` is a removal this process has under way (a sweep must not start a second one). */
export function isBeingRemoved(dir: string): boolean {
  return removingDirs.has(dir);
}

function uniqueSuffix(): string {
  return `${process.pid.toString(36)}${Date.now().toString(36)}${(asyncWriteSeq++).toString(36)}`;
}
