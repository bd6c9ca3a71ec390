// Why a command could not be started, in the words and with the status a shell would use: 127
// for what is not there, 126 for what is there but cannot run, 125 when the fault is ours.
import { EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, SpawnError } from '../errors.js';
import { missingInterpreter } from './interpreter.js';
import { envTooLarge } from '../inject/env-limits.js';

export function spawnFailure(command: string, error: unknown, path: string | undefined): SpawnError {
  const code = (error as NodeJS.ErrnoException).code;
  const interpreter = code === 'ENOENT' ? missingInterpreter(command, path) : undefined;
  if (interpreter !== undefined) {
    // 127, as sh and bash answer for it.
    const hint = interpreter.endsWith('\r')
      ? "the script has Windows line endings (CRLF): convert it (dos2unix, or sed -i 's/\\r$//')"
      : "install that interpreter, or correct the script's #! line";
    return new SpawnError('RWS_COMMAND_NOT_FOUND', `cannot execute ${command}: its #! line names the interpreter ${interpreter}, which does not exist`, EXIT_NOT_FOUND, hint);
  }
  // `-- "$CMD"` with CMD unset: Node refuses the empty name before any exec (ERR_INVALID_ARG_VALUE);
  // a shell says "command not found" for it, and so do we.
  if (code === 'ENOENT' || (command === '' && code === 'ERR_INVALID_ARG_VALUE')) {
    return new SpawnError('RWS_COMMAND_NOT_FOUND', `command not found: ${command === '' ? "'' (an empty name)" : command}`, EXIT_NOT_FOUND, 'check the command name and the PATH the child gets (see --dry-run)');
  }
  if (code === 'EACCES' || code === 'ENOEXEC' || code === 'EISDIR' || code === 'EPERM') {
    return new SpawnError('RWS_COMMAND_NOT_EXECUTABLE', `cannot execute ${command}: ${code}`, EXIT_CANNOT_EXECUTE, 'check that the file is a program and has its execute bit (chmod +x)');
  }
  if (code === 'ETXTBSY') {
    // A deploy copying the program over itself while cron starts it.
    return new SpawnError('RWS_COMMAND_NOT_EXECUTABLE', `cannot execute ${command}: ETXTBSY (the file is open for writing)`, EXIT_CANNOT_EXECUTE, 'start it once the copy or build writing it is done; install programs by writing a new file and renaming it over the old one');
  }
  if (code === 'ENOTDIR') {
    return new SpawnError('RWS_COMMAND_NOT_EXECUTABLE', `cannot execute ${command}: ENOTDIR (a part of its path is not a directory)`, EXIT_CANNOT_EXECUTE, 'check the path of the command');
  }
  if (code === 'E2BIG') {
    // The kernel refuses one variable over 128 KiB (MAX_ARG_STRLEN) or all of them over its limit.
    return envTooLarge(`cannot start ${command}: the environment is too large for the system (E2BIG; one value over 128 KiB, or all of them together)`);
  }
  return new SpawnError('RWS_SPAWN_FAILED', `cannot start ${command}: ${code ?? 'unknown error'}`, EXIT_CANNOT_EXECUTE, "check the command and the system's limits (processes, memory)");
}
