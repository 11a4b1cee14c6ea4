import { AuthSecError } from '../errors.js';
import type { Logger } from '../types.js';

/**
 * One small SQL client interface, implemented over a `pg` Pool (real PostgreSQL) and over PGlite (real
 * PostgreSQL compiled to WASM, the embedded default). Every statement is parameterised; identifiers are built
 * only from validated names with {@link quoteIdent}.
 */

/** Rows of one statement. */
export interface SqlResult<R> {
  readonly rows: R[];
  /** Rows changed by INSERT/UPDATE/DELETE, when the driver says. */
  readonly rowCount: number;
}

/** Something statements can run on: a client or a transaction. */
export interface SqlQueryable {
  /** Runs one parameterised statement (`$1`, `$2`, ...). */
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>>;
}

/** Options of {@link SqlClient.listen}. */
export interface ListenOptions {
  /**
   * Called after the listening connection was lost and re-established: notifications sent meanwhile are lost,
   * so caches that depend on them must be dropped.
   */
  readonly onResync?: () => void;
}

/** A database connection pool (or embedded instance). */
export interface SqlClient extends SqlQueryable {
  /**
   * Which driver serves this client: `pg` (a PostgreSQL server), `pglite` (PGlite in this process) or
   * `embedded` (PGlite shared by every process on one data folder, see `openEmbeddedDatabase`).
   */
  readonly kind: 'pg' | 'pglite' | 'embedded';
  /**
   * Whether a {@link SqlClient.notify} reaches {@link SqlClient.listen}ers on other connections and in other
   * processes. True on PostgreSQL and on in-process PGlite (one process, one connection); false for the
   * embedded database shared by several processes, where consumers must poll a table instead.
   */
  readonly notifiesAcrossConnections: boolean;
  /** Runs `fn` inside one transaction on one connection; rolls back when it throws. */
  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T>;
  /** Runs several statements without parameters (migrations only). */
  exec(sql: string): Promise<void>;
  /** `LISTEN channel`; returns a function that stops listening. Reconnects by itself (pg). */
  listen(
    channel: string,
    handler: (payload: string) => void,
    options?: ListenOptions,
  ): Promise<() => Promise<void>>;
  /** `pg_notify(channel, payload)`. */
  notify(channel: string, payload: string): Promise<void>;
  /** Closes the pool, listeners included. Idempotent. */
  close(): Promise<void>;
}

/** Quotes an identifier. Callers pass only names built from validated tenant ids or constants. */
export function quoteIdent(name: string): string {
  if (!/^[a-z0-9_][a-z0-9_-]{0,62}$/.test(name))
    throw new TypeError(`Refusing to quote identifier '${name}'`);
  return `"${name}"`;
}

// SQLSTATE classes and Node error codes that mean "the database is not there right now": fail closed with
// SERVICE_UNAVAILABLE (503) instead of INTERNAL, and let the caller retry later.
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0[1-3]|58)/;
const UNAVAILABLE_NODE = new Set([
  'ECONNREFUSED',
  // A UNIX socket whose server is gone (the embedded database's host process exited).
  'ENOENT',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/** True when `error` says the database is unreachable, overloaded or shutting down. */
export function isUnavailableError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_NODE.has(code) || UNAVAILABLE_SQLSTATE.test(code)))
    return true;
  const message = String((error as { message?: unknown }).message ?? '');
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end|connection timeout|terminating connection/i.test(
    message,
  );
}

/** Maps a driver failure to an `AuthSecError`: unreachable is `SERVICE_UNAVAILABLE`, anything else `INTERNAL`. */
export function toDatabaseError(error: unknown, what = 'database'): AuthSecError {
  if (error instanceof AuthSecError) return error;
  if (isUnavailableError(error)) {
    return new AuthSecError('SERVICE_UNAVAILABLE', `The ${what} is unavailable`, { cause: error });
  }
  return new AuthSecError('INTERNAL', `A ${what} operation failed`, { cause: error });
}

// Inside a transaction callback, a caller's own TypeError (misuse) or AuthSecError must reach the caller as it
// is; only driver failures are mapped.
function passThroughOrDatabaseError(error: unknown): Error {
  if (error instanceof TypeError || error instanceof AuthSecError) return error;
  return toDatabaseError(error);
}

/** Options of {@link createPgClient}. */
export interface PgClientOptions {
  /** `postgres://` URL. */
  readonly connectionString: string;
  /** Pool size. Default 10. */
  readonly max?: number;
  /** Connection timeout, ms. Default 5000. */
  readonly connectTimeoutMs?: number;
  /** Server-side statement timeout, ms. Default 10000. */
  readonly statementTimeoutMs?: number;
  /** Idle connections are closed after this, ms. Default 30000. */
  readonly idleTimeoutMs?: number;
  /** Logger for listener reconnects. */
  readonly logger?: Logger;
  /** Application name shown in `pg_stat_activity`. Default `authsec`. */
  readonly applicationName?: string;
}

/** A {@link SqlClient} over a `pg` Pool. `pg` is an optional peer dependency, loaded on first use. */
export async function createPgClient(options: PgClientOptions): Promise<SqlClient> {
  const pg = (await import('pg')).default;
  const base = {
    connectionString: options.connectionString,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    statement_timeout: options.statementTimeoutMs ?? 10_000,
    application_name: options.applicationName ?? 'authsec',
  };
  const pool = new pg.Pool({
    ...base,
    max: options.max ?? 10,
    idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
  });
  // An idle client that loses its connection emits 'error' on the pool; unhandled, it would crash the process.
  pool.on('error', (error) =>
    options.logger?.warn('Idle database connection lost', { code: errorCode(error) }),
  );
  let closed = false;

  type Handler = { handler: (payload: string) => void; onResync: (() => void) | undefined };
  const channels = new Map<string, Set<Handler>>();
  let listener: InstanceType<typeof pg.Client> | undefined;
  let connecting: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let retryDelay = 100;

  const connectListener = async (resync: boolean): Promise<void> => {
    const client = new pg.Client(base);
    client.on('error', () => scheduleReconnect());
    client.on('end', () => {
      if (listener === client) scheduleReconnect();
    });
    client.on('notification', (msg) => {
      for (const h of channels.get(msg.channel) ?? []) h.handler(msg.payload ?? '');
    });
    await client.connect();
    for (const channel of channels.keys()) await client.query(`LISTEN ${quoteIdent(channel)}`);
    listener = client;
    retryDelay = 100;
    if (resync) for (const set of channels.values()) for (const h of set) h.onResync?.();
  };
  const scheduleReconnect = () => {
    if (closed || retryTimer) return;
    const old = listener;
    listener = undefined;
    old?.removeAllListeners('end');
    old?.end().catch(() => {});
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      connectListener(true).catch((error) => {
        options.logger?.warn('Database listener reconnect failed; retrying', { code: errorCode(error) });
        retryDelay = Math.min(retryDelay * 2, 2000);
        scheduleReconnect();
      });
    }, retryDelay);
    retryTimer.unref();
  };

  const query = async <R>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>> => {
    try {
      const result = await pool.query(text, params as unknown[] | undefined);
      return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
    } catch (error) {
      throw toDatabaseError(error);
    }
  };

  return {
    kind: 'pg',
    notifiesAcrossConnections: true,
    query,
    async transaction(fn) {
      let client: InstanceType<typeof pg.Client> & { release(err?: boolean): void };
      try {
        client = (await pool.connect()) as typeof client;
      } catch (error) {
        throw toDatabaseError(error);
      }
      let broken = false;
      // The pool takes its own 'error' listener off a client it hands out: a connection the server ends between
      // two statements (a shutdown, a failover, pg_terminate_backend) would emit an unhandled 'error' and crash
      // the process. Listen while the client is ours; the next statement fails, and the client is discarded.
      const onError = (error: unknown) => {
        broken = true;
        options.logger?.warn('Database connection lost during a transaction', { code: errorCode(error) });
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const tx: SqlQueryable = {
          async query<R>(text: string, params?: readonly unknown[]) {
            try {
              const r = await client.query(text, params as unknown[] | undefined);
              return { rows: r.rows as R[], rowCount: r.rowCount ?? 0 };
            } catch (error) {
              if (isUnavailableError(error)) broken = true;
              throw toDatabaseError(error);
            }
          },
        };
        const value = await fn(tx);
        await client.query('COMMIT');
        return value;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw passThroughOrDatabaseError(error);
      } finally {
        client.off('error', onError);
        client.release(broken);
      }
    },
    async exec(sql) {
      try {
        await pool.query(sql);
      } catch (error) {
        throw toDatabaseError(error);
      }
    },
    async listen(channel, handler, listenOptions = {}) {
      quoteIdent(channel);
      const entry: Handler = { handler, onResync: listenOptions.onResync };
      let set = channels.get(channel);
      const isNew = !set;
      if (!set) {
        set = new Set();
        channels.set(channel, set);
      }
      set.add(entry);
      try {
        if (!listener) {
          connecting ??= connectListener(false).finally(() => {
            connecting = undefined;
          });
          await connecting;
        } else if (isNew) {
          await listener.query(`LISTEN ${quoteIdent(channel)}`);
        }
      } catch (error) {
        // Keep the registration: the reconnect loop will LISTEN once the database is back.
        scheduleReconnect();
        throw toDatabaseError(error);
      }
      return async () => {
        set.delete(entry);
        if (set.size === 0) {
          channels.delete(channel);
          await listener?.query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => {});
        }
      };
    },
    async notify(channel, payload) {
      await query('SELECT pg_notify($1, $2)', [channel, payload]);
    },
    async close() {
      if (closed) return;
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      const l = listener;
      listener = undefined;
      l?.removeAllListeners('end');
      await Promise.allSettled([l?.end(), pool.end()]);
    },
  };
}

function errorCode(error: unknown): string {
  return String((error as { code?: unknown })?.code ?? 'unknown');
}

/** Options of {@link createPGliteClient}. */
export interface PGliteClientOptions {
  /** Data folder; absent: in memory. PGlite serves one process per data folder. */
  readonly dataDir?: string;
}

/**
 * A {@link SqlClient} over PGlite. PGlite runs one connection, so transactions are serialised by PGlite
 * itself; LISTEN/NOTIFY works within the instance.
 */
export async function createPGliteClient(options: PGliteClientOptions = {}): Promise<SqlClient> {
  const { PGlite } = await import('@electric-sql/pglite');
  const db = options.dataDir ? await PGlite.create(options.dataDir) : await PGlite.create();
  let closed = false;
  const wrap = async <R>(
    run: () => Promise<{ rows: unknown[]; affectedRows?: number }>,
  ): Promise<SqlResult<R>> => {
    if (closed) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The database is closed');
    try {
      const r = await run();
      return { rows: r.rows as R[], rowCount: r.affectedRows ?? 0 };
    } catch (error) {
      throw toDatabaseError(error);
    }
  };
  return {
    kind: 'pglite',
    notifiesAcrossConnections: true,
    query: (text, params) => wrap(() => db.query(text, params as unknown[] | undefined)),
    async transaction(fn) {
      try {
        return await db.transaction((tx) =>
          fn({ query: (text, params) => wrap(() => tx.query(text, params as unknown[] | undefined)) }),
        );
      } catch (error) {
        throw passThroughOrDatabaseError(error);
      }
    },
    async exec(sql) {
      await wrap(async () => {
        await db.exec(sql);
        return { rows: [] };
      });
    },
    async listen(channel, handler) {
      quoteIdent(channel);
      const stop = await db.listen(channel, handler);
      return async () => {
        if (!closed) await stop();
      };
    },
    async notify(channel, payload) {
      await wrap(() => db.query('SELECT pg_notify($1, $2)', [channel, payload]));
    },
    async close() {
      if (closed) return;
      closed = true;
      await db.close();
    },
  };
}

/**
 * Opens `connectionString` with `pg`; without a URL, the embedded database in `dataDir` (PGlite shared by every
 * process that opens that folder, see `openEmbeddedDatabase`), or an in-memory PGlite without `dataDir`.
 */
export async function openDatabase(options: {
  readonly connectionString?: string | undefined;
  readonly dataDir?: string | undefined;
  readonly logger?: Logger;
  readonly max?: number;
}): Promise<SqlClient> {
  if (options.connectionString) {
    return createPgClient({
      connectionString: options.connectionString,
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.max ? { max: options.max } : {}),
    });
  }
  if (options.dataDir) {
    // Loaded on use: embedded.ts imports this module.
    const { openEmbeddedDatabase } = await import('./embedded.js');
    return openEmbeddedDatabase({
      dataDir: options.dataDir,
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.max ? { max: options.max } : {}),
    });
  }
  return createPGliteClient();
}
