import { LRUCache } from 'lru-cache';
import { AuthSecError, isAuthSecError } from '../errors.js';
import { createLogger } from '../logger.js';
import type { Clock, Logger } from '../types.js';
import { isValidTenantId } from '../types.js';
import {
  legacyIssuer,
  type Migration,
  type MigrationContext,
  migrateSchema,
  registerMigrations,
} from './migrations.js';
import {
  createPgClient,
  quoteIdent,
  type SqlClient,
  type SqlQueryable,
  type SqlResult,
  toDatabaseError,
} from './sql.js';
import type { MigrationProgress, TenantHandle, TenantPlacement, TenantRecord } from './tenancy-types.js';

/**
 * The tenant registry (master database) and the routing of a tenant id to its data: a schema `tenant_<id>` in
 * the master database (default; the only mode PGlite supports) or a database `<prefix><id>` on the same
 * server, reached through a bounded set of pools. Tenant ids are validated before they name anything, and
 * every statement is parameterised. Changes are announced on the master database's `authsec_changes` channel,
 * so every replica hears them whatever the placement, and are also written to the master's `changes` table:
 * where notifications do not cross processes (the embedded database shared by several processes), every
 * process polls that table instead.
 */

/** The NOTIFY channel, on the master database, that carries {@link TenantChange}s. */
export const CHANGES_CHANNEL = 'authsec_changes';

const TENANT_SCHEMA_PREFIX = 'tenant_';
/** Schema of a tenant's tables inside its own database (database placement). */
const TENANT_DATABASE_SCHEMA = 'authsec';
// An evicted pool may still serve a query started just before; it is closed after this grace period.
const POOL_CLOSE_GRACE_MS = 2000;
const MAX_CACHED_RECORDS = 10_000;
// Rows read per poll of the change feed; a longer backlog is read in several queries.
const CHANGE_POLL_BATCH = 500;

const tenancyMigrations: readonly Migration[] = [
  {
    component: 'tenancy',
    version: 1,
    name: 'tenant registry',
    sql: (s) => `
CREATE TABLE ${s}.tenants (
  id text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,54}$'),
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  placement text NOT NULL CHECK (placement IN ('schema', 'database')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);`,
  },
  {
    component: 'tenancy',
    version: 2,
    name: 'change feed',
    // Every published change, for processes that cannot hear notifications. Pruned by age on publish.
    sql: (s) => `
CREATE TABLE ${s}.changes (
  seq bigserial PRIMARY KEY,
  payload text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX changes_created_at_idx ON ${s}.changes (created_at);`,
  },
  {
    component: 'tenancy',
    version: 3,
    name: 'issuers allowed per tenant',
    // No rows: every tenant starts with an empty list, which means any trusted issuer (the earlier behaviour).
    sql: (s) => `
CREATE TABLE ${s}.tenant_issuers (
  tenant_id text NOT NULL REFERENCES ${s}.tenants (id) ON DELETE CASCADE,
  issuer text NOT NULL CHECK (char_length(issuer) BETWEEN 1 AND 2048 AND issuer !~ '[[:space:][:cntrl:]]'),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, issuer)
);`,
  },
];

/** Group grants (`group:<name>`) belong to no issuer; their rows carry the empty issuer. */
const GROUP_SUBJECT_PREFIX = 'group:';

// The directory's tables: every tenant has them, whichever module reads them. Registered here so that a tenant
// created through the tenancy alone is complete.
const directoryMigrations: readonly Migration[] = [
  {
    component: 'directory',
    version: 1,
    name: 'catalog and bindings',
    sql: (s) => `
CREATE TABLE ${s}.catalog (
  kind text NOT NULL CHECK (kind IN ('role', 'group', 'scope', 'resource', 'permission')),
  name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 128 AND name !~ '[[:space:][:cntrl:]]'),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, name),
  CHECK (kind <> 'permission' OR name ~ '^[^:]+:[^:]+$')
);
CREATE TABLE ${s}.bindings (
  subject text NOT NULL CHECK (char_length(subject) BETWEEN 1 AND 255 AND subject !~ '[[:cntrl:]]'),
  kind text NOT NULL,
  value text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subject, kind, value),
  FOREIGN KEY (kind, value) REFERENCES ${s}.catalog (kind, name) ON DELETE CASCADE
);
CREATE INDEX bindings_kind_value_idx ON ${s}.bindings (kind, value);`,
  },
  {
    component: 'directory',
    version: 2,
    name: 'bindings keyed by issuer',
    sql: (s) => `ALTER TABLE ${s}.bindings ADD COLUMN issuer text;`,
    // Grants made before subjects were bound to their issuer go to the one configured issuer; with several,
    // nobody can tell whose they were, and the migration stops and names the command that says.
    data: async (tx: SqlQueryable, s: string, context: MigrationContext) => {
      const r = await tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${s}.bindings WHERE issuer IS NULL AND NOT starts_with(subject, $1)`,
        [GROUP_SUBJECT_PREFIX],
      );
      const count = r.rows[0]?.n ?? 0;
      if (count > 0) {
        const issuer = legacyIssuer(context, 'grant(s)', count);
        await tx.query(
          `UPDATE ${s}.bindings SET issuer = $1 WHERE issuer IS NULL AND NOT starts_with(subject, $2)`,
          [issuer, GROUP_SUBJECT_PREFIX],
        );
      }
      await tx.query(`UPDATE ${s}.bindings SET issuer = '' WHERE issuer IS NULL`);
    },
  },
  {
    component: 'directory',
    version: 3,
    name: 'bindings keyed by issuer (constraints)',
    sql: (s) => `
ALTER TABLE ${s}.bindings ALTER COLUMN issuer SET NOT NULL;
ALTER TABLE ${s}.bindings ADD CONSTRAINT bindings_issuer_check CHECK (
  char_length(issuer) <= 2048 AND issuer !~ '[[:space:][:cntrl:]]'
  AND (issuer = '') = starts_with(subject, 'group:'));
ALTER TABLE ${s}.bindings DROP CONSTRAINT bindings_pkey;
ALTER TABLE ${s}.bindings ADD PRIMARY KEY (issuer, subject, kind, value);`,
  },
  {
    component: 'directory',
    version: 4,
    name: 'tool conditions of the tenant',
    // A tenant's own `when` conditions per tool, ANDed with the code's (never loosening them).
    sql: (s) => `
CREATE TABLE IF NOT EXISTS ${s}.tool_policies (
  tool text PRIMARY KEY CHECK (char_length(tool) BETWEEN 1 AND 128 AND tool !~ '[[:space:][:cntrl:]]'),
  conditions text[] NOT NULL CHECK (cardinality(conditions) BETWEEN 1 AND 16),
  updated_at timestamptz NOT NULL DEFAULT now()
);`,
  },
];

registerMigrations('master', tenancyMigrations);
registerMigrations('tenant', directoryMigrations);

/** What changed, as announced to every replica. */
export interface TenantChange {
  /** The tenant concerned. */
  readonly tenantId: string;
  /** The subject whose bindings changed (a `sub` or `group:<name>`), or `null` for the whole tenant. */
  readonly subject: string | null;
  /**
   * The issuer of `subject` (a `binding` change of a person). Absent or `null`: every issuer's subject of that
   * name (group changes, and changes announced by replicas that predate issuers).
   */
  readonly issuer?: string | null;
  /** `tenant`: its registry row (status); `catalog`: its catalog; `binding`: bindings. */
  readonly kind: 'tenant' | 'catalog' | 'binding';
}

/** Called for each change heard on {@link CHANGES_CHANNEL}, from this process or any other. */
export type TenantChangeListener = (change: TenantChange) => void;

/** Options of {@link createTenancy}. Validated once, at creation (`CONFIG_INVALID` naming the option). */
export interface TenancyOptions {
  /** The master database (tenant registry; tenant schemas in schema placement). The caller closes it. */
  readonly master: SqlClient;
  /** Schema of the registry in the master database. Default `'authsec'`. */
  readonly masterSchema?: string;
  /**
   * URL of the master database. Needed for database placement only: tenant databases are created on the same
   * server and reached with the same credentials (the role needs `CREATEDB`). Default: none, and creating or
   * routing to a database-placed tenant is `CONFIG_INVALID`.
   */
  readonly connectionString?: string;
  /**
   * Prefix of tenant database names (database placement): database `<prefix><id>`. Lowercase letters, digits
   * and `_`, at most 8 characters, so that every name fits PostgreSQL's 63-byte limit. Deployments sharing one
   * server must use different prefixes, or they share tenant databases. Default `'tenant_'`.
   */
  readonly databasePrefix?: string;
  /** Most tenant-database pools open at once; the least recently used is closed first. Default 16. */
  readonly maxTenantPools?: number;
  /** Connections per tenant-database pool. Default 5. */
  readonly tenantPoolSize?: number;
  /**
   * How long a tenant's registry row is trusted without asking the master database again, ms. Changes made
   * through any replica also invalidate it at once (notifications); this bounds how long a disabled tenant can
   * keep working when a notification is lost, and how soon an outage of the master database is noticed.
   * Default 1000.
   */
  readonly cacheTtlMs?: number;
  /**
   * Where the master database cannot deliver notifications across processes
   * (`master.notifiesAcrossConnections` is false: the embedded database), how often the change feed table is
   * read, ms. This bounds how long another process takes to see a change. Default 250.
   */
  readonly changePollIntervalMs?: number;
  /** How long a published change stays in the change feed table, ms. Older rows are deleted on publish. Default 3600000 (1 hour). */
  readonly changeRetentionMs?: number;
  /** Logger. Default: JSON lines on stderr. */
  readonly logger?: Logger;
  /** Clock (ms). Default `Date.now`. */
  readonly clock?: Clock;
}

/** Options of {@link Tenancy.create}. */
export interface CreateTenantOptions {
  /** Where the tenant's data lives. Default `'schema'`. `'database'` needs real PostgreSQL. */
  readonly placement?: TenantPlacement;
}

/** Options of {@link Tenancy.handle}. */
export interface TenantHandleOptions {
  /** Route to a disabled tenant too (administration). Default `false`: disabled is `TENANT_UNKNOWN`. */
  readonly allowDisabled?: boolean;
  /**
   * The issuer of the token acting in the tenant. When the tenant names allowed issuers and this is not one
   * of them, the tenant reads as unknown (`TENANT_UNKNOWN`). Default: no check (administration).
   */
  readonly issuer?: string;
}

/** Options of {@link Tenancy.migrate}. */
export interface TenancyMigrateOptions {
  /** Called after the master and after each tenant. */
  readonly onProgress?: (progress: MigrationProgress) => void;
  /**
   * The trusted issuers (`AUTHSEC_ISSUER`), or the single one `authsec migrate --issuer <url>` names. Rows
   * stored before subjects were bound to their issuer (grants, live login sessions) are given the issuer when
   * there is exactly one; with none or several and such rows present, the migration fails with
   * `CONFIG_INVALID` naming `authsec migrate --issuer <url>`. Default: none.
   */
  readonly issuers?: readonly string[];
}

/** The tenant registry and router. Create with {@link createTenancy}. */
export interface Tenancy {
  /** The master database client. */
  readonly master: SqlClient;
  /** The quoted registry schema, e.g. `"authsec"`. */
  readonly masterSchema: string;
  /**
   * Applies pending migrations to the master database, then to every tenant (disabled ones included),
   * reporting progress after the master and after each tenant. Safe to run concurrently from several
   * processes. Returns how many migrations ran.
   */
  migrate(
    onProgress?: ((progress: MigrationProgress) => void) | TenancyMigrateOptions,
  ): Promise<{ master: number; tenants: number }>;
  /**
   * Registers a tenant and creates its schema or database, migrated. The id is checked before anything else
   * (`BAD_REQUEST`); an existing tenant is `BAD_REQUEST`; database placement on PGlite or without
   * `connectionString` is `CONFIG_INVALID`.
   */
  create(id: string, options?: CreateTenantOptions): Promise<TenantRecord>;
  /** Every registered tenant, by id. */
  list(): Promise<TenantRecord[]>;
  /** One tenant's row (fresh from the database), or `undefined`. A malformed id is `BAD_REQUEST`. */
  get(id: string): Promise<TenantRecord | undefined>;
  /** Disables a tenant: its tokens are refused (`TENANT_UNKNOWN`) on every replica. Unknown: `NOT_FOUND`. */
  disable(id: string): Promise<TenantRecord>;
  /** Enables a disabled tenant. Unknown: `NOT_FOUND`. */
  enable(id: string): Promise<TenantRecord>;
  /**
   * Allows an issuer to speak for a tenant. From the first one on, tokens of the tenant from any other issuer
   * are refused (`TENANT_UNKNOWN`) on every replica. Returns `false` when it was already allowed. Unknown
   * tenant: `NOT_FOUND`; an issuer that is not an http(s) URL: `BAD_REQUEST`.
   */
  addIssuer(id: string, issuer: string): Promise<boolean>;
  /**
   * Removes an allowed issuer. Once none is left, any trusted issuer may speak for the tenant again. Returns
   * `false` when it was not allowed. Unknown tenant: `NOT_FOUND`.
   */
  removeIssuer(id: string, issuer: string): Promise<boolean>;
  /**
   * Routes to an active tenant's data. A malformed, unknown or disabled id is `TENANT_UNKNOWN` (a malformed one
   * without touching the database); an unreachable database is `SERVICE_UNAVAILABLE`.
   */
  handle(id: string, options?: TenantHandleOptions): Promise<TenantHandle>;
  /**
   * Announces a change to every replica (this one included): a row in the change feed table, and a
   * notification on {@link CHANGES_CHANNEL} where the master database delivers them across processes.
   */
  publish(change: TenantChange): Promise<void>;
  /**
   * Listens for changes, from the time of the call: by notification, or by polling the change feed table
   * where notifications do not cross processes. `onReset` is called when changes may have been missed (the
   * listening connection was lost and re-established, or the database was found unreachable): drop every
   * cache then. Returns a function that stops listening.
   */
  subscribe(onChange: TenantChangeListener, onReset?: () => void): () => void;
  /** Stops listening and closes the tenant pools it opened. Does not close `master`. Idempotent. */
  close(): Promise<void>;
}

interface TenantRow {
  id: string;
  status: 'active' | 'disabled';
  placement: TenantPlacement;
  created_at: Date | string;
  issuers: string[] | null;
}

interface CachedRecord {
  readonly record: TenantRecord | undefined;
  readonly expiresAt: number;
}

function toRecord(row: TenantRow): TenantRecord {
  return Object.freeze({
    id: row.id,
    status: row.status,
    placement: row.placement,
    createdAt: row.created_at instanceof Date ? row.created_at : new Date(row.created_at),
    issuers: Object.freeze([...(row.issuers ?? [])].sort()),
  });
}

/** A safe, bounded rendering of an untrusted id for error messages. */
function describeId(id: unknown): string {
  return typeof id === 'string' ? JSON.stringify(id.slice(0, 60)) : typeof id;
}

function sqlState(error: unknown): string | undefined {
  const direct = (error as { code?: unknown } | null)?.code;
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  for (const code of [cause, direct]) if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  return undefined;
}

function configError(message: string): AuthSecError {
  return new AuthSecError('CONFIG_INVALID', message);
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw configError(`${name}: a positive integer is required`);
  return value;
}

/** Parses a notification payload; `undefined` when it is not one of ours. */
export function parseChange(payload: string): TenantChange | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { t, s, k, i } = value as { t?: unknown; s?: unknown; k?: unknown; i?: unknown };
  if (!isValidTenantId(t)) return undefined;
  if (s !== null && typeof s !== 'string') return undefined;
  if (k !== 'tenant' && k !== 'catalog' && k !== 'binding') return undefined;
  if (i !== undefined && i !== null && typeof i !== 'string') return undefined;
  return typeof i === 'string'
    ? { tenantId: t, subject: s, kind: k, issuer: i }
    : { tenantId: t, subject: s, kind: k };
}

/**
 * The wire form of a change: `{"t": tenantId, "s": subject|null, "k": kind}`, plus `"i": issuer` for a
 * person's binding change (older replicas ignore it and drop every issuer's entry of that subject).
 */
export function formatChange(change: TenantChange): string {
  return JSON.stringify({
    t: change.tenantId,
    s: change.subject,
    k: change.kind,
    ...(typeof change.issuer === 'string' ? { i: change.issuer } : {}),
  });
}

const ISSUER_PATTERN = /^[^\s\p{Cc}]{1,2048}$/u;

/**
 * @internal True for an issuer a tenant or a grant may name: an http(s) URL of at most 2048 characters, no
 * spaces, compared exactly with a token's `iss`.
 */
export function isIssuerUrl(issuer: unknown): issuer is string {
  if (typeof issuer !== 'string' || !ISSUER_PATTERN.test(issuer)) return false;
  try {
    const url = new URL(issuer);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}

/**
 * Creates the tenant registry and router, and starts listening for changes on the master database. A master
 * database that is down at this point is not fatal: the listener reconnects by itself, and requests fail
 * closed until it is back.
 */
export async function createTenancy(options: TenancyOptions): Promise<Tenancy> {
  if (typeof options !== 'object' || options === null || !options.master) {
    throw new TypeError('createTenancy: options.master is required');
  }
  const master = options.master;
  const masterSchemaName = options.masterSchema ?? 'authsec';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(masterSchemaName)) {
    throw configError('masterSchema: lowercase letters, digits and _ only, at most 63 characters');
  }
  const masterSchema = quoteIdent(masterSchemaName);
  const databasePrefix = options.databasePrefix ?? 'tenant_';
  if (!/^[a-z][a-z0-9_]{0,7}$/.test(databasePrefix)) {
    throw configError('databasePrefix: a lowercase letter, then letters, digits or _, at most 8 characters');
  }
  let serverUrl: URL | undefined;
  if (options.connectionString !== undefined) {
    try {
      serverUrl = new URL(options.connectionString);
    } catch {
      throw configError('connectionString: not a valid postgres:// URL');
    }
    if (!/^postgres(ql)?:$/.test(serverUrl.protocol)) {
      throw configError('connectionString: not a valid postgres:// URL');
    }
  }
  const maxTenantPools = positiveInt(options.maxTenantPools, 16, 'maxTenantPools');
  const tenantPoolSize = positiveInt(options.tenantPoolSize, 5, 'tenantPoolSize');
  const cacheTtlMs = options.cacheTtlMs ?? 1000;
  if (!Number.isFinite(cacheTtlMs) || cacheTtlMs < 0)
    throw configError('cacheTtlMs: a number >= 0 is required');
  const changePollIntervalMs = positiveInt(options.changePollIntervalMs, 250, 'changePollIntervalMs');
  const changeRetentionMs = positiveInt(options.changeRetentionMs, 3_600_000, 'changeRetentionMs');
  const logger = options.logger ?? createLogger();
  const clock = options.clock ?? Date.now;

  let closed = false;
  const records = new LRUCache<string, CachedRecord>({ max: MAX_CACHED_RECORDS });
  // Bumped whenever registry rows may have changed: a lookup in flight at that moment does not cache its result.
  let recordsVersion = 0;
  const forget = (id?: string) => {
    recordsVersion++;
    if (id === undefined) records.clear();
    else records.delete(id);
  };
  // Evicted pools waiting out their grace period before they close.
  const retiring = new Map<Promise<SqlClient>, NodeJS.Timeout>();
  const closePool = (pool: Promise<SqlClient>) => pool.then((c) => c.close()).catch(() => {});
  const pools = new LRUCache<string, Promise<SqlClient>>({
    max: maxTenantPools,
    dispose: (pool, id, reason) => {
      if (!closed && (reason === 'evict' || reason === 'delete')) retirePool(pool, id);
    },
  });
  const listeners = new Set<{ onChange: TenantChangeListener; onReset: (() => void) | undefined }>();

  const retirePool = (pool: Promise<SqlClient>, id: string) => {
    const timer = setTimeout(() => {
      retiring.delete(pool);
      void closePool(pool);
    }, POOL_CLOSE_GRACE_MS);
    timer.unref();
    retiring.set(pool, timer);
    logger.debug('Tenant pool retired', { tenant: id });
  };

  const reset = (why: string) => {
    forget();
    logger.debug('Tenancy caches dropped', { why });
    for (const l of listeners) {
      try {
        l.onReset?.();
      } catch (error) {
        logger.error('Tenancy reset listener failed', { error: String(error) });
      }
    }
  };

  const deliver = (change: TenantChange) => {
    if (change.kind === 'tenant') forget(change.tenantId);
    for (const l of listeners) {
      try {
        l.onChange(change);
      } catch (error) {
        logger.error('Tenancy change listener failed', { error: String(error) });
      }
    }
  };

  // Any sign that the database is away drops every cache: from then on each request needs the database and
  // fails closed until it is back.
  const fail = (error: unknown, what: string): AuthSecError => {
    const state = sqlState(error);
    if (state === '42P01' || state === '3F000') {
      return new AuthSecError(
        'CONFIG_INVALID',
        'The master database is not migrated: run `authsec migrate`',
        {
          cause: error,
        },
      );
    }
    const err = toDatabaseError(error, what);
    if (err.code === 'SERVICE_UNAVAILABLE') reset('database unavailable');
    return err;
  };

  let stopListening: (() => Promise<void>) | undefined;
  // Change feed polling, where notifications do not cross processes.
  const polling = !master.notifiesAcrossConnections;
  // Highest change feed seq already handled; undefined while unknown (the database was unreachable).
  let cursor: bigint | undefined;
  // Changes published (and delivered) by this tenancy, which the poller must not deliver again.
  const publishedHere = new Set<string>();
  let pollTimer: NodeJS.Timeout | undefined;
  let pollInFlight: Promise<void> | undefined;
  let pollFailing = false;

  const isMissingTable = (error: unknown) => sqlState(error) === '42P01' || sqlState(error) === '3F000';

  const readFeedHead = async (): Promise<bigint> => {
    try {
      const r = await master.query<{ seq: string }>(
        `SELECT coalesce(max(seq), 0)::text AS seq FROM ${masterSchema}.changes`,
      );
      return BigInt(r.rows[0]?.seq ?? '0');
    } catch (error) {
      // Not migrated yet: every row the table will ever hold comes later.
      if (isMissingTable(error)) return 0n;
      throw error;
    }
  };

  const pollOnce = async (): Promise<void> => {
    try {
      if (cursor === undefined) {
        cursor = await readFeedHead();
        // Changes made while the database was unreachable are not known: every cache goes.
        reset('change feed reachable');
        return;
      }
      for (;;) {
        const r: SqlResult<{ seq: string; payload: string }> = await master.query(
          `SELECT c.seq::text AS seq, c.payload FROM ${masterSchema}.changes c WHERE c.seq > $1 ORDER BY c.seq LIMIT ${CHANGE_POLL_BATCH}`,
          [cursor.toString()],
        );
        if (pollFailing) {
          pollFailing = false;
          reset('change feed reachable again');
        }
        for (const row of r.rows) {
          if (closed) return;
          cursor = BigInt(row.seq);
          if (publishedHere.delete(row.seq)) continue;
          const change = parseChange(row.payload);
          if (change) deliver(change);
          else reset('malformed change feed row');
        }
        if (r.rows.length < CHANGE_POLL_BATCH) return;
      }
    } catch (error) {
      if (closed || isMissingTable(error)) return;
      if (!pollFailing) {
        pollFailing = true;
        logger.debug('Change feed unreachable; polling goes on', { error: String(error) });
        reset('change feed unreachable');
      }
    }
  };

  if (polling) {
    try {
      cursor = await readFeedHead();
    } catch (error) {
      if (!isAuthSecError(error) || error.code !== 'SERVICE_UNAVAILABLE') throw error;
      logger.warn('Master database unreachable at start; the change feed is polled until it is back');
    }
    pollTimer = setInterval(() => {
      pollInFlight ??= pollOnce().finally(() => {
        pollInFlight = undefined;
      });
    }, changePollIntervalMs);
    pollTimer.unref();
  } else {
    try {
      stopListening = await master.listen(
        CHANGES_CHANNEL,
        (payload) => {
          if (closed) return;
          const change = parseChange(payload);
          if (change) deliver(change);
          else reset('malformed change notification');
        },
        { onResync: () => !closed && reset('change listener reconnected') },
      );
    } catch (error) {
      if (!isAuthSecError(error) || error.code !== 'SERVICE_UNAVAILABLE') throw error;
      logger.warn('Master database unreachable at start; change listener will reconnect by itself');
    }
  }

  const databaseUrl = (id: string): string => {
    if (!serverUrl) throw configError(`Tenant '${id}' uses database placement: connectionString is required`);
    const url = new URL(serverUrl.toString());
    url.pathname = `/${databasePrefix}${id}`;
    return url.toString();
  };

  const requireDatabasePlacement = (id: string) => {
    if (master.kind !== 'pg') {
      throw configError(`Tenant '${id}': database placement needs real PostgreSQL (PGlite has one database)`);
    }
    databaseUrl(id);
  };

  const route = async (record: TenantRecord): Promise<TenantHandle> => {
    if (record.placement === 'schema') {
      return Object.freeze({
        tenant: record,
        sql: master,
        schema: quoteIdent(`${TENANT_SCHEMA_PREFIX}${record.id}`),
      });
    }
    requireDatabasePlacement(record.id);
    let pool = pools.get(record.id);
    if (!pool) {
      pool = createPgClient({
        connectionString: databaseUrl(record.id),
        max: tenantPoolSize,
        logger,
        applicationName: 'authsec',
      });
      pools.set(record.id, pool);
      // A failed creation must not stay cached.
      pool.catch(() => {
        if (pools.peek(record.id) === pool) pools.delete(record.id);
      });
    }
    return Object.freeze({ tenant: record, sql: await pool, schema: quoteIdent(TENANT_DATABASE_SCHEMA) });
  };

  // The registry row with its allowed issuers, read (and cached) together: one lookup decides both.
  const SELECT_TENANTS = `SELECT t.id, t.status, t.placement, t.created_at,
      ARRAY(SELECT i.issuer FROM ${masterSchema}.tenant_issuers i WHERE i.tenant_id = t.id ORDER BY i.issuer) AS issuers
    FROM ${masterSchema}.tenants t`;

  const readRecord = async (id: string): Promise<TenantRecord | undefined> => {
    const r = await master.query<TenantRow>(`${SELECT_TENANTS} WHERE t.id = $1`, [id]);
    return r.rows[0] ? toRecord(r.rows[0]) : undefined;
  };

  const assertOpen = () => {
    if (closed) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The tenancy is closed');
  };

  const requireValidId = (id: string) => {
    if (!isValidTenantId(id)) {
      throw new AuthSecError(
        'BAD_REQUEST',
        `Invalid tenant id ${describeId(id)}: lowercase letters, digits and '-', starting with a letter or digit, at most 55 characters`,
        { details: { tenant: String(id).slice(0, 60) } },
      );
    }
  };

  const setStatus = async (id: string, status: 'active' | 'disabled'): Promise<TenantRecord> => {
    requireValidId(id);
    assertOpen();
    let row: TenantRow | undefined;
    try {
      const r = await master.query<TenantRow>(
        `UPDATE ${masterSchema}.tenants SET status = $2, updated_at = now() WHERE id = $1
         RETURNING id, status, placement, created_at`,
        [id, status],
      );
      row = r.rows[0];
    } catch (error) {
      throw fail(error, 'master database');
    }
    if (!row) throw new AuthSecError('NOT_FOUND', `Unknown tenant '${id}'`, { details: { tenant: id } });
    forget(id);
    await tenancy.publish({ tenantId: id, subject: null, kind: 'tenant' });
    return toRecord({ ...row, issuers: await readIssuers(id) });
  };

  const readIssuers = async (id: string): Promise<string[]> => {
    try {
      const r = await master.query<{ issuer: string }>(
        `SELECT issuer FROM ${masterSchema}.tenant_issuers WHERE tenant_id = $1 ORDER BY issuer`,
        [id],
      );
      return r.rows.map((row) => row.issuer);
    } catch (error) {
      throw fail(error, 'master database');
    }
  };

  const changeIssuer = async (id: string, issuer: string, add: boolean): Promise<boolean> => {
    requireValidId(id);
    if (!isIssuerUrl(issuer)) {
      throw new AuthSecError(
        'BAD_REQUEST',
        `Invalid issuer ${describeId(issuer)}: an http(s) URL without spaces, at most 2048 characters, exactly as tokens carry it in iss`,
        { details: { tenant: id } },
      );
    }
    assertOpen();
    let changed: boolean;
    try {
      changed = await master.transaction(async (tx) => {
        const t = await tx.query(`SELECT 1 FROM ${masterSchema}.tenants WHERE id = $1 FOR KEY SHARE`, [id]);
        if (t.rows.length === 0) {
          throw new AuthSecError('NOT_FOUND', `Unknown tenant '${id}'`, { details: { tenant: id } });
        }
        const r = add
          ? await tx.query(
              `INSERT INTO ${masterSchema}.tenant_issuers (tenant_id, issuer) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
              [id, issuer],
            )
          : await tx.query(
              `DELETE FROM ${masterSchema}.tenant_issuers WHERE tenant_id = $1 AND issuer = $2`,
              [id, issuer],
            );
        return r.rowCount > 0;
      });
    } catch (error) {
      if (isAuthSecError(error) && error.code === 'NOT_FOUND') throw error;
      throw fail(error, 'master database');
    }
    if (changed) {
      // The allowed issuers travel with the registry row: a `tenant` change drops it on every replica.
      forget(id);
      await tenancy.publish({ tenantId: id, subject: null, kind: 'tenant' });
    }
    return changed;
  };

  const tenancy: Tenancy = {
    master,
    masterSchema,

    async migrate(progressOrOptions) {
      assertOpen();
      const migrateOptions: TenancyMigrateOptions =
        typeof progressOrOptions === 'function'
          ? { onProgress: progressOrOptions }
          : (progressOrOptions ?? {});
      const { onProgress } = migrateOptions;
      const issuers = migrateOptions.issuers ?? [];
      let masterApplied: number;
      try {
        masterApplied = await migrateSchema(master, 'master', masterSchemaName, undefined, {
          issuers,
          label: 'the master database',
        });
      } catch (error) {
        if (isAuthSecError(error) && error.code === 'CONFIG_INVALID') throw error;
        throw fail(error, 'master database');
      }
      onProgress?.({ scope: 'master', done: 1, total: 1, applied: masterApplied });
      const all = await tenancy.list();
      let tenantsApplied = 0;
      let done = 0;
      for (const record of all) {
        let applied: number;
        try {
          const h = await route(record);
          applied = await migrateSchema(h.sql, 'tenant', schemaNameOf(record), undefined, {
            issuers,
            label: `tenant '${record.id}'`,
          });
        } catch (error) {
          if (isAuthSecError(error) && error.code === 'CONFIG_INVALID') throw error;
          throw fail(error, `database of tenant '${record.id}'`);
        }
        tenantsApplied += applied;
        done++;
        onProgress?.({ scope: 'tenant', tenantId: record.id, done, total: all.length, applied });
      }
      return { master: masterApplied, tenants: tenantsApplied };
    },

    async create(id, createOptions = {}) {
      requireValidId(id);
      const placement = createOptions.placement ?? 'schema';
      if (placement !== 'schema' && placement !== 'database') {
        throw new AuthSecError(
          'BAD_REQUEST',
          `Unknown placement '${String(placement)}': schema or database`,
          {
            details: { tenant: id },
          },
        );
      }
      if (placement === 'database') requireDatabasePlacement(id);
      assertOpen();
      const exists = () =>
        new AuthSecError('BAD_REQUEST', `Tenant '${id}' already exists`, { details: { tenant: id } });
      try {
        if (await readRecord(id)) throw exists();
        if (placement === 'schema') {
          await migrateSchema(master, 'tenant', `${TENANT_SCHEMA_PREFIX}${id}`);
        } else {
          // CREATE DATABASE cannot run inside a transaction: one plain statement on the master pool. A database
          // left by an earlier, interrupted create is reused.
          try {
            await master.query(`CREATE DATABASE ${quoteIdent(`${databasePrefix}${id}`)}`);
          } catch (error) {
            const state = sqlState(error);
            if (state !== '42P04' && state !== '23505') throw error;
          }
          const pending: TenantRecord = { id, status: 'active', placement, createdAt: new Date(clock()) };
          const h = await route(pending);
          await migrateSchema(h.sql, 'tenant', TENANT_DATABASE_SCHEMA);
        }
        // The registry row comes last: a tenant is routable only once its tables exist.
        const r = await master.query<TenantRow>(
          `INSERT INTO ${masterSchema}.tenants (id, status, placement) VALUES ($1, 'active', $2)
           ON CONFLICT (id) DO NOTHING RETURNING id, status, placement, created_at`,
          [id, placement],
        );
        if (!r.rows[0]) throw exists();
        forget(id);
        await tenancy.publish({ tenantId: id, subject: null, kind: 'tenant' });
        logger.info('Tenant created', { tenant: id, placement });
        return toRecord(r.rows[0]);
      } catch (error) {
        if (isAuthSecError(error) && error.code === 'BAD_REQUEST') throw error;
        throw fail(error, `database of tenant '${id}'`);
      }
    },

    async list() {
      assertOpen();
      try {
        const r = await master.query<TenantRow>(`${SELECT_TENANTS} ORDER BY t.id`);
        return r.rows.map(toRecord);
      } catch (error) {
        throw fail(error, 'master database');
      }
    },

    async get(id) {
      requireValidId(id);
      assertOpen();
      try {
        return await readRecord(id);
      } catch (error) {
        throw fail(error, 'master database');
      }
    },

    disable: (id) => setStatus(id, 'disabled'),
    enable: (id) => setStatus(id, 'active'),
    addIssuer: (id, issuer) => changeIssuer(id, issuer, true),
    removeIssuer: (id, issuer) => changeIssuer(id, issuer, false),

    async handle(id, handleOptions = {}) {
      if (!isValidTenantId(id)) {
        throw new AuthSecError('TENANT_UNKNOWN', `Unknown tenant ${describeId(id)}`);
      }
      assertOpen();
      const now = clock();
      let cached = records.get(id);
      if (!cached || cached.expiresAt <= now) {
        const before = recordsVersion;
        try {
          cached = { record: await readRecord(id), expiresAt: now + cacheTtlMs };
        } catch (error) {
          throw fail(error, 'master database');
        }
        if (before === recordsVersion) records.set(id, cached);
      }
      const record = cached.record;
      if (!record || (record.status !== 'active' && !handleOptions.allowDisabled)) {
        throw new AuthSecError('TENANT_UNKNOWN', `Unknown or disabled tenant '${id}'`, {
          details: { tenant: id },
        });
      }
      const issuer = handleOptions.issuer;
      const allowed = record.issuers ?? [];
      if (issuer !== undefined && allowed.length > 0 && !allowed.includes(issuer)) {
        // Answered exactly like an unknown tenant, so a foreign issuer learns nothing; told apart in the log.
        logger.debug('A token from an issuer the tenant does not allow was refused', { tenant: id, issuer });
        throw new AuthSecError('TENANT_UNKNOWN', `Unknown or disabled tenant '${id}'`, {
          details: { tenant: id },
        });
      }
      try {
        return await route(record);
      } catch (error) {
        throw fail(error, `database of tenant '${id}'`);
      }
    },

    async publish(change) {
      if (!isValidTenantId(change.tenantId)) throw new TypeError('publish: invalid tenant id');
      assertOpen();
      const payload = formatChange(change);
      let seq: string | undefined;
      try {
        seq = await master.transaction(async (tx) => {
          // Publishers take turns, so rows commit in seq order: a poller that has read seq n never finds a
          // smaller one committed later.
          await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
            `authsec-changes:${masterSchemaName}`,
          ]);
          const r = await tx.query<{ seq: string }>(
            `INSERT INTO ${masterSchema}.changes (payload) VALUES ($1) RETURNING seq::text AS seq`,
            [payload],
          );
          await tx.query(`DELETE FROM ${masterSchema}.changes WHERE created_at < now() - $1::interval`, [
            `${changeRetentionMs} milliseconds`,
          ]);
          // Sent at commit, so a listener never hears of a change that was rolled back. Sent when this process
          // polls too: replicas that listen may share the database.
          await tx.query('SELECT pg_notify($1, $2)', [CHANGES_CHANNEL, payload]);
          return r.rows[0]?.seq;
        });
      } catch (error) {
        throw fail(error, 'master database');
      }
      // Polling: this process hears its own change at once instead of at the next poll.
      if (polling && seq !== undefined && !closed) {
        publishedHere.add(seq);
        deliver(change);
      }
    },

    subscribe(onChange, onReset) {
      const entry = { onChange, onReset };
      listeners.add(entry);
      return () => {
        listeners.delete(entry);
      };
    },

    async close() {
      if (closed) return;
      closed = true;
      listeners.clear();
      forget();
      if (pollTimer) clearInterval(pollTimer);
      publishedHere.clear();
      await pollInFlight;
      const open = [...pools.values(), ...retiring.keys()];
      for (const timer of retiring.values()) clearTimeout(timer);
      retiring.clear();
      pools.clear();
      await Promise.allSettled([stopListening?.(), ...open.map(closePool)]);
    },
  };

  // The unquoted schema name a record's tables live in, within the database `route` returns.
  const schemaNameOf = (record: TenantRecord): string =>
    record.placement === 'schema' ? `${TENANT_SCHEMA_PREFIX}${record.id}` : TENANT_DATABASE_SCHEMA;

  return tenancy;
}
