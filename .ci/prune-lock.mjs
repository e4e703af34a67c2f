#!/usr/bin/env node
// The npm registry reachable from our machines serves only Linux builds of some optional
// platform packages (msgpackr-extract's darwin/win32 prebuilds 404). `npm install` then writes a
// lock whose entries name optional dependencies it has no entry for, and `npm ci` refuses it.
// This drops those dangling optional names. Run it after `npm install`; test/repo/lockfile.test.ts
// fails when it is needed.
import { readFileSync, writeFileSync } from 'node:fs';
const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
let pruned = 0;
for (const [where, entry] of Object.entries(lock.packages)) {
  for (const name of Object.keys(entry.optionalDependencies ?? {})) {
    const nested = `${where ? where + '/' : ''}node_modules/${name}`;
    if (!lock.packages[nested] && !lock.packages[`node_modules/${name}`]) {
      delete entry.optionalDependencies[name];
      pruned++;
    }
  }
}
writeFileSync(path, JSON.stringify(lock, null, 2) + '\n');
console.log(`pruned ${pruned} dangling optional dependencies`);
