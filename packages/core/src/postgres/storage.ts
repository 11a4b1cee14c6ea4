import { join } from 'node:path';
import type { MasterKeyRing } from '../env.js';
import { createPostgresSecretBackend, type PostgresSecretBackend } from '../secrets/postgres-store.js';
import type { SessionStore } from '../sessions.js';
import type { Clock, Logger } from '../types.js';
import {
  createPostgresAuditSink,
  type PostgresAuditSink,
  type PostgresAuditSinkOptions,
} from './audit-store.js';
import { createPostgresDirectory, type PostgresDirectory } from './directory.js';
import { openEmbeddedDatabase } from './embedded.js';
import { createPostgresSessionStore } from './sessions.js';
import { createPgClient, type SqlClient } from './sql.js';
import { createTenancy, type Tenancy } from './tenancy.js';

/** Options of {@link openStorage}. */
export interface OpenStorageOptions {
  /**
   * PostgreSQL URL (`AUTHSEC_DATABASE_URL`). Absent: the embedded database (PGlite) in `<dataDir>/pglite`,
   * shared by every process that opens the same data folder (see `openEmbeddedDatabase`).
   */
  readonly databaseUrl?: string | undefined;
  /** Data folder for the embedded database. Required without `databaseUrl`. */
  readonly dataDir?: string | undefined;
  /** Key ring for sessions, the audit chain and the secret store's data keys. */
  readonly masterKey: MasterKeyRing;
  /** Apply pending migrations at open. Default `true`. */
  readonly migrate?: boolean;
  /**
   * The trusted issuers (`AUTHSEC_ISSUER`), for the migration of rows stored before subjects were bound to
   * their issuer: with exactly one, such rows are given it; with none or several and such rows present, opening
   * fails with `CONFIG_INVALID` naming `authsec migrate --issuer <url>`. Default: none.
   */
  readonly issuers?: readonly string[];
  /** Prefix of tenant database names (database placement). Default `'tenant_'`. */
  readonly databasePrefix?: string;
  /**
   * Options of the audit sink (`storage.audit`): backpressure (`refuseAfterMs`, `maxBuffer`), batching and the
   * checkpoint sinks that anchor each tenant's chain outside the database. Defaults as in
   * {@link createPostgresAuditSink}.
   */
  readonly audit?: Omit<PostgresAuditSinkOptions, 'resolve' | 'masterKey' | 'logger' | 'clock'>;
  readonly logger?: Logger;
  readonly clock?: Clock;
}

/** Everything AuthSec keeps in PostgreSQL, opened together. */
export interface Storage {
  /** The master database. */
  readonly sql: SqlClient;
  readonly tenancy: Tenancy;
  /** Database-backed claim validation; pass it as the engine's `directory`. */
  readonly directory: PostgresDirectory;
  /** Login sessions (master database). */
  readonly sessions: SessionStore;
  /** Tamper-evident per-tenant audit log; pass it among the engine's audit sinks. */
  readonly audit: PostgresAuditSink;
  /**
   * The encrypted service-credential store (per-tenant tables, envelope encryption under the master key). The
   * default `SecretBackend` when no Vault is configured.
   */
  readonly secrets: PostgresSecretBackend;
  /** Flushes the audit log and closes everything, database last. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens the master database (PostgreSQL, or the embedded database shared by every process on the data
 * folder), migrates it and every tenant, and builds the tenancy, directory, session store and audit sink over
 * it. Several processes may open the same storage at once; migrations and seeding are safe to race.
 */
export async function openStorage(options: OpenStorageOptions): Promise<Storage> {
  const logging = options.logger ? { logger: options.logger } : {};
  let sql: SqlClient;
  if (options.databaseUrl) {
    sql = await createPgClient({ connectionString: options.databaseUrl, ...logging });
  } else if (options.dataDir) {
    // Several processes (one per MCP client) may open the same data folder at once: the embedded database
    // elects one of them to serve PGlite to all.
    // Not given `clock`: lock files are compared across processes, on the real clock.
    sql = await openEmbeddedDatabase({ dataDir: join(options.dataDir, 'pglite'), ...logging });
  } else {
    throw new TypeError('openStorage: dataDir is required without databaseUrl');
  }
  const common = {
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  };
  let tenancy: Tenancy | undefined;
  try {
    tenancy = await createTenancy({
      master: sql,
      ...(options.databaseUrl ? { connectionString: options.databaseUrl } : {}),
      ...(options.databasePrefix ? { databasePrefix: options.databasePrefix } : {}),
      ...common,
    });
    if (options.migrate !== false) await tenancy.migrate({ issuers: options.issuers ?? [] });
    const directory = createPostgresDirectory({ tenancy, ...common });
    const sessions = createPostgresSessionStore({ sql, masterKey: options.masterKey, ...common });
    const opened = tenancy;
    const audit = createPostgresAuditSink({
      ...options.audit,
      resolve: (tenantId) => opened.handle(tenantId, { allowDisabled: true }),
      masterKey: options.masterKey,
      ...common,
    });
    const secrets = createPostgresSecretBackend({
      tenancy,
      masterKey: options.masterKey,
      ...common,
    });
    let closed = false;
    return {
      sql,
      tenancy,
      directory,
      sessions,
      audit,
      secrets,
      async close() {
        if (closed) return;
        closed = true;
        const results = await Promise.allSettled([
          audit.close(),
          sessions.close(),
          directory.close(),
          secrets.close(),
        ]);
        await opened.close();
        await sql.close();
        const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failure) throw failure.reason;
      },
    };
  } catch (error) {
    await tenancy?.close().catch(() => {});
    await sql.close().catch(() => {});
    throw error;
  }
}
