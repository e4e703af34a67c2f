#!/usr/bin/env node
// The `tributary` command: a thin shim so `npx tributary` works from a clone after `npm ci`
// (which runs `prepare`, i.e. tsc). The CLI itself lives in cli/.
import '../dist/cli/main.js';
