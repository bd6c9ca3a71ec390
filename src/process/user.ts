// --user NAME[:GROUP]: the account the child runs as, looked up in /etc/passwd and /etc/group
// (Node has no getpwnam). Read only when the flag is given.
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';

export interface ChildUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export function resolveUser(spec: string, files: { passwd: string; group: string } = { passwd: '/etc/passwd', group: '/etc/group' }): ChildUser {
  const [userPart = '', groupPart, ...rest] = spec.split(':');
  if (userPart === '' || rest.length > 0 || groupPart === '') throw new UsageError(`--user ${JSON.stringify(spec.slice(0, 64))} must be NAME or NAME:GROUP`);
  const passwd = readTable(files.passwd);
  const entry = passwd.find((fields) => fields[0] === userPart) ?? (/^\d+$/.test(userPart) ? passwd.find((fields) => fields[2] === userPart) : undefined);
  if (!entry) throw new UsageError(`--user: no user ${JSON.stringify(userPart.slice(0, 64))} in ${files.passwd}`, 'check the name (getent passwd NAME)');
  const uid = Number(entry[2]);
  let gid = Number(entry[3]);
  if (groupPart !== undefined) {
    const group = readTable(files.group).find((fields) => fields[0] === groupPart) ?? (/^\d+$/.test(groupPart) ? [groupPart, '', groupPart] : undefined);
    if (!group) throw new UsageError(`--user: no group ${JSON.stringify(groupPart.slice(0, 64))} in ${files.group}`, 'check the name (getent group NAME)');
    gid = Number(group[2]);
  }
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new UsageError(`--user: malformed entry for ${userPart} in ${files.passwd}`);
  return { name: entry[0]!, uid, gid, home: entry[5] ?? '/' };
}

function readTable(path: string): string[][] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => line.split(':'));
  } catch {
    throw new UsageError(`--user: cannot read ${path}`);
  }
}

/** What the child's environment says about who it is, when it runs as another user. */
export function childUserEnv(user: ChildUser): Record<string, string> {
  return { HOME: user.home, USER: user.name, LOGNAME: user.name };
}
