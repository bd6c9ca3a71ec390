#!/bin/sh
":" //; m=; [ -r /proc/self/status ] && while read -r k v; do case $k in SigIgn:) m=$v; break;; esac; done </proc/self/status; RWS_SIGNALS_IGNORED_AT_START=$m exec node -- "$0" "$@"
// Both a shell script and a module. Node resets every signal disposition when it starts, so the
// signals ignored by whoever started us (nohup, a background job) are read here, by sh, before
// node runs, and passed on in RWS_SIGNALS_IGNORED_AT_START (SigIgn of /proc/PID/status).
// `node --` stops Node from acting on flags such as --env-file that belong to us.
import { main } from '../dist/cli/main.js';
await main();
