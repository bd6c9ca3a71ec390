// Who besides the owner can actually read a file: its mode is not enough, since every directory
// above it must let them through (search permission). A 644 .env inside a 700 home or checkout
// is private in fact, and warning about it on every run teaches people to ignore warnings.
import { realpath, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export type Exposure = 'others' | 'group';

/**
 * 'others' when the file is readable by others and every directory above it is searchable by
 * others; 'group' when it is readable by its group and every directory above it is searchable
 * by that group (or by others); undefined when neither can reach it.
 */
export async function fileExposure(path: string): Promise<Exposure | undefined> {
  let real: string;
  let file;
  try {
    real = await realpath(path);
    file = await stat(real);
  } catch {
    return undefined;
  }
  const directories = [];
  for (let dir = dirname(real); ; dir = dirname(dir)) {
    try {
      directories.push(await stat(dir));
    } catch {
      return undefined;
    }
    if (dirname(dir) === dir) break;
  }
  const othersPass = directories.every((dir) => (dir.mode & 0o001) !== 0);
  if ((file.mode & 0o004) !== 0 && othersPass) return 'others';
  // Members of the file's group: through directories of that group with g+x, or open to others.
  const groupPasses = directories.every((dir) => (dir.mode & 0o001) !== 0 || (dir.gid === file.gid && (dir.mode & 0o010) !== 0));
  if ((file.mode & 0o040) !== 0 && groupPasses) return 'group';
  return undefined;
}
