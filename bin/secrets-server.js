#!/usr/bin/env -S node --
// `node --` stops Node from acting on flags such as --env-file that belong to us.
// CommonJS like the wrapper's bin (bin/package.json); the server itself is ES modules.
import('../dist/server/cli.js').then((cli) => cli.main());
