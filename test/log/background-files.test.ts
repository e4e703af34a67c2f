/**
 * File work that can wait on the disk stays off the event loop: a replaced checkpoint and a deleted
 * segment or partition free their blocks in libuv's thread pool, never in a call the broker's
 * event loop makes.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  DELETED_DIR_SUFFIX,
  DELETED_SUFFIX,
  deleteDirInBackground,
  deleteFilesInBackground,
  isBeingRemoved,
  readOffsetCheckpoint,
  writeOffsetCheckpoint,
  writeOffsetCheckpointAsync,
} from '../../broker/log/checkpoint-file.js';
import { RECOVERY_POINT_FILE } from '../../broker/log/log-loader.js';
import { ManualClock } from '../../common/clock.js';
import { waitFor } from '../../common/wait.js';
import { T0, makeBatch, openLog, tempDir } from './helpers.js';

test('an asynchronous checkpoint replaces the file while the old one still has a second name', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'checkpoint');
  writeOffsetCheckpoint(file, 5);
  const oldInode = fs.statSync(file).ino;
  let linksAtRename = -1;
  const written = await writeOffsetCheckpointAsync(file, 9, () => {
    // The same tick as the rename: the file about to be replaced keeps a link under another
    // name, so the rename drops a link and frees no block.
    const st = fs.statSync(file);
    assert.equal(st.ino, oldInode);
    linksAtRename = st.nlink;
    return true;
  });
  assert.equal(written, true);
  assert.equal(linksAtRename, 2);
  assert.equal(readOffsetCheckpoint(file), 9);
  assert.equal(fs.statSync(file).nlink, 1);
  assert.deepEqual(fs.readdirSync(dir), ['checkpoint'], 'no temp file or second name left behind');
});

test('an asynchronous checkpoint no longer valid at its rename leaves the old file alone', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'checkpoint');
  writeOffsetCheckpoint(file, 5);
  assert.equal(await writeOffsetCheckpointAsync(file, 9, () => false), false);
  assert.equal(readOffsetCheckpoint(file), 5);
  assert.equal(fs.statSync(file).nlink, 1);
  assert.deepEqual(fs.readdirSync(dir), ['checkpoint']);
  // No file yet: written, nothing else left.
  const fresh = path.join(dir, 'fresh');
  assert.equal(await writeOffsetCheckpointAsync(fresh, 3, () => true), true);
  assert.equal(readOffsetCheckpoint(fresh), 3);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['checkpoint', 'fresh']);
});

test('concurrent asynchronous checkpoints of one file each use their own temp names', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'checkpoint');
  writeOffsetCheckpoint(file, 1);
  const renamed: number[] = [];
  const results = await Promise.all(
    [2, 3, 4, 5].map((v) =>
      writeOffsetCheckpointAsync(file, v, () => {
        renamed.push(v);
        return true;
      }),
    ),
  );
  assert.deepEqual(results, [true, true, true, true]);
  assert.equal(readOffsetCheckpoint(file), renamed.at(-1), 'the file holds the value renamed last');
  assert.deepEqual(fs.readdirSync(dir), ['checkpoint']);
});

test('deleted files leave their names at once and are unlinked in the background', async (t) => {
  const dir = tempDir(t);
  const a = path.join(dir, '00000000000000000000.log');
  const b = path.join(dir, '00000000000000000000.index');
  fs.writeFileSync(a, Buffer.alloc(64 * 1024, 1));
  fs.writeFileSync(b, 'x');
  deleteFilesInBackground([a, b, path.join(dir, 'missing')]);
  assert.equal(fs.existsSync(a), false);
  assert.equal(fs.existsSync(b), false);
  // Still there under their new names in this tick: the unlinks wait for the thread pool.
  assert.equal(fs.readdirSync(dir).filter((n) => n.endsWith(DELETED_SUFFIX)).length, 2);
  // A file created at once under the same name (a segment at the same base offset) is not touched.
  fs.writeFileSync(a, 'new');
  await waitFor('the .deleted files to go', () => !fs.readdirSync(dir).some((n) => n.endsWith(DELETED_SUFFIX)));
  assert.deepEqual(fs.readdirSync(dir), ['00000000000000000000.log']);
  assert.equal(fs.readFileSync(a, 'utf8'), 'new');
});

test('a deleted directory leaves its path at once and is removed in the background', async (t) => {
  const parent = tempDir(t);
  const dir = path.join(parent, 'topic-0');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'f'), 'x');
  const removal = deleteDirInBackground(dir);
  assert.equal(fs.existsSync(dir), false);
  const renamed = fs.readdirSync(parent).filter((n) => n.endsWith(DELETED_DIR_SUFFIX));
  assert.equal(renamed.length, 1, 'renamed in this tick, removed later');
  assert.equal(isBeingRemoved(path.join(parent, renamed[0]!)), true);
  fs.mkdirSync(dir); // the topic created again at once
  await removal;
  assert.equal(isBeingRemoved(path.join(parent, renamed[0]!)), false);
  assert.deepEqual(fs.readdirSync(parent), ['topic-0']);
  assert.deepEqual(fs.readdirSync(dir), []);
  await deleteDirInBackground(path.join(parent, 'missing')); // nothing to do, no throw
  assert.ok(!fs.readdirSync(parent).some((n) => n.endsWith(DELETED_DIR_SUFFIX)));
});

test('a log deletes retained segments in the background and its loader removes leftovers', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock(T0);
  const log = openLog(dir, { segmentBytes: 500, retentionMs: 1000 }, clock);
  for (let i = 0; i < 20; i++) log.appendAsLeader(makeBatch({ valueBytes: 100, timestampMs: T0 + i * 100 }), 0);
  const first = log.segmentBaseOffsets()[0]!;
  const firstLog = path.join(dir, `${String(first).padStart(20, '0')}.log`);
  assert.ok(log.deleteRetainedSegments(T0 + 1500, log.logEndOffset) > 0);
  assert.equal(fs.existsSync(firstLog), false, 'the segment left its name at once');
  assert.ok(fs.readdirSync(dir).some((n) => n.startsWith(path.basename(firstLog)) && n.endsWith(DELETED_SUFFIX)), 'and is unlinked later');
  await waitFor('the deleted segments to be unlinked', () => !fs.readdirSync(dir).some((n) => n.endsWith(DELETED_SUFFIX)));
  log.close();
  // A deletion the process did not finish (it stopped between the rename and the unlink).
  const leftover = path.join(dir, `00000000000000000999.log${DELETED_SUFFIX}`);
  fs.writeFileSync(leftover, 'x');
  const reopened = openLog(dir, { segmentBytes: 500, retentionMs: 1000 }, clock);
  assert.equal(fs.existsSync(leftover), false);
  reopened.close();
});

test('after a roll the recovery point moves in the background, past the rolled segment', async (t) => {
  const dir = tempDir(t);
  const log = openLog(dir, { segmentBytes: 500 });
  log.appendAsLeader(makeBatch({ valueBytes: 100 }), 0);
  log.flush(); // the epoch checkpoint synced: the background flush may move the recovery point
  const flushed = log.recoveryPoint;
  for (let i = 0; i < 6; i++) log.appendAsLeader(makeBatch({ valueBytes: 100 }), 0);
  assert.ok(log.segmentCount >= 2, 'rolled at least once');
  const rolledEnd = log.segmentBaseOffsets()[1]!;
  assert.ok(rolledEnd > flushed);
  await waitFor('the recovery point checkpoint', () => (readOffsetCheckpoint(path.join(dir, RECOVERY_POINT_FILE)) ?? 0) >= rolledEnd);
  await waitFor('the recovery point in memory', () => log.recoveryPoint >= rolledEnd);
  await waitFor('no temp file or second name left behind', () => !fs.readdirSync(dir).some((n) => n.endsWith('.tmp')));
  log.close();
});

test('the recovery point in memory moves in the same tick as its checkpoint file, so a truncation right after clamps the file', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, RECOVERY_POINT_FILE);
  const log = openLog(dir, { segmentBytes: 500 });
  log.appendAsLeader(makeBatch({ valueBytes: 100 }), 0);
  log.flush();
  const before = readOffsetCheckpoint(file);
  for (let i = 0; i < 3; i++) log.appendAsLeader(makeBatch({ valueBytes: 100 }), 0);
  const rolledEnd = log.segmentBaseOffsets()[1]!;
  // Poll every turn of the loop: the first turn that sees the new file must see memory agree.
  for (const until = Date.now() + 5000; readOffsetCheckpoint(file) === before; ) {
    assert.ok(Date.now() < until, 'timed out waiting for the checkpoint');
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.equal(readOffsetCheckpoint(file), rolledEnd);
  assert.equal(log.recoveryPoint, rolledEnd, 'memory already holds what the file says');
  log.truncateTo(rolledEnd - 1);
  assert.ok(readOffsetCheckpoint(file)! <= log.logEndOffset, 'the file never vouches for offsets past the log end');
  log.close();
});

test('rolls in quick succession move the recovery point to the last of them', async (t) => {
  const dir = tempDir(t);
  const log = openLog(dir, { segmentBytes: 500 });
  log.appendAsLeader(makeBatch({ valueBytes: 100 }), 0);
  log.flush();
  for (let i = 0; i < 12; i++) log.appendAsLeader(makeBatch({ valueBytes: 100 }), 0); // several rolls in one tick
  const bases = log.segmentBaseOffsets();
  assert.ok(bases.length >= 4);
  const lastRolledEnd = bases.at(-1)!;
  await waitFor('the recovery point to reach the last roll', () => log.recoveryPoint >= lastRolledEnd);
  assert.equal(readOffsetCheckpoint(path.join(dir, RECOVERY_POINT_FILE)), lastRolledEnd);
  log.close();
});
