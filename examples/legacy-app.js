#!/usr/bin/env node
// A stand-in for a legacy app that reads its configuration from environment variables. It prints
// which secret names it received, never the values (only their length), and which other
// variables it was given, so you can see what run-with-secrets trimmed away.
const prefix = process.argv[2] ?? 'DEMO_';
const secrets = Object.keys(process.env).filter((name) => name.startsWith(prefix)).sort();
console.log(`legacy-app: received ${secrets.length} secret(s) from the environment`);
for (const name of secrets) console.log(`  ${name} = ****** (${process.env[name].length} chars)`);
const others = Object.keys(process.env).filter((name) => !name.startsWith(prefix)).sort();
console.log(`legacy-app: other variables: ${others.join(', ')}`);
