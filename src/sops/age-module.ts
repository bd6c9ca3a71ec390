// age-encryption ships only as an ES module. It is loaded with import(), when a data key is
// opened or made, so that the wrapper's CommonJS build can reach it (a CommonJS require() of an
// ES module fails on Node 20) and runs that read no SOPS file never load it.
type Age = typeof import('age-encryption');

let loading: Promise<Age> | undefined;

export function ageModule(): Promise<Age> {
  loading ??= import('age-encryption');
  return loading;
}
