// The dotenv package's parser, loaded through require: dotenv is CommonJS, and importing it as
// ESM costs ~5 ms more (Node parses it for named exports), paid by every local run.
import { createRequire } from 'node:module';

type Parse = (text: string) => Record<string, string>;
let parse: Parse | undefined;

export function dotenvParse(text: string): Record<string, string> {
  parse ??= (createRequire(import.meta.url)('dotenv') as { parse: Parse }).parse;
  return parse(text);
}
