/**
 * A PostgreSQL server of the suite's own, that it may stop and start again: the fault tests take the database
 * away by stopping this one with `pg_ctl`, never the server the rest of the run shares (`PG_URL`).
 *
 * `initdb` refuses to run as root, so as root (as `.ci/run` runs) every server command runs as the `postgres`
 * user through `runuser -u postgres --`; as another user, directly.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A running (or stopped) PostgreSQL server of the suite's own, on 127.0.0.1. */
export interface OwnPostgres {
  /** `postgresql://postgres@127.0.0.1:<port>/postgres`. */
  readonly url: string;
  readonly port: number;
  /**
   * Stops the server, waiting until it is down: `fast` (default) terminates every session with a FATAL message;
   * `immediate` kills the processes without one, as a crash would (the next start recovers from the WAL).
   */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port and data, waiting until it accepts connections. */
  start(): Promise<void>;
  /** Stops it (when running) and deletes its data folder. Never throws. */
  dispose(): Promise<void>;
}

/** Where the PostgreSQL server binaries are: `AUTHSEC_TEST_PGBIN` (set by `.ci/run`), or `undefined`. */
export function testPgBin(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const bin = env.AUTHSEC_TEST_PGBIN;
  return bin && bin.trim() !== '' ? bin : undefined;
}

/** A free TCP port on 127.0.0.1 (the system's choice; closed again before it is returned). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Creates a data folder with `initdb` in a fresh temporary folder and starts a server on a free loopback port
 * (trust authentication on loopback only, `fsync=off`: this is a throwaway).
 */
export async function startOwnPostgres(pgbin: string): Promise<OwnPostgres> {
  const asRoot = process.getuid?.() === 0;
  const server = (command: string, args: readonly string[]) =>
    asRoot
      ? run('runuser', ['-u', 'postgres', '--', join(pgbin, command), ...args])
      : run(join(pgbin, command), [...args]);
  const dir = mkdtempSync(join(tmpdir(), 'authsec-fault-pg-'));
  if (asRoot) await run('chown', ['postgres:postgres', dir]);
  const data = join(dir, 'data');
  const port = await freePort();
  const options = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c max_connections=200`;
  let running = false;
  const start = async () => {
    await server('pg_ctl', [
      '-D',
      data,
      '-l',
      join(dir, 'server.log'),
      '-w',
      '-t',
      '30',
      '-o',
      options,
      'start',
    ]);
    running = true;
  };
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    await server('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '30', 'stop']);
    running = false;
  };
  try {
    await server('initdb', [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth=trust',
      '--no-locale',
      '-E',
      'UTF8',
      '--no-sync',
    ]);
    await start();
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    port,
    stop,
    start,
    async dispose() {
      if (running) await stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
