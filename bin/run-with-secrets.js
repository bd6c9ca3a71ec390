#!/bin/sh
":" //; m=; [ -r /proc/self/status ] && while read -r k v; do case $k in SigIgn:) m=$v; break;; esac; done </proc/self/status; command -v node >/dev/null || { printf '%s\n' "run-with-secrets: error RWS_NODE_NOT_FOUND: node is not on PATH ($PATH) (hint: install Node.js 20.19 or later, or add the directory of node to PATH where run-with-secrets is started: cron sets PATH=/usr/bin:/bin)" >&2; exit 125; }; RWS_SIGNALS_IGNORED_AT_START=$m exec node -- "$0" "$@"
// Both a shell script and a CommonJS module (bin/package.json): Node's CommonJS loader starts
// faster than its ES module loader, and every cron run pays for it (build/bundle-cli.mjs). The
// CLI is loaded through dist/cli/loader.cjs, which uses the V8 code cache a local build made.
// Node resets every signal disposition when it starts, so the signals ignored by whoever
// started us (nohup, a background job) are read here, by sh, before node runs, and passed on in
// RWS_SIGNALS_IGNORED_AT_START (SigIgn of /proc/PID/status).
// `node --` stops Node from acting on flags such as --env-file that belong to us. Without node on
// PATH, sh would say "exec: node: not found" and exit 127, which reads as the command not found.
const loader = require('../dist/cli/loader.cjs');
loader.load(require('node:path').join(__dirname, '..', 'dist', 'cli', 'main.cjs')).main({ codeCache: loader.summary });
