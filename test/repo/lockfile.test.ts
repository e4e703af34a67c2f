import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

interface LockEntry {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

// `npm ci` on a fresh machine refuses a lock whose entries name packages it has no entry for.
// Our registry lacks some platforms' optional prebuilds, so `npm install` can write such a lock;
// `node .ci/prune-lock.mjs` repairs it.
test('every dependency named in package-lock.json has an entry, so npm ci accepts the lock', () => {
  const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, LockEntry> };
  const dangling: string[] = [];
  for (const [where, entry] of Object.entries(lock.packages)) {
    for (const name of [...Object.keys(entry.dependencies ?? {}), ...Object.keys(entry.optionalDependencies ?? {})]) {
      // Node resolution: look in this package's node_modules, then each ancestor's.
      let dir = where;
      let found = false;
      for (;;) {
        if (lock.packages[`${dir ? dir + '/' : ''}node_modules/${name}`] !== undefined) {
          found = true;
          break;
        }
        if (dir === '') break;
        const cut = dir.lastIndexOf('/node_modules/');
        dir = cut === -1 ? '' : dir.slice(0, cut);
      }
      if (!found) dangling.push(`${where || '(root)'} -> ${name}`);
    }
  }
  assert.deepEqual(dangling, [], 'run `node .ci/prune-lock.mjs` after npm install');
});
