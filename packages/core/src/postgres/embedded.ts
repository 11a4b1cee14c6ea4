import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  chmod,
  link,
  lstat,
  mkdir,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AuthSecError, isAuthSecError } from '../errors.js';
import { createLogger } from '../logger.js';
import type { Clock, Logger } from '../types.js';
import { startWireServer, type WireBackend, type WireServer } from './embedded-server.js';
import { createPgClient, quoteIdent, type SqlClient } from './sql.js';

/**
 * The embedded database (PGlite) shared by every process that opens one data folder.
 *
 * PGlite serves one process per data folder, while MCP clients start one stdio process per client, so several
 * processes of one server run at once on one machine. One of them, the host, opens PGlite and serves it over
 * the PostgreSQL wire protocol on a UNIX socket inside the data folder (mode 0700: nothing on the network and
 * no other local user reaches it); every process, the host included, connects to that socket with `pg`, so
 * all access goes through one queue.
 *
 * The host is elected with lock files `host.<generation>.lock` in the data folder, each holding the host's
 * pid, the start time of that pid (Linux), the socket folder and a state (`starting`, `ready`, `closed`). A
 * lock file is created with `link()` (or an exclusive create where the file system has no hard links), which
 * fails when the file exists, so of all processes trying to create generation n exactly one succeeds. The live host is the one of the highest generation; a host found dead
 * (its pid gone or reused, its state `closed`, or its socket refusing for long) is replaced by creating the
 * next generation, never by deleting a file that another process might have just created. A process that
 * created a generation lower than one that already exists steps back, and a host that finds a higher
 * generation than its own shuts down, so at most one PGlite opens the folder.
 *
 * When the host exits, the others' statements fail with `SERVICE_UNAVAILABLE`; each process notices (on the
 * failed statement, or its once-a-second check), the survivors elect a new host among themselves, and the
 * others reconnect: service resumes within a few seconds without any process crashing. Statements are never
 * retried by this module, since one cut mid-way may or may not have committed.
 *
 * Notifications do not cross connections here (one PGlite session serves them all), so this client reports
 * `notifiesAcrossConnections: false` and delivers `notify` to the `listen`ers of this process only; the
 * tenancy polls its change feed table instead.
 *
 * UNIX sockets: Linux and macOS.
 */

/** Options of {@link openEmbeddedDatabase}. */
export interface EmbeddedDatabaseOptions {
  /**
   * The data folder: PGlite's files, the host lock files and the socket. Created with mode 0700 when absent;
   * an existing folder is restricted to 0700 when this user owns it.
   */
  readonly dataDir: string;
  /** Logger. Default: JSON lines on stderr. */
  readonly logger?: Logger;
  /** Clock (ms), for the age of lock files. Default `Date.now`. */
  readonly clock?: Clock;
  /** Connections from this process to the host. Default 5. */
  readonly max?: number;
  /**
   * How long opening, and a statement issued while a new host is being elected, wait for the host before
   * failing with `SERVICE_UNAVAILABLE`, ms. A new host needs a few seconds to open PGlite. Default 20000.
   */
  readonly electionTimeoutMs?: number;
  /** How often this process checks that its host is still the live one (or that it still is the host), ms. Default 1000. */
  readonly checkIntervalMs?: number;
}

/** Who serves the embedded database, as this process sees it. */
export type EmbeddedRole = 'host' | 'client' | 'none';

/** A {@link SqlClient} on the embedded database. */
export interface EmbeddedSqlClient extends SqlClient {
  readonly kind: 'embedded';
  readonly notifiesAcrossConnections: false;
  /** `host` while this process serves the database, `client` while it uses another's, `none` otherwise. */
  readonly role: EmbeddedRole;
}

/** The current host of a data folder, from its lock file (diagnostics). */
export interface EmbeddedHostInfo {
  /** Increases by one each time another process becomes the host. */
  readonly generation: number;
  readonly pid: number;
  /** `starting` (opening PGlite), `ready` (serving) or `closed` (gone; the next process takes over). */
  readonly state: 'starting' | 'ready' | 'closed';
  /** Path of the UNIX socket. */
  readonly socketPath: string;
  /** When the state was last written. */
  readonly since: Date;
}

interface LockRecord {
  readonly v: 1;
  readonly generation: number;
  readonly pid: number;
  /** Start time of `pid` (Linux `/proc/<pid>/stat` field 22), to tell a reused pid from the host. */
  readonly pidStart: string | null;
  readonly token: string;
  readonly socketDir: string;
  readonly state: 'starting' | 'ready' | 'closed';
  readonly since: number;
}

interface FoundLock {
  readonly generation: number;
  /** Undefined when the file cannot be read or parsed: a dead host, unless the file is brand new. */
  readonly record: LockRecord | undefined;
  /** For an unreadable file, how long ago it was last written, ms. */
  readonly unreadableForMs?: number;
}

interface Hosting {
  readonly record: LockRecord;
  readonly db: { close(): Promise<void> } & WireBackend;
  readonly server: WireServer;
}

interface Connected {
  readonly client: SqlClient;
  readonly generation: number;
  readonly token: string;
}

const LOCK_PATTERN = /^host\.(\d{1,15})\.lock$/;
const SOCKET_PORT = 5432;
const SOCKET_NAME = `.s.PGSQL.${SOCKET_PORT}`;
// Leaves room under the 104 (macOS) / 108 (Linux) byte limit of a UNIX socket path.
const MAX_SOCKET_PATH = 100;
// A host still opening PGlite (seconds; longer on a busy machine) is waited for this long before it counts as hung.
const STARTING_GRACE_MS = 60_000;
// A `ready` host whose pid lives but whose socket refuses connections this long is gone (a reused pid).
const UNRESPONSIVE_MS = 10_000;
const PROBE_TIMEOUT_MS = 1000;
// An unreadable lock file this recent may still be being written (where link() is not available).
const UNREADABLE_GRACE_MS = 2000;
// Temporary files of a lock write that a crash left behind are removed by the next host after this long.
const STALE_TEMP_MS = 60_000;

/** Tokens of the lock files this process hosts: a lock of this pid with another token is dead. */
const hostedHere = new Set<string>();

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function unavailable(message: string, cause?: unknown): AuthSecError {
  return new AuthSecError('SERVICE_UNAVAILABLE', message, cause === undefined ? {} : { cause });
}

function errno(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Start time of a process, Linux only; undefined where unknown. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (the command) is in parentheses and may contain spaces: count fields after its end.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function processAlive(pid: number, pidStart: string | null): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists, under another user.
    if (errno(error) === 'ESRCH') return false;
  }
  if (pidStart) {
    const now = processStart(pid);
    if (now !== undefined && now !== pidStart) return false;
  }
  return true;
}

/** Whether the process named by a lock still holds it (not closed, pid alive and not reused). */
function holderAlive(record: LockRecord): boolean {
  if (record.state === 'closed') return false;
  return record.pid === process.pid
    ? hostedHere.has(record.token)
    : processAlive(record.pid, record.pidStart);
}

function parseLock(text: string, generation: number): LockRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Partial<Record<keyof LockRecord, unknown>>;
  if (
    r.v !== 1 ||
    r.generation !== generation ||
    !Number.isInteger(r.pid) ||
    typeof r.token !== 'string' ||
    typeof r.socketDir !== 'string' ||
    (r.pidStart !== null && typeof r.pidStart !== 'string') ||
    (r.state !== 'starting' && r.state !== 'ready' && r.state !== 'closed') ||
    typeof r.since !== 'number'
  ) {
    return undefined;
  }
  return value as LockRecord;
}

async function highestLock(dataDir: string): Promise<FoundLock | undefined> {
  let highest = 0;
  for (const name of await readdir(dataDir)) {
    const m = LOCK_PATTERN.exec(name);
    if (m) highest = Math.max(highest, Number(m[1]));
  }
  if (highest === 0) return undefined;
  const path = join(dataDir, `host.${highest}.lock`);
  try {
    const record = parseLock(await readFile(path, 'utf8'), highest);
    if (record) return { generation: highest, record };
    const st = await stat(path);
    return { generation: highest, record, unreadableForMs: Date.now() - st.mtimeMs };
  } catch (error) {
    // Removed meanwhile: only lower generations are ever removed, so a higher one exists now.
    if (errno(error) === 'ENOENT') return highestLock(dataDir);
    return { generation: highest, record: undefined, unreadableForMs: Number.POSITIVE_INFINITY };
  }
}

/**
 * Creates `path` holding `content`, failing with EEXIST when it exists. Through link() the file appears
 * complete at once; where the file system has no hard links, an exclusive create is used instead, and readers
 * give an unreadable file that was just written {@link UNREADABLE_GRACE_MS} to be completed.
 */
async function createExclusive(dataDir: string, path: string, content: string): Promise<void> {
  const tmp = join(dataDir, `.host.${randomUUID()}.tmp`);
  await writeFile(tmp, content, { mode: 0o600 });
  try {
    await link(tmp, path);
  } catch (error) {
    const code = errno(error);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw error;
    await writeFile(path, content, { mode: 0o600, flag: 'wx' });
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** Connects to a UNIX socket and hangs up: true when something accepts connections there. */
function probe(socketPath: string): Promise<boolean> {
  return new Promise((resolveProbe) => {
    const socket = connect(socketPath);
    const done = (ok: boolean) => {
      socket.destroy();
      resolveProbe(ok);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory())
    throw new AuthSecError('CONFIG_INVALID', `Embedded database folder is not a folder: ${dir}`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid === uid && (st.mode & 0o077) !== 0) await chmod(dir, 0o700);
}

/**
 * The folder of the socket: the data folder, or (when that path is too long for a UNIX socket) a private
 * folder under the system's temporary folder, named after the data folder.
 */
async function socketDirFor(dataDir: string): Promise<string> {
  if (join(dataDir, SOCKET_NAME).length <= MAX_SOCKET_PATH) return dataDir;
  const uid = process.getuid?.() ?? 0;
  const hash = createHash('sha256').update(dataDir).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `authsec-${uid}`, hash);
  await mkdir(join(tmpdir(), `authsec-${uid}`), { recursive: true, mode: 0o700 });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const d of [join(tmpdir(), `authsec-${uid}`), dir]) {
    const st = await lstat(d);
    // Another user could have prepared the folder to intercept the socket: refuse anything not private.
    if (!st.isDirectory() || (process.getuid && st.uid !== uid) || (st.mode & 0o077) !== 0) {
      throw new AuthSecError(
        'CONFIG_INVALID',
        `Refusing socket folder ${d}: not a private folder of this user`,
      );
    }
  }
  if (join(dir, SOCKET_NAME).length > MAX_SOCKET_PATH) {
    throw new AuthSecError('CONFIG_INVALID', `No short enough socket path for the data folder ${dataDir}`);
  }
  return dir;
}

function socketUrl(socketDir: string): string {
  return `postgresql://postgres@/postgres?host=${encodeURIComponent(socketDir)}&port=${SOCKET_PORT}`;
}

/**
 * Reads who hosts the embedded database of `dataDir` (diagnostics; `undefined` when no process ever did).
 * Does not tell whether that host still lives.
 */
export async function readEmbeddedHost(dataDir: string): Promise<EmbeddedHostInfo | undefined> {
  let found: FoundLock | undefined;
  try {
    found = await highestLock(resolve(dataDir));
  } catch (error) {
    if (errno(error) === 'ENOENT') return undefined;
    throw error;
  }
  const r = found?.record;
  if (!r) return undefined;
  return Object.freeze({
    generation: r.generation,
    pid: r.pid,
    state: r.state,
    socketPath: join(r.socketDir, SOCKET_NAME),
    since: new Date(r.since),
  });
}

/**
 * Opens the embedded database in `dataDir`, shared with every other process that opens the same folder: the
 * first becomes the host (opens PGlite and serves it on a UNIX socket in the folder), the others connect to
 * it; when the host exits, another takes over by itself. Resolves once connected (the first host needs a few
 * seconds to open PGlite); fails with `SERVICE_UNAVAILABLE` after `electionTimeoutMs`.
 *
 * Statements issued while no host is reachable fail with `SERVICE_UNAVAILABLE` (or wait for an election in
 * progress, up to `electionTimeoutMs`); the process never crashes because the host went away.
 */
export async function openEmbeddedDatabase(options: EmbeddedDatabaseOptions): Promise<EmbeddedSqlClient> {
  if (
    typeof options !== 'object' ||
    options === null ||
    typeof options.dataDir !== 'string' ||
    !options.dataDir
  ) {
    throw new TypeError('openEmbeddedDatabase: options.dataDir is required');
  }
  const dataDir = resolve(options.dataDir);
  const logger = options.logger ?? createLogger();
  const clock = options.clock ?? Date.now;
  const max = options.max ?? 5;
  const electionTimeoutMs = options.electionTimeoutMs ?? 20_000;
  const checkIntervalMs = options.checkIntervalMs ?? 1000;
  for (const [name, value] of [
    ['max', max],
    ['electionTimeoutMs', electionTimeoutMs],
    ['checkIntervalMs', checkIntervalMs],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new AuthSecError('CONFIG_INVALID', `${name}: a positive integer is required`);
    }
  }
  let socketDir: string;
  try {
    await ensurePrivateDir(dataDir);
    socketDir = await socketDirFor(dataDir);
  } catch (error) {
    if (isAuthSecError(error)) throw error;
    throw new AuthSecError('CONFIG_INVALID', `Cannot use the embedded database folder ${dataDir}`, {
      cause: error,
    });
  }

  let closed = false;
  let connected: Connected | undefined;
  let hosting: Hosting | undefined;
  let electing: Promise<SqlClient> | undefined;
  let checking: Promise<void> | undefined;
  // When this process first found the current host's socket refusing connections (token → ms).
  const refusedSince = new Map<string, number>();
  const localListeners = new Map<string, Set<(payload: string) => void>>();

  const lockPath = (generation: number) => join(dataDir, `host.${generation}.lock`);

  // Replaces this process's own lock file at once (rename), so readers never see a half-written one.
  const writeOwnLock = async (record: LockRecord) => {
    const tmp = join(dataDir, `.host.${record.token}.${randomUUID()}.tmp`);
    await writeFile(tmp, JSON.stringify(record), { mode: 0o600 });
    try {
      await rename(tmp, lockPath(record.generation));
    } catch (error) {
      await unlink(tmp).catch(() => {});
      throw error;
    }
  };

  const dropConnection = (why: string) => {
    const c = connected;
    if (!c) return;
    connected = undefined;
    logger.debug('Embedded database connection dropped', { why, generation: c.generation });
    void c.client.close().catch(() => {});
  };

  const stopHosting = async (why: string) => {
    const h = hosting;
    if (!h) return;
    hosting = undefined;
    logger.info('Embedded database: no longer the host', { why, generation: h.record.generation });
    await h.server.close().catch(() => {});
    await h.db
      .close()
      .catch((error: unknown) =>
        logger.warn('Embedded database: closing PGlite failed', { error: String(error) }),
      );
    // `closed` is written only once PGlite is closed: the next host must not open it before.
    await writeOwnLock({ ...h.record, state: 'closed', since: clock() }).catch(() => {});
    hostedHere.delete(h.record.token);
  };

  const connectTo = async (record: LockRecord): Promise<SqlClient | undefined> => {
    const client = await createPgClient({
      connectionString: socketUrl(record.socketDir),
      max,
      connectTimeoutMs: 2000,
      logger,
      applicationName: 'authsec',
    });
    try {
      await client.query('SELECT 1');
    } catch {
      await client.close();
      return undefined;
    }
    connected = { client, generation: record.generation, token: record.token };
    return client;
  };

  /** Tries to become the host of `generation`; undefined when another process is (or may be) it. */
  const tryHost = async (generation: number): Promise<SqlClient | undefined> => {
    const record: LockRecord = {
      v: 1,
      generation,
      pid: process.pid,
      pidStart: processStart(process.pid) ?? null,
      token: randomUUID(),
      socketDir,
      state: 'starting',
      since: clock(),
    };
    try {
      // Fails when the file exists: of all processes creating this generation, exactly one wins.
      await createExclusive(dataDir, lockPath(generation), JSON.stringify(record));
    } catch (error) {
      if (errno(error) === 'EEXIST') return undefined;
      throw error;
    }
    hostedHere.add(record.token);
    // A process that listed the folder before a newer generation was created (and an older one removed) may
    // have created a stale one: the newer stands.
    const highest = await highestLock(dataDir);
    if ((highest?.generation ?? 0) > generation) {
      hostedHere.delete(record.token);
      await writeOwnLock({ ...record, state: 'closed', since: clock() }).catch(() => {});
      return undefined;
    }
    for (const name of await readdir(dataDir)) {
      const m = LOCK_PATTERN.exec(name);
      if (m && Number(m[1]) < generation) await unlink(join(dataDir, name)).catch(() => {});
      else if (name.startsWith('.host.') && name.endsWith('.tmp')) {
        const path = join(dataDir, name);
        const st = await stat(path).catch(() => undefined);
        if (st && Date.now() - st.mtimeMs > STALE_TEMP_MS) await unlink(path).catch(() => {});
      }
    }
    logger.info('Embedded database: this process is the host', { generation, dataDir });
    let db: Hosting['db'] | undefined;
    let server: WireServer | undefined;
    try {
      const { PGlite } = await import('@electric-sql/pglite');
      db = await PGlite.create(dataDir);
      server = await startWireServer(db, {
        socketPath: join(socketDir, SOCKET_NAME),
        logger,
        onBackendError: () => {
          // PGlite may be broken: hand the folder over (another process, or this one, opens it afresh).
          dropConnection('backend failed');
          void stopHosting('PGlite failed');
        },
      });
      const ready: LockRecord = { ...record, state: 'ready', since: clock() };
      await writeOwnLock(ready);
      hosting = { record: ready, db, server };
      const client = await connectTo(ready);
      if (!client) throw new Error('the host cannot reach its own socket');
      return client;
    } catch (error) {
      if (hosting) await stopHosting('start failed');
      else {
        await server?.close().catch(() => {});
        await db?.close().catch(() => {});
        await writeOwnLock({ ...record, state: 'closed', since: clock() }).catch(() => {});
        hostedHere.delete(record.token);
      }
      throw unavailable('The embedded database could not be opened', error);
    }
  };

  type Verdict = 'live' | 'wait' | 'dead';

  const judge = async (found: FoundLock): Promise<Verdict> => {
    const { record } = found;
    if (!record) return (found.unreadableForMs ?? 0) < UNREADABLE_GRACE_MS ? 'wait' : 'dead';
    if (!holderAlive(record)) return 'dead';
    if (await probe(join(record.socketDir, SOCKET_NAME))) {
      refusedSince.delete(record.token);
      return 'live';
    }
    if (record.state === 'starting') return clock() - record.since > STARTING_GRACE_MS ? 'dead' : 'wait';
    const since = refusedSince.get(record.token) ?? clock();
    refusedSince.set(record.token, since);
    return clock() - since > UNRESPONSIVE_MS ? 'dead' : 'wait';
  };

  const elect = async (): Promise<SqlClient> => {
    const deadline = clock() + electionTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      if (closed) throw unavailable('The database is closed');
      if (connected) return connected.client;
      const found = await highestLock(dataDir);
      const verdict = found ? await judge(found) : 'dead';
      if (verdict === 'live' && found?.record) {
        const client = await connectTo(found.record);
        if (client) {
          logger.debug('Embedded database: connected to the host', { generation: found.generation });
          return client;
        }
      } else if (verdict === 'dead') {
        const client = await tryHost((found?.generation ?? 0) + 1);
        if (client) return client;
        // Another process took this generation: judge it on the next turn, at once.
        continue;
      }
      if (clock() > deadline) throw unavailable('The embedded database host is not reachable');
      await sleep(Math.min(50 * 2 ** attempt, 250));
    }
  };

  /** The client to run a statement on: the current connection, or the outcome of an election. */
  const acquire = (): Promise<SqlClient> => {
    if (closed) return Promise.reject(unavailable('The database is closed'));
    if (connected) return Promise.resolve(connected.client);
    electing ??= elect()
      .catch((error: unknown) => {
        // A file system failure (the folder removed, a full disk) is an outage like any other.
        throw isAuthSecError(error) ? error : unavailable('The embedded database is unavailable', error);
      })
      .finally(() => {
        electing = undefined;
      });
    return electing;
  };

  /**
   * Checks that this process is connected to the live host (and, as the host, that no newer one exists);
   * drops what is stale and elects again. Runs once a second from the lock files and the pid alone, and after
   * a statement failed as unavailable also by connecting to the socket (`thorough`).
   */
  const check = (thorough: boolean): Promise<void> => {
    checking ??= (async () => {
      try {
        const found = await highestLock(dataDir);
        if (hosting) {
          const own = hosting.record;
          if (found?.generation !== own.generation || found.record?.token !== own.token) {
            logger.error('Embedded database: another process became the host; stepping down', {
              generation: own.generation,
            });
            dropConnection('superseded');
            await stopHosting('superseded');
          }
          return;
        }
        const c = connected;
        if (!c) return;
        const record = found?.generation === c.generation ? found.record : undefined;
        const dead =
          !record ||
          !holderAlive(record) ||
          (thorough && found !== undefined && (await judge(found)) === 'dead');
        if (dead) {
          dropConnection('host gone');
          // Elect now, not at the next statement: the surviving processes take over within a second or two.
          void acquire().catch((error: unknown) =>
            logger.debug('Embedded database election failed; retrying', { error: String(error) }),
          );
        }
      } catch (error) {
        logger.debug('Embedded database check failed', { error: String(error) });
      }
    })().finally(() => {
      checking = undefined;
    });
    return checking;
  };

  const run = async <T>(fn: (client: SqlClient) => Promise<T>): Promise<T> => {
    const client = await acquire();
    try {
      return await fn(client);
    } catch (error) {
      if (isAuthSecError(error) && error.code === 'SERVICE_UNAVAILABLE' && connected?.client === client) {
        void check(true);
      }
      throw error;
    }
  };

  const timer = setInterval(() => {
    if (!closed) void check(false);
  }, checkIntervalMs);
  timer.unref();

  try {
    await acquire();
  } catch (error) {
    closed = true;
    clearInterval(timer);
    throw error;
  }

  const client: EmbeddedSqlClient = {
    kind: 'embedded',
    notifiesAcrossConnections: false,
    get role(): EmbeddedRole {
      if (closed) return 'none';
      if (hosting && connected) return 'host';
      return connected ? 'client' : 'none';
    },
    query: (text, params) => run((c) => c.query(text, params)),
    transaction: (fn) => run((c) => c.transaction(fn)),
    exec: (sql) => run((c) => c.exec(sql)),
    async listen(channel, handler) {
      quoteIdent(channel);
      let set = localListeners.get(channel);
      if (!set) {
        set = new Set();
        localListeners.set(channel, set);
      }
      set.add(handler);
      const registered = set;
      return async () => {
        registered.delete(handler);
        if (registered.size === 0 && localListeners.get(channel) === registered)
          localListeners.delete(channel);
      };
    },
    async notify(channel, payload) {
      if (closed) throw unavailable('The database is closed');
      for (const handler of [...(localListeners.get(channel) ?? [])]) {
        queueMicrotask(() => {
          try {
            handler(payload);
          } catch (error) {
            logger.error('A notification listener failed', { error: String(error) });
          }
        });
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      localListeners.clear();
      await electing?.catch(() => {});
      await checking;
      const c = connected;
      connected = undefined;
      await c?.client.close();
      await stopHosting('closed');
    },
  };
  return client;
}
