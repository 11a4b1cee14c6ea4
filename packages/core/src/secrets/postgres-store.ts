import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { open, seal } from '../crypto.js';
import type { MasterKeyRing } from '../env.js';
import { AuthSecError, isAuthSecError } from '../errors.js';
import { createLogger } from '../logger.js';
import { type Migration, registerMigrations } from '../postgres/migrations.js';
import { type SqlQueryable, toDatabaseError } from '../postgres/sql.js';
import type { Tenancy } from '../postgres/tenancy.js';
import type { TenantHandle } from '../postgres/tenancy-types.js';
import type { Clock, Logger, Requirement } from '../types.js';
import {
  type CheckedInput,
  canonicalJson,
  checkCredentials,
  checkGraceMs,
  checkInput,
  checkServiceName,
  checkTenantId,
  checkVersion,
  deepFreeze,
  secretSummary,
  storedSecret,
} from './common.js';
import type { SecretBackend, ServiceSecretSummary, StoredServiceSecret } from './types.js';
import type { SecretVersionProbe } from './version-probe.js';

/**
 * The encrypted PostgreSQL secret store, the embedded default: each tenant's service credentials in its own
 * schema or database (`service_secrets`), one row per (service, version), with envelope encryption.
 *
 * - Every version has its own random 256-bit data key. The credentials (JSON) are sealed with it (AES-256-GCM,
 *   fresh 96-bit IV) under an AAD that binds the ciphertext to its tenant, service name and version **and** to
 *   the row's descriptive columns (type, auth type, URL, metadata, requirement, credential keys): someone who
 *   can write the table but not read the key cannot point a stored token at another URL or loosen who may read
 *   it; the next read fails (`INTERNAL`) instead.
 * - The data key is wrapped with the master key ring (`seal`, purpose `secret-data-key`, AAD tenant + name +
 *   version), and the ring key id is kept beside it. {@link PostgresSecretBackend.rewrapAll} re-wraps data keys
 *   under the ring's active key without touching the credential ciphertexts: master-key rotation needs no
 *   downtime as long as the old key stays in the ring until the re-wrap is done.
 * - Rotation keeps the previous version with an `expires_at` (the grace period); reads of an expired version
 *   find nothing, and expired rows are deleted on the tenant's next write.
 */

/** The `seal` purpose of wrapped data keys. */
export const SECRET_DATA_KEY_PURPOSE = 'secret-data-key';

const CIPHERTEXT_VERSION = 1;
const REWRAP_BATCH = 200;

/** The migrations of the `secrets` component (tenant scope). Registered on import. */
export const SECRET_MIGRATIONS: readonly Migration[] = [
  {
    component: 'secrets',
    version: 1,
    name: 'service credentials (envelope encrypted)',
    sql: (s) => `
CREATE TABLE IF NOT EXISTS ${s}.service_secrets (
  name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 128 AND name !~ '[[:cntrl:]]'),
  version integer NOT NULL CHECK (version >= 1),
  service_type text,
  auth_type text,
  url text,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  requirement jsonb,
  credential_keys jsonb NOT NULL,
  ciphertext bytea NOT NULL,
  wrapped_key bytea NOT NULL,
  key_id text NOT NULL,
  created_at bigint NOT NULL,
  expires_at bigint,
  PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS service_secrets_key_id_idx ON ${s}.service_secrets (key_id);
CREATE INDEX IF NOT EXISTS service_secrets_expires_idx ON ${s}.service_secrets (expires_at)
  WHERE expires_at IS NOT NULL;`,
  },
];

registerMigrations('tenant', SECRET_MIGRATIONS);

/** Options of {@link createPostgresSecretBackend}. */
export interface PostgresSecretBackendOptions {
  /** Routes a tenant id to its schema or database (`openStorage(...).tenancy`). Not closed by the backend. */
  readonly tenancy: Tenancy;
  /**
   * The master key ring (`AUTHSEC_MASTER_KEY`). New data keys are wrapped with its active key; the other keys
   * still unwrap, so keep a retired key in the ring until {@link PostgresSecretBackend.rewrapAll} has run.
   */
  readonly masterKey: MasterKeyRing;
  /** Clock (ms) for versions' times and grace periods. Default `Date.now`. */
  readonly clock?: Clock;
  /** Logger (re-wrap problems). Default: JSON lines on stderr. */
  readonly logger?: Logger;
}

/** What {@link PostgresSecretBackend.rewrapAll} did. */
export interface RewrapResult {
  /** Tenants visited. */
  readonly tenants: number;
  /** Data keys re-wrapped under the active master key. */
  readonly rewrapped: number;
  /**
   * Data keys that could not be unwrapped (altered rows, or a key already gone from the ring), left as they
   * are and logged. Keep the old key in the ring while this is not 0.
   */
  readonly failed: number;
}

/** The encrypted PostgreSQL {@link SecretBackend}. */
export interface PostgresSecretBackend extends SecretBackend, SecretVersionProbe {
  readonly kind: 'postgres';
  /**
   * Re-wraps every data key not wrapped under the ring's active key (of one tenant, or of every tenant,
   * disabled ones included), leaving the credential ciphertexts as they are. Safe while serving: reads keep
   * working throughout, since the old key is still in the ring. Run it after making a new key active; remove
   * the old key from the ring only afterwards, once `failed` is 0.
   */
  rewrapAll(tenantId?: string): Promise<RewrapResult>;
}

interface SecretRow {
  name: string;
  version: number | string;
  service_type: string | null;
  auth_type: string | null;
  url: string | null;
  metadata: Record<string, string> | string | null;
  requirement: Requirement | string | null;
  credential_keys: string[] | string;
  created_at: number | string;
}

interface SealedRow extends SecretRow {
  ciphertext: Uint8Array;
  wrapped_key: Uint8Array;
  key_id: string;
}

const COLUMNS =
  'name, version, service_type, auth_type, url, metadata, requirement, credential_keys, created_at';

// Drivers differ: jsonb arrives parsed (pg, PGlite) but be lenient with text.
function json<T>(value: T | string | null): T | null {
  return typeof value === 'string' ? (JSON.parse(value) as T) : value;
}

function describe(row: SecretRow): Omit<CheckedInput, 'credentials'> & { keys: string[] } {
  const requirement = json<Requirement>(row.requirement);
  return {
    name: row.name,
    serviceType: row.service_type ?? undefined,
    authType: row.auth_type ?? undefined,
    url: row.url ?? undefined,
    metadata: json<Record<string, string>>(row.metadata) ?? {},
    requirement: requirement === null ? undefined : deepFreeze(requirement),
    keys: json<string[]>(row.credential_keys) ?? [],
  };
}

/** AAD of a wrapped data key: the row it belongs to. */
function keyAad(tenantId: string, name: string, version: number): string {
  return JSON.stringify(['authsec:service-secret-key:v1', tenantId, name, version]);
}

/** AAD of the credential ciphertext: the row and everything it says about the service. */
function dataAad(
  tenantId: string,
  version: number,
  fields: Omit<CheckedInput, 'credentials'>,
  keys: readonly string[],
): Buffer {
  return Buffer.from(
    JSON.stringify([
      'authsec:service-secret:v1',
      tenantId,
      fields.name,
      version,
      fields.serviceType ?? null,
      fields.authType ?? null,
      fields.url ?? null,
      canonicalJson(fields.metadata),
      canonicalJson(fields.requirement ?? null),
      [...keys].sort(),
    ]),
    'utf8',
  );
}

function encrypt(dataKey: Buffer, plaintext: string, aad: Buffer): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', dataKey, iv);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.from([CIPHERTEXT_VERSION]), iv, cipher.getAuthTag(), body]);
}

function decrypt(dataKey: Buffer, sealed: Uint8Array, aad: Buffer): string {
  const buf = Buffer.from(sealed);
  if (buf[0] !== CIPHERTEXT_VERSION || buf.length < 29) throw new Error('unknown ciphertext format');
  const decipher = createDecipheriv('aes-256-gcm', dataKey, buf.subarray(1, 13));
  decipher.setAAD(aad);
  decipher.setAuthTag(buf.subarray(13, 29));
  return Buffer.concat([decipher.update(buf.subarray(29)), decipher.final()]).toString('utf8');
}

function sqlState(error: unknown): string | undefined {
  for (const e of [(error as { cause?: unknown })?.cause, error]) {
    const code = (e as { code?: unknown } | null | undefined)?.code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/**
 * Creates the encrypted PostgreSQL secret store over a tenancy (see the module comment). Its table comes with
 * the tenant migrations (`authsec migrate`, or `openStorage`).
 */
export function createPostgresSecretBackend(options: PostgresSecretBackendOptions): PostgresSecretBackend {
  if (typeof options !== 'object' || options === null || !options.tenancy) {
    throw new TypeError('createPostgresSecretBackend: options.tenancy is required');
  }
  const ring = options.masterKey;
  if (!ring || typeof ring.activeKid !== 'string' || !ring.keys?.get(ring.activeKid)) {
    throw new TypeError(
      'createPostgresSecretBackend: options.masterKey must be a key ring with its active key',
    );
  }
  const { tenancy } = options;
  const clock = options.clock ?? Date.now;
  const logger = options.logger ?? createLogger();
  let closed = false;

  const route = async (tenantId: string, write: boolean): Promise<TenantHandle> => {
    checkTenantId(tenantId);
    if (closed) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The secret store is closed');
    // Administration (write, rotate, delete) may reach a disabled tenant; its credentials are never served.
    return tenancy.handle(tenantId, { allowDisabled: write });
  };

  const failure = (error: unknown, tenantId: string): AuthSecError => {
    if (isAuthSecError(error)) return error;
    if (error instanceof TypeError) throw error;
    const state = sqlState(error);
    if (state === '42P01' || state === '3F000') {
      return new AuthSecError(
        'CONFIG_INVALID',
        `The secret store of tenant '${tenantId}' is not migrated: run \`authsec migrate\``,
        { cause: error },
      );
    }
    return toDatabaseError(error, `secret store of tenant '${tenantId}'`);
  };

  const run = async <T>(
    tenantId: string,
    write: boolean,
    fn: (h: TenantHandle) => Promise<T>,
  ): Promise<T> => {
    const handle = await route(tenantId, write);
    try {
      return await fn(handle);
    } catch (error) {
      throw failure(error, tenantId);
    }
  };

  const table = (h: TenantHandle) => `${h.schema}.service_secrets`;

  const openRow = (tenantId: string, row: SealedRow): StoredServiceSecret => {
    const fields = describe(row);
    const version = Number(row.version);
    let credentials: Readonly<Record<string, string>>;
    try {
      const dataKey = open(
        ring,
        SECRET_DATA_KEY_PURPOSE,
        row.wrapped_key,
        keyAad(tenantId, row.name, version),
      );
      const plaintext = decrypt(dataKey, row.ciphertext, dataAad(tenantId, version, fields, fields.keys));
      dataKey.fill(0);
      credentials = checkCredentials(JSON.parse(plaintext));
    } catch (cause) {
      // Never the cause's text in the message: it is about bytes, and says nothing the operator can act on
      // beyond "this row was altered or the key that wrapped it is gone".
      throw new AuthSecError(
        'INTERNAL',
        `The stored credentials of service '${row.name}' (version ${version}) could not be decrypted: altered data, or a master key missing from the ring`,
        { cause },
      );
    }
    return storedSecret({ ...fields, credentials }, version, Number(row.created_at));
  };

  // Inserts a new version, in `tx`, under the per-service lock taken by the caller.
  const insertVersion = async (
    tx: SqlQueryable,
    h: TenantHandle,
    tenantId: string,
    fields: CheckedInput,
    version: number,
    now: number,
  ): Promise<StoredServiceSecret> => {
    const keys = Object.keys(fields.credentials).sort();
    const dataKey = randomBytes(32);
    const ciphertext = encrypt(
      dataKey,
      JSON.stringify(fields.credentials),
      dataAad(tenantId, version, fields, keys),
    );
    const wrapped = seal(ring, SECRET_DATA_KEY_PURPOSE, dataKey, keyAad(tenantId, fields.name, version));
    dataKey.fill(0);
    await tx.query(
      `INSERT INTO ${table(h)} (name, version, service_type, auth_type, url, metadata, requirement,
         credential_keys, ciphertext, wrapped_key, key_id, created_at)
       VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10, $11, $12)`,
      [
        fields.name,
        version,
        fields.serviceType ?? null,
        fields.authType ?? null,
        fields.url ?? null,
        JSON.stringify(fields.metadata),
        fields.requirement === undefined ? null : JSON.stringify(fields.requirement),
        JSON.stringify(keys),
        ciphertext,
        wrapped,
        ring.activeKid,
        now,
      ],
    );
    return storedSecret(fields, version, now);
  };

  // Runs `fn` in a transaction holding the service's lock, after deleting the tenant's expired versions.
  const locked = <T>(h: TenantHandle, tenantId: string, name: string, fn: (tx: SqlQueryable) => Promise<T>) =>
    h.sql.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
        `authsec-secret:${h.schema}:${tenantId}:${name}`,
      ]);
      await tx.query(`DELETE FROM ${table(h)} WHERE expires_at IS NOT NULL AND expires_at <= $1`, [clock()]);
      return fn(tx);
    });

  const currentRow = async (tx: SqlQueryable, h: TenantHandle, name: string) => {
    const r = await tx.query<SecretRow>(
      `SELECT ${COLUMNS} FROM ${table(h)} WHERE name = $1 ORDER BY version DESC LIMIT 1`,
      [name],
    );
    return r.rows[0];
  };

  // Retires the version that was current: kept until `now + graceMs`, or deleted at once.
  const retire = async (
    tx: SqlQueryable,
    h: TenantHandle,
    name: string,
    version: number,
    graceMs: number,
  ) => {
    if (graceMs > 0) {
      await tx.query(`UPDATE ${table(h)} SET expires_at = $3 WHERE name = $1 AND version = $2`, [
        name,
        version,
        clock() + graceMs,
      ]);
    } else {
      await tx.query(`DELETE FROM ${table(h)} WHERE name = $1 AND version = $2`, [name, version]);
    }
  };

  return {
    kind: 'postgres',

    async write(tenantId, input) {
      checkTenantId(tenantId);
      const fields = checkInput(input);
      return run(tenantId, true, (h) =>
        locked(h, tenantId, fields.name, async (tx) => {
          const current = await currentRow(tx, h, fields.name);
          const version = current ? Number(current.version) + 1 : 1;
          // A new write replaces the service: the previous values are gone at once (rotate keeps them).
          if (current) await retire(tx, h, fields.name, Number(current.version), 0);
          return insertVersion(tx, h, tenantId, fields, version, clock());
        }),
      );
    },

    async read(tenantId, name, readOptions = {}) {
      checkTenantId(tenantId);
      checkServiceName(name);
      const version = checkVersion(readOptions.version);
      return run(tenantId, false, async (h) => {
        const select = `SELECT ${COLUMNS}, ciphertext, wrapped_key, key_id FROM ${table(h)}`;
        const r =
          version === undefined
            ? await h.sql.query<SealedRow>(`${select} WHERE name = $1 ORDER BY version DESC LIMIT 1`, [name])
            : await h.sql.query<SealedRow>(
                `${select} WHERE name = $1 AND version = $2 AND (expires_at IS NULL OR expires_at > $3)`,
                [name, version, clock()],
              );
        const row = r.rows[0];
        return row ? openRow(tenantId, row) : undefined;
      });
    },

    async currentVersion(tenantId, name) {
      checkTenantId(tenantId);
      checkServiceName(name);
      return run(tenantId, false, async (h) => {
        const r = await h.sql.query<{ version: number | string | null }>(
          `SELECT max(version) AS version FROM ${table(h)} WHERE name = $1`,
          [name],
        );
        const v = r.rows[0]?.version;
        return v === null || v === undefined ? undefined : Number(v);
      });
    },

    async list(tenantId) {
      checkTenantId(tenantId);
      return run(tenantId, false, async (h) => {
        const r = await h.sql.query<SecretRow>(
          `SELECT DISTINCT ON (name) ${COLUMNS} FROM ${table(h)} ORDER BY name, version DESC`,
        );
        const out: ServiceSecretSummary[] = r.rows.map((row) => {
          const fields = describe(row);
          return secretSummary(fields, fields.keys, Number(row.version), Number(row.created_at));
        });
        return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      });
    },

    async rotate(tenantId, name, credentials, rotateOptions = {}) {
      checkTenantId(tenantId);
      checkServiceName(name);
      const values = checkCredentials(credentials);
      const graceMs = checkGraceMs(rotateOptions.graceMs);
      return run(tenantId, true, (h) =>
        locked(h, tenantId, name, async (tx) => {
          const current = await currentRow(tx, h, name);
          if (!current) throw new AuthSecError('NOT_FOUND', `Unknown service '${name}'`);
          const version = Number(current.version);
          await retire(tx, h, name, version, graceMs);
          const { keys: _keys, ...fields } = describe(current);
          return insertVersion(tx, h, tenantId, { ...fields, credentials: values }, version + 1, clock());
        }),
      );
    },

    async delete(tenantId, name) {
      checkTenantId(tenantId);
      checkServiceName(name);
      return run(tenantId, true, async (h) => {
        const r = await h.sql.query(`DELETE FROM ${table(h)} WHERE name = $1`, [name]);
        return r.rowCount > 0;
      });
    },

    async rewrapAll(tenantId) {
      if (tenantId !== undefined) checkTenantId(tenantId);
      if (closed) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The secret store is closed');
      const tenants = tenantId === undefined ? (await tenancy.list()).map((t) => t.id) : [tenantId];
      let rewrapped = 0;
      let failed = 0;
      for (const id of tenants) {
        await run(id, true, async (h) => {
          // Keyset pagination: every row is visited once, whatever happens to it.
          let after: [string, number] = ['', 0];
          for (;;) {
            const r = await h.sql.query<{
              name: string;
              version: number | string;
              wrapped_key: Uint8Array;
              key_id: string;
            }>(
              `SELECT name, version, wrapped_key, key_id FROM ${table(h)}
               WHERE key_id <> $1 AND (name, version) > ($2, $3) ORDER BY name, version LIMIT ${REWRAP_BATCH}`,
              [ring.activeKid, after[0], after[1]],
            );
            if (r.rows.length === 0) return;
            for (const row of r.rows) {
              const version = Number(row.version);
              after = [row.name, version];
              const aad = keyAad(id, row.name, version);
              let dataKey: Buffer;
              try {
                dataKey = open(ring, SECRET_DATA_KEY_PURPOSE, row.wrapped_key, aad);
              } catch {
                // Altered, or wrapped under a key no longer in the ring: left as it is, and reported.
                failed++;
                logger.error('A service data key could not be unwrapped; it was not re-wrapped', {
                  tenant: id,
                  service: row.name,
                  version,
                  keyId: row.key_id,
                });
                continue;
              }
              const wrapped = seal(ring, SECRET_DATA_KEY_PURPOSE, dataKey, aad);
              dataKey.fill(0);
              // Only if nobody re-wrapped or replaced it meanwhile.
              const u = await h.sql.query(
                `UPDATE ${table(h)} SET wrapped_key = $3, key_id = $4 WHERE name = $1 AND version = $2 AND key_id = $5`,
                [row.name, version, wrapped, ring.activeKid, row.key_id],
              );
              rewrapped += u.rowCount;
            }
          }
        });
      }
      return { tenants: tenants.length, rewrapped, failed };
    },

    async close() {
      closed = true;
    },
  };
}
