// Where execvp looks for a command: the path itself when it holds a slash, else each PATH entry
// in turn. Used to say why a command could not be started, never to choose what runs: the
// command is still started by name, as the user wrote it.
import { delimiter, join } from 'node:path';

export function commandCandidates(command: string, path: string | undefined): string[] {
  if (command.includes('/')) return [command];
  // Without PATH, execvp (glibc) and sh search /bin:/usr/bin.
  return (path ?? '/bin:/usr/bin').split(delimiter).filter(Boolean).map((dir) => join(dir, command));
}
