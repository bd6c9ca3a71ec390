// Values of flags that take one: yargs makes a flag given twice an array (`--store a --store b`
// reached fs calls as "a,b" and came out as an internal error; `--log-format json --log-format
// text` quietly logged nothing), and reads a number flag's empty value as 0 (`--port=$PORT` with
// PORT unset listened on a random port). These coercions make each a usage error (exit 2).

/** A flag given more than once: which value was meant is a guess, so none is taken; nor is an empty one. */
export function once(flag: string): (value: unknown) => unknown {
  return (value) => {
    if (Array.isArray(value)) throw new Error(`--${flag} is given more than once; give it once`);
    if (value === '') throw new Error(`--${flag} is given an empty value (an unset variable?); give it a value or leave it out`);
    return value;
  };
}

/**
 * An integer flag, declared `type: 'string'` so that its text arrives here: decimal digits become
 * the number; anything else (`0x1F90`, `1e3`, `8200abc`) is passed on as text for the
 * command's range check to refuse by name.
 */
export function integer(flag: string): (value: unknown) => unknown {
  const single = once(flag);
  return (value) => {
    single(value);
    return typeof value === 'string' && /^-?[0-9]+$/.test(value) ? Number(value) : value;
  };
}
