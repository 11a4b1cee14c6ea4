import { constantTimeEqual } from '../crypto.js';
import type { MasterKeyRing } from '../env.js';
import { AuthSecError } from '../errors.js';
import {
  bindingHashOf,
  bindingMatches,
  buildAuthenticated,
  buildPending,
  checkMasterKey,
  checkSubjectArguments,
  checkTokenUpdate,
  hashSecret,
  isWellFormedSecret,
  loginNotFound,
  openPending,
  openTokens,
  resolveSessionOptions,
  type SessionStore,
  type SessionStoreOptions,
  type StoredSession,
  sealTokenUpdate,
  sessionNotFound,
  startCleanupTimer,
  statusAt,
  storeClosed,
  toSessionRecord,
  toSessionSummary,
} from '../sessions.js';
import { legacyIssuer, type Migration, migrateSchema, registerMigrations } from './migrations.js';
import { quoteIdent, type SqlClient, type SqlQueryable } from './sql.js';

/**
 * The Postgres {@link SessionStore}: login sessions in the **master** database (`<schema>.login_sessions`).
 *
 * Why the master database, for authenticated sessions too: a pending login has no tenant yet, and the
 * callback finds it by its state alone; keeping the session in the same row when it becomes authenticated
 * means one lookup by id hash serves every call, with no second index to keep in step across databases, and
 * "log out" or "expire" is one row update. The `tenant_id` column records whose session it is; the tenant's
 * own data (catalog, bindings, audit, services) stays in the tenant's database or schema, and every public
 * read by session id gives back only that session (a 256-bit secret), so no tenant can reach another's rows.
 *
 * Every replica on the same database sees the same sessions. `consumePending` locks the row (`SELECT ... FOR
 * UPDATE`) and clears the state hash in one transaction, so a state is consumed once even when replicas race;
 * per-binding and per-subject limits hold under transaction-scoped advisory locks.
 */

/** The migrations of the `sessions` component (master scope). Registered on import. */
export const SESSION_MIGRATIONS: readonly Migration[] = [
  {
    component: 'sessions',
    version: 1,
    name: 'login sessions',
    sql: (schema) => `
CREATE TABLE IF NOT EXISTS ${schema}.login_sessions (
  id_hash text PRIMARY KEY CHECK (id_hash ~ '^[0-9a-f]{64}$'),
  state_hash text UNIQUE CHECK (state_hash ~ '^[0-9a-f]{64}$'),
  binding_hash text NOT NULL CHECK (binding_hash ~ '^[0-9a-f]{64}$'),
  status text NOT NULL CHECK (status IN ('pending', 'authenticated', 'logged_out')),
  consumed boolean NOT NULL DEFAULT false,
  pending_sealed bytea,
  tenant_id text CHECK (tenant_id ~ '^[a-z0-9][a-z0-9-]{0,54}$'),
  subject text,
  tokens_sealed bytea,
  token_expires_at bigint,
  created_at bigint NOT NULL,
  authenticated_at bigint,
  expires_at bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS login_sessions_expires_idx ON ${schema}.login_sessions (expires_at);
CREATE INDEX IF NOT EXISTS login_sessions_pending_idx ON ${schema}.login_sessions (binding_hash, expires_at)
  WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS login_sessions_subject_idx ON ${schema}.login_sessions (tenant_id, subject, authenticated_at)
  WHERE tenant_id IS NOT NULL;
`,
  },
  {
    component: 'sessions',
    version: 2,
    name: 'sessions keyed by issuer',
    sql: (schema) => `
ALTER TABLE ${schema}.login_sessions ADD COLUMN IF NOT EXISTS issuer text
  CHECK (char_length(issuer) BETWEEN 1 AND 4096);
CREATE INDEX IF NOT EXISTS login_sessions_issuer_subject_idx
  ON ${schema}.login_sessions (tenant_id, subject, issuer, authenticated_at) WHERE tenant_id IS NOT NULL;
`,
    // Live sessions authenticated before the issuer was recorded go to the one configured issuer. With none
    // or several, nobody can tell whose they were: they are logged out (a session is re-created by logging
    // in again, unlike a grant, which is why grants stop the migration instead).
    data: async (tx, schema, context) => {
      const live = `status = 'authenticated' AND issuer IS NULL AND expires_at > (extract(epoch FROM now()) * 1000)::bigint`;
      const r = await tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${schema}.login_sessions WHERE ${live}`,
      );
      const count = r.rows[0]?.n ?? 0;
      if (count === 0) return;
      let issuer: string | undefined;
      try {
        issuer = legacyIssuer(context, 'login session(s)', count);
      } catch {
        issuer = undefined;
      }
      if (issuer === undefined) {
        await tx.query(
          `UPDATE ${schema}.login_sessions SET status = 'logged_out', tokens_sealed = NULL WHERE ${live}`,
        );
      } else {
        await tx.query(`UPDATE ${schema}.login_sessions SET issuer = $1 WHERE ${live}`, [issuer]);
      }
    },
  },
];

registerMigrations('master', SESSION_MIGRATIONS);

/**
 * Creates (or upgrades) the session table in `schema` of the master database, running only the `sessions`
 * migrations. Deployments normally run every master migration through the tenancy module (`authsec
 * migrate`); this is for a store used on its own, and for tests. Safe to call concurrently.
 *
 * @param schema Unquoted schema name. Default `'authsec'`.
 * @returns How many migrations ran.
 */
export async function ensureSessionSchema(sql: SqlClient, schema = 'authsec'): Promise<number> {
  quoteIdent(schema);
  return migrateSchema(sql, 'master', schema, SESSION_MIGRATIONS);
}

/** Options of {@link createPostgresSessionStore}. */
export interface PostgresSessionStoreOptions extends SessionStoreOptions {
  /**
   * Client on the master database. The store never closes it. Its table must exist: run the master migrations
   * (or {@link ensureSessionSchema}) first.
   */
  readonly sql: SqlClient;
  /** Unquoted schema of the master tables. Default `'authsec'`. */
  readonly schema?: string;
  /**
   * Key ring sealing tokens and PKCE secrets (`AUTHSEC_MASTER_KEY`, parsed with `parseMasterKey`). Required:
   * every replica needs the same ring. Add the new key first to rotate; keep old keys until rows sealed with
   * them have expired (at most `sessionTtlMs`).
   */
  readonly masterKey: MasterKeyRing;
}

/** A row as the drivers return it: bigint as string (pg) or number (PGlite), bytea as Buffer or Uint8Array. */
interface SessionRow {
  id_hash: string;
  state_hash: string | null;
  binding_hash: string;
  status: StoredSession['status'];
  consumed: boolean;
  pending_sealed: Uint8Array | null;
  tenant_id: string | null;
  subject: string | null;
  issuer: string | null;
  tokens_sealed: Uint8Array | null;
  token_expires_at: string | number | null;
  created_at: string | number;
  authenticated_at: string | number | null;
  expires_at: string | number;
}

const COLUMNS =
  'id_hash, state_hash, binding_hash, status, consumed, pending_sealed, tenant_id, subject, issuer, tokens_sealed, ' +
  'token_expires_at, created_at, authenticated_at, expires_at';

function num(value: string | number | null): number | undefined {
  return value === null ? undefined : Number(value);
}

function fromRow(r: SessionRow): StoredSession {
  return {
    idHash: r.id_hash,
    stateHash: r.state_hash ?? undefined,
    bindingHash: r.binding_hash,
    status: r.status,
    consumed: r.consumed,
    pendingSealed: r.pending_sealed ?? undefined,
    tenantId: r.tenant_id ?? undefined,
    subject: r.subject ?? undefined,
    issuer: r.issuer ?? undefined,
    tokensSealed: r.tokens_sealed ?? undefined,
    tokenExpiresAt: num(r.token_expires_at),
    createdAt: Number(r.created_at),
    authenticatedAt: num(r.authenticated_at),
    expiresAt: Number(r.expires_at),
  };
}

/**
 * A {@link SessionStore} in PostgreSQL (or PGlite), shared by every replica on the same database. Only hashes
 * of session ids, states and bindings are stored; tokens and PKCE secrets are sealed (AES-256-GCM) under
 * `masterKey`. A database that cannot be reached is `SERVICE_UNAVAILABLE`. Invalid options are
 * `CONFIG_INVALID`; a schema name that cannot be an identifier is a `TypeError`.
 */
export function createPostgresSessionStore(options: PostgresSessionStoreOptions): SessionStore {
  const resolved = resolveSessionOptions(options);
  const ring = checkMasterKey(options.masterKey);
  const sql = options.sql;
  if (!sql || typeof sql.query !== 'function' || typeof sql.transaction !== 'function') {
    throw new AuthSecError('CONFIG_INVALID', 'Session store option sql must be a SqlClient');
  }
  const table = `${quoteIdent(options.schema ?? 'authsec')}.login_sessions`;
  const { clock, logger } = resolved;
  let closed = false;

  const live = (): void => {
    if (closed) throw storeClosed();
  };
  const select = async (
    q: SqlQueryable,
    idHash: string,
    lock = false,
  ): Promise<StoredSession | undefined> => {
    const r = await q.query<SessionRow>(
      `SELECT ${COLUMNS} FROM ${table} WHERE id_hash = $1${lock ? ' FOR UPDATE' : ''}`,
      [idHash],
    );
    return r.rows[0] ? fromRow(r.rows[0]) : undefined;
  };
  const lookup = async (sessionId: unknown, binding: unknown): Promise<StoredSession | undefined> => {
    const wanted = bindingHashOf(binding);
    if (!isWellFormedSecret(sessionId)) return undefined;
    const row = await select(sql, hashSecret(sessionId));
    return row && bindingMatches(row.bindingHash, wanted) ? row : undefined;
  };
  // Serialises writers of one binding or subject across replicas; hashtext collisions only over-serialise.
  const lock = (tx: SqlQueryable, key: string) =>
    tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [key]);

  const store: SessionStore = {
    async createPending(input) {
      live();
      const now = clock();
      const { created, row } = buildPending(ring, input, resolved, now);
      await sql.transaction(async (tx) => {
        await lock(tx, `authsec-sessions:binding:${row.bindingHash}`);
        const mine = await tx.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${table} WHERE status = 'pending' AND binding_hash = $1 AND expires_at > $2`,
          [row.bindingHash, now],
        );
        if ((mine.rows[0]?.n ?? 0) >= resolved.maxPendingPerBinding) {
          throw new AuthSecError('BAD_REQUEST', 'Too many pending logins; finish or wait for one to expire');
        }
        // Bounded count: never reads more than maxPending rows. Not locked across bindings, so replicas
        // racing at the cap may overshoot it by a few rows; it is a flood guard, not an exact quota.
        const all = await tx.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM (SELECT 1 FROM ${table} WHERE status = 'pending' AND expires_at > $1 LIMIT $2) p`,
          [now, resolved.maxPending],
        );
        if ((all.rows[0]?.n ?? 0) >= resolved.maxPending) {
          logger.warn('Pending login limit reached', { maxPending: resolved.maxPending });
          throw new AuthSecError('SERVICE_UNAVAILABLE', 'Too many pending logins');
        }
        await tx.query(
          `INSERT INTO ${table} (id_hash, state_hash, binding_hash, status, consumed, pending_sealed, created_at, expires_at)
           VALUES ($1, $2, $3, 'pending', false, $4, $5, $6)`,
          [row.idHash, row.stateHash, row.bindingHash, row.pendingSealed, row.createdAt, row.expiresAt],
        );
      });
      return created;
    },

    async consumePending(state) {
      live();
      if (!isWellFormedSecret(state)) throw loginNotFound();
      const stateHash = hashSecret(state);
      const now = clock();
      // Lock the row, then clear its state in the same transaction: a racing consumer (another replica)
      // waits on the lock, re-reads the row, no longer matches the state and finds nothing.
      const result = await sql.transaction(async (tx) => {
        const r = await tx.query<SessionRow>(
          `SELECT ${COLUMNS} FROM ${table} WHERE state_hash = $1 AND status = 'pending' FOR UPDATE`,
          [stateHash],
        );
        const row = r.rows[0] ? fromRow(r.rows[0]) : undefined;
        if (!row || row.stateHash === undefined || !constantTimeEqual(row.stateHash, stateHash)) {
          return { kind: 'missing' as const };
        }
        await tx.query(
          `UPDATE ${table} SET state_hash = NULL, consumed = true, pending_sealed = NULL WHERE id_hash = $1`,
          [row.idHash],
        );
        if (row.expiresAt <= now || !row.pendingSealed) return { kind: 'expired' as const };
        // Opened before commit: if it cannot be opened (wrong key), the transaction rolls back.
        return {
          kind: 'ok' as const,
          value: openPending(ring, row.idHash, row.pendingSealed, row.expiresAt),
        };
      });
      if (result.kind === 'missing') throw loginNotFound();
      if (result.kind === 'expired') throw loginNotFound(true);
      return result.value;
    },

    async authenticate(sessionId, input) {
      live();
      if (!isWellFormedSecret(sessionId)) throw sessionNotFound('login awaiting authentication');
      const idHash = hashSecret(sessionId);
      const now = clock();
      const fields = buildAuthenticated(ring, idHash, input, resolved, now);
      await sql.transaction(async (tx) => {
        const row = await select(tx, idHash, true);
        if (row?.status !== 'pending' || !row.consumed || row.expiresAt <= now) {
          throw sessionNotFound('login awaiting authentication');
        }
        // A person is (issuer, subject): the limit counts one issuer's subject only.
        await lock(
          tx,
          `authsec-sessions:subject:${fields.tenantId}\n${fields.issuer ?? ''}\n${fields.subject}`,
        );
        const active = await tx.query<{ id_hash: string }>(
          `SELECT id_hash FROM ${table}
            WHERE tenant_id = $1 AND subject = $2 AND issuer IS NOT DISTINCT FROM $4::text
              AND status = 'authenticated' AND expires_at > $3
            ORDER BY authenticated_at, id_hash FOR UPDATE`,
          [fields.tenantId, fields.subject, now, fields.issuer ?? null],
        );
        const evict = active.rows
          .slice(0, Math.max(0, active.rows.length - resolved.maxSessionsPerSubject + 1))
          .map((r) => r.id_hash);
        if (evict.length > 0) {
          await tx.query(
            `UPDATE ${table} SET status = 'logged_out', tokens_sealed = NULL WHERE id_hash = ANY($1::text[])`,
            [evict],
          );
        }
        await tx.query(
          `UPDATE ${table}
              SET status = 'authenticated', tenant_id = $2, subject = $3, tokens_sealed = $4, token_expires_at = $5,
                  authenticated_at = $6, expires_at = $7, pending_sealed = NULL, issuer = $8
            WHERE id_hash = $1`,
          [
            idHash,
            fields.tenantId,
            fields.subject,
            fields.tokensSealed,
            fields.tokenExpiresAt,
            now,
            fields.expiresAt,
            fields.issuer ?? null,
          ],
        );
      });
    },

    async get(sessionId, binding) {
      live();
      const row = await lookup(sessionId, binding);
      return row ? toSessionRecord(row, clock()) : undefined;
    },

    async tokens(sessionId, binding) {
      live();
      const row = await lookup(sessionId, binding);
      if (!row || statusAt(row, clock()) !== 'authenticated' || !row.tokensSealed) return undefined;
      return openTokens(ring, row.idHash, row.tokensSealed, row.tokenExpiresAt ?? 0);
    },

    async updateTokens(sessionId, update) {
      live();
      const checked = checkTokenUpdate(update);
      if (!isWellFormedSecret(sessionId)) throw sessionNotFound('authenticated session');
      const idHash = hashSecret(sessionId);
      // Locked read-merge-write: two replicas refreshing at once must not lose a rotated refresh token.
      await sql.transaction(async (tx) => {
        const row = await select(tx, idHash, true);
        if (!row || statusAt(row, clock()) !== 'authenticated' || !row.tokensSealed) {
          throw sessionNotFound('authenticated session');
        }
        const current = openTokens(ring, idHash, row.tokensSealed, row.tokenExpiresAt ?? 0);
        const next = sealTokenUpdate(ring, idHash, current, checked);
        await tx.query(`UPDATE ${table} SET tokens_sealed = $2, token_expires_at = $3 WHERE id_hash = $1`, [
          idHash,
          next.tokensSealed,
          next.tokenExpiresAt,
        ]);
      });
    },

    async logout(sessionId, binding) {
      live();
      const wanted = bindingHashOf(binding);
      if (!isWellFormedSecret(sessionId)) return false;
      const r = await sql.query(
        `UPDATE ${table}
            SET status = 'logged_out', state_hash = NULL, pending_sealed = NULL, tokens_sealed = NULL
          WHERE id_hash = $1 AND status <> 'logged_out' AND expires_at > $2 AND ($3::text IS NULL OR binding_hash = $3)`,
        [hashSecret(sessionId), clock(), wanted ?? null],
      );
      return r.rowCount > 0;
    },

    async listForSubject(tenantId, subject, issuer) {
      live();
      checkSubjectArguments(tenantId, subject, issuer);
      const r = await sql.query<SessionRow>(
        `SELECT ${COLUMNS} FROM ${table} WHERE tenant_id = $1 AND subject = $2 AND ($3::text IS NULL OR issuer = $3)
          ORDER BY authenticated_at, id_hash`,
        [tenantId, subject, issuer ?? null],
      );
      const now = clock();
      return r.rows.map((row) => toSessionSummary(fromRow(row), now));
    },

    async cleanup() {
      live();
      const r = await sql.query(`DELETE FROM ${table} WHERE expires_at <= $1`, [clock()]);
      return r.rowCount;
    },

    async close() {
      if (closed) return;
      closed = true;
      stopCleanup();
    },
  };
  const stopCleanup = startCleanupTimer(store, resolved);
  return store;
}
