#!/usr/bin/env node
// A stand-in for an app that reads a secrets file whose path is in $SECRETS_FILE (run it with
// --inject-as file or --inject-as fd): JSON (--file-format json, which carries every value, a
// key with line breaks too) or dotenv. Prints names and lengths, never values.
import { readFileSync } from 'node:fs';
import { parse } from 'dotenv';

const path = process.env.SECRETS_FILE;
if (!path) {
  console.error('file-app: SECRETS_FILE is not set; run me with --inject-as file or --inject-as fd');
  process.exit(2);
}
const text = readFileSync(path, 'utf8');
const secrets = text.startsWith('{') ? JSON.parse(text) : parse(text);
console.log(`file-app: read ${Object.keys(secrets).length} secret(s) from ${path}`);
for (const [name, value] of Object.entries(secrets)) console.log(`  ${name} = ****** (${value.length} chars)`);
console.log(`file-app: secrets in my environment: ${Object.keys(process.env).filter((name) => name in secrets).length}`);
