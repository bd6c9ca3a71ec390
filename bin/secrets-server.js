#!/usr/bin/env -S node --
// `node --` stops Node from acting on flags such as --env-file that belong to us.
import { main } from '../dist/server/cli.js';
await main();
