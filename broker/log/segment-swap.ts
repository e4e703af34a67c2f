/**
 * Swapping cleaned segments into a log so that a crash at any point loses and duplicates nothing
 * (Kafka's `.cleaned` → `.swap` → live protocol, LocalLog.replaceSegments / LogLoader).
 *
 * The cleaner rewrites old segments [B, B2, …, Bk] (consecutive, closed) into one new segment
 * with base offset B. The steps, and what a restart makes of a crash after each:
 *
 *   step              files on disk afterwards                           restart does
 *   ----------------  -------------------------------------------------  -------------------------
 *   written           B.log.cleaned, B.index.cleaned, B.timeindex.cleaned discard: delete *.cleaned
 *                     (all fsynced); old segments untouched                 (old segments stand)
 *   manifest          + B.replaces.swap (old bases, fsynced), index files  discard: no B.log.swap,
 *                     renamed .cleaned → .swap                             so delete *.swap too
 *   committed         B.log.cleaned renamed to B.log.swap, dir fsynced     complete (below)
 *   old-deleted       old segments B2..Bk deleted (newest first)           complete
 *   indexes-replaced  B.index.swap, B.timeindex.swap renamed over B's      complete
 *   log-replaced      B.log.swap renamed over B.log, dir fsynced           delete the manifest
 *   done              manifest deleted                                     nothing
 *
 * The rename of `B.log.cleaned` to `B.log.swap` is the commit point: before it, the old segments
 * are the truth and every temporary file is garbage; from it on, the cleaned segment is the truth
 * and completing the swap is idempotent: delete whatever old segment the manifest lists that is
 * still there (B itself is replaced by renaming over it), rename whichever `.swap` index is still
 * there over B's index (if it is gone it was renamed already), rename the log last, fsync, drop
 * the manifest. The manifest names the replaced segments because the cleaned segment's own offsets
 * cannot tell: the cleaner may have removed every batch of the last ones.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fsyncDir } from './checkpoint-file.js';
import { CLEANED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, segmentFileName } from './segment.js';

export const SWAP_SUFFIX = '.swap';
const MANIFEST_SUFFIX = '.replaces';

/** The steps above, in order; a test hook may throw after any of them to simulate a crash. */
export const SWAP_STEPS = ['written', 'manifest', 'committed', 'old-deleted', 'indexes-replaced', 'log-replaced', 'done'] as const;
export type SwapStep = (typeof SWAP_STEPS)[number];

function file(dir: string, base: number, suffix: string, extra = ''): string {
  return path.join(dir, segmentFileName(base, suffix) + extra);
}

function renameIfPresent(from: string, to: string): boolean {
  try {
    fs.renameSync(from, to);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Carry out the swap for a cleaned segment already written and fsynced under `.cleaned` names
 * (data and both indexes; its file descriptors closed). `oldBases` are the segments it replaces,
 * oldest first, the first equal to `base`. The caller closes the old segments' files afterwards.
 */
export function swapInCleanedSegment(dir: string, base: number, oldBases: readonly number[], afterStep?: (step: SwapStep) => void): void {
  if (oldBases[0] !== base) throw new Error(`swap: cleaned segment ${base} must replace a segment starting at ${base}`);
  const step = (s: SwapStep) => afterStep?.(s);
  step('written');
  const manifest = file(dir, base, MANIFEST_SUFFIX, SWAP_SUFFIX);
  const fd = fs.openSync(manifest, 'w');
  try {
    fs.writeSync(fd, oldBases.join('\n') + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  for (const suffix of [INDEX_SUFFIX, TIME_INDEX_SUFFIX]) fs.renameSync(file(dir, base, suffix, CLEANED_SUFFIX), file(dir, base, suffix, SWAP_SUFFIX));
  step('manifest');
  fs.renameSync(file(dir, base, LOG_SUFFIX, CLEANED_SUFFIX), file(dir, base, LOG_SUFFIX, SWAP_SUFFIX));
  fsyncDir(dir);
  step('committed');
  completeSwap(dir, base, oldBases, step);
}

/** From the commit point on: the same code at run time and in recovery, so both finish alike. */
function completeSwap(dir: string, base: number, oldBases: readonly number[], step: (s: SwapStep) => void): void {
  for (let i = oldBases.length - 1; i >= 1; i--) {
    for (const suffix of [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX]) fs.rmSync(file(dir, oldBases[i]!, suffix), { force: true });
  }
  step('old-deleted');
  for (const suffix of [INDEX_SUFFIX, TIME_INDEX_SUFFIX]) renameIfPresent(file(dir, base, suffix, SWAP_SUFFIX), file(dir, base, suffix));
  step('indexes-replaced');
  fs.renameSync(file(dir, base, LOG_SUFFIX, SWAP_SUFFIX), file(dir, base, LOG_SUFFIX));
  fsyncDir(dir);
  step('log-replaced');
  fs.rmSync(file(dir, base, MANIFEST_SUFFIX, SWAP_SUFFIX), { force: true });
  step('done');
}

const TEMP_FILE = /^(\d{20})\.(log|index|timeindex|replaces)\.(cleaned|swap)$/;

/**
 * On open, before segments are listed: complete every committed swap (a `B.log.swap` exists) and
 * delete every other cleaner temporary. Returns how many swaps were completed.
 */
export function recoverSwaps(dir: string): number {
  const committed: number[] = [];
  const temporaries: string[] = [];
  for (const name of fs.readdirSync(dir)) {
    const match = TEMP_FILE.exec(name);
    if (match === null) continue;
    if (match[2] === 'log' && match[3] === 'swap') committed.push(Number(match[1]));
    else temporaries.push(name);
  }
  for (const base of committed) {
    completeSwap(dir, base, readManifest(dir, base), () => {});
  }
  // Whatever is left belongs to a swap that never reached its commit point, or is a manifest of
  // one that finished.
  for (const name of temporaries) fs.rmSync(path.join(dir, name), { force: true });
  if (committed.length > 0 || temporaries.length > 0) fsyncDir(dir);
  return committed.length;
}

function readManifest(dir: string, base: number): number[] {
  let text: string;
  try {
    text = fs.readFileSync(file(dir, base, MANIFEST_SUFFIX, SWAP_SUFFIX), 'utf8');
  } catch {
    // Written and fsynced before the commit, so only outside damage loses it: replace B alone
    // (anything else it replaced stays, still correct data, just not compacted).
    return [base];
  }
  const bases = text.split('\n').filter((l) => l.length > 0).map(Number);
  if (bases[0] !== base || bases.some((b) => !Number.isSafeInteger(b))) return [base];
  return bases;
}
