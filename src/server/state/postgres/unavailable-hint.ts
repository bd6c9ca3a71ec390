// What to do when PostgreSQL cannot be used, by what failed. The one hint for all of them sent
// the operator to `secrets-server db status`, which `db status` itself printed: it fails the
// same way, and said nothing about where to look. `target` is where node-postgres connects
// (`host:port`, or a socket), never a credential.

const SOCKET_SUFFIX = /\/\.s\.PGSQL\.\d+$/;

/**
 * What happened, for the message after "the state database URL": a refused login is an answer,
 * and "did not answer (28P01)" sent the operator to the network.
 */
export function unavailableWhat(code: string | undefined): string {
  if (code === '28P01' || code === '28000') return `refused the login (${code})`;
  if (code === '3D000') return `does not exist (${code})`;
  // An answer too: a standby after a failover, or a database set read-only, takes reads and no commit.
  if (code === '25006') return `is read-only (${code})`;
  return `did not answer (${code ?? 'connection failed'})`;
}

/** The hint for a failed connection or statement of code `code` (an errno or a SQLSTATE). */
export function unavailableHint(code: string | undefined, target: string): string {
  const socket = SOCKET_SUFFIX.test(target);
  switch (code) {
    case 'ECONNREFUSED':
      return `nothing accepts connections at ${target}: check the host and port of the database URL, that PostgreSQL is up and listens there (listen_addresses, port in postgresql.conf), and that no firewall rejects the connection`;
    case 'ENOENT':
      return socket ? `there is no PostgreSQL socket ${target}: check the socket directory (host=) and port of the database URL, and that PostgreSQL is up` : genericHint(target);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host of ${target} does not resolve: check the host name in the database URL, and this host's DNS`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${target} cannot be reached from this host: check the host in the database URL, the network route, and any firewall between`;
    case '28P01':
    case '28000':
      return `PostgreSQL at ${target} refused the login: check the user and password in the database URL, and pg_hba.conf`;
    case '3D000':
      return `PostgreSQL at ${target} has no database of the URL's name: create it (CREATE DATABASE), or fix the URL's path`;
    case '25006':
      return `PostgreSQL at ${target} accepts no writes: a standby (point the database URL at the primary: after a failover, the new one, or a name that follows it), or default_transaction_read_only is on`;
    default:
      return genericHint(target);
  }
}

function genericHint(target: string): string {
  return `check that PostgreSQL at ${target} is up and listening, that the host and port of the database URL are right, and that no firewall blocks the connection`;
}
