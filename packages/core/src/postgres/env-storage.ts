import type { AuthSecEnvOptions, MasterKeyRing } from '../env.js';
import { AuthSecError } from '../errors.js';
import { createLogger } from '../logger.js';
import { resolveMasterKey } from '../master-key.js';
import type { AuthSecOptions, IssuerOptions } from '../options.js';
import { createRequestStateSealer, type RequestStateSealer } from '../request-state.js';
import type { Logger } from '../types.js';
import { createFileCheckpointSink } from './audit-checkpoints.js';
import { createPostgresRequestStateStore } from './request-state-store.js';
import { openStorage, type Storage } from './storage.js';

/** Options of {@link openStorageFromEnv}: what the environment does not say. */
export interface OpenStorageFromEnvOptions {
  /**
   * Development mode. Default `false`: `AUTHSEC_DATABASE_URL` and `AUTHSEC_MASTER_KEY` are required. `true`:
   * without `AUTHSEC_DATABASE_URL`, the embedded database (PGlite in `<AUTHSEC_DATA_DIR>/pglite`), and without
   * `AUTHSEC_MASTER_KEY`, a generated key file in the data folder, with a warning. Data under a generated key
   * is lost with the machine: never in production.
   */
  readonly development?: boolean;
  /**
   * Trusted issuers, instead of `AUTHSEC_ISSUER` (for example an embedded development IdP). Default: the
   * environment's; at least one is required.
   */
  readonly issuers?: readonly (string | IssuerOptions)[];
  /** The accepted audience, instead of `AUTHSEC_RESOURCE_URL`. Default: the environment's; required. */
  readonly audience?: string;
  /** The storage's and the engine's logger. Default: JSON lines on stderr at `AUTHSEC_LOG_LEVEL`. */
  readonly logger?: Logger;
}

/** What {@link openStorageFromEnv} opened. */
export interface StorageFromEnv {
  /** The storage on `AUTHSEC_DATABASE_URL` (or the embedded database in development), migrated. */
  readonly storage: Storage;
  /** The master key ring the storage seals with (`AUTHSEC_MASTER_KEY`, or the development key file). */
  readonly masterKey: MasterKeyRing;
  /**
   * Options for `createAuthSec`: the environment's token settings, with `directory` (claims validated against
   * the tenant's catalog and grants) and `audit` (the tenant's tamper-evident audit log) wired to the storage.
   */
  readonly options: AuthSecOptions;
  /**
   * Seals `input_required` request state with the master key ring, each state consumed once in the master
   * database: every replica on this storage opens what another minted, and a replay on any of them is refused.
   * For `protect(authsec, info, { requestState })` of `@authsec/mcp/v2`.
   */
  readonly requestState: RequestStateSealer;
  /** Closes the storage. Close the engine first: closing it flushes the audit log. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens the storage the `AUTHSEC_*` environment names and returns engine options that use it, so that the
 * database in `AUTHSEC_DATABASE_URL` does validate claims:
 *
 * ```ts
 * const opened = await openStorageFromEnv(authSecOptionsFromEnv(process.env));
 * const authsec = createAuthSec(opened.options);
 * // ... on shutdown:
 * await authsec.close();
 * await opened.close();
 * ```
 *
 * A missing issuer, audience, master key or (outside development) database URL is `CONFIG_INVALID` naming the
 * variable, before anything is opened (the master key aside, which in development may create its key file).
 * Seeds nothing: tenants and their catalogs come from `authsec tenant create` and the like.
 */
export async function openStorageFromEnv(
  env: AuthSecEnvOptions,
  options: OpenStorageFromEnvOptions = {},
): Promise<StorageFromEnv> {
  if (typeof env !== 'object' || env === null) {
    throw new TypeError('openStorageFromEnv: the result of authSecOptionsFromEnv() is required');
  }
  const development = options.development === true;
  const logger = options.logger ?? createLogger({ level: env.logLevel });
  const issuers = options.issuers ?? env.issuers;
  if (issuers.length === 0) {
    throw new AuthSecError('CONFIG_INVALID', 'AUTHSEC_ISSUER is required: it names the trusted token issuer');
  }
  const audience = options.audience ?? env.audience;
  if (audience === undefined) {
    throw new AuthSecError(
      'CONFIG_INVALID',
      'AUTHSEC_RESOURCE_URL is not set: it names this server (the token audience)',
    );
  }
  const masterKey = resolveMasterKey({ masterKey: env.masterKey, dataDir: env.dataDir, development, logger });
  if (!env.databaseUrl && !development) {
    throw new AuthSecError(
      'CONFIG_INVALID',
      'AUTHSEC_DATABASE_URL is required outside development (the embedded database is for development only)',
    );
  }
  const storage = await openStorage({
    databaseUrl: env.databaseUrl,
    dataDir: env.dataDir,
    masterKey,
    // Rows stored before subjects were bound to their issuer migrate to the one trusted issuer.
    issuers: issuers.map((entry) => (typeof entry === 'string' ? entry : entry.issuer)),
    logger,
    // Anchors each tenant's chain outside the database, so truncating the audit table cannot go unnoticed.
    ...(env.auditCheckpointFile === undefined
      ? {}
      : { audit: { checkpointSinks: [createFileCheckpointSink({ path: env.auditCheckpointFile })] } }),
  });
  if (env.auditCheckpointFile === undefined)
    logger.warn(
      'AUTHSEC_AUDIT_CHECKPOINT_FILE=off: no signed checkpoints are kept, so a truncated audit log verifies as intact',
      { option: 'AUTHSEC_AUDIT_CHECKPOINT_FILE' },
    );
  return {
    storage,
    masterKey,
    options: {
      issuers,
      audience,
      logger,
      directory: storage.directory,
      audit: { sinks: [storage.audit] },
      ...(env.algorithms ? { algorithms: env.algorithms } : {}),
      ...(env.requiredTokenType ? { requiredTokenType: env.requiredTokenType } : {}),
      ...(env.clockToleranceSeconds === undefined
        ? {}
        : { clockToleranceSeconds: env.clockToleranceSeconds }),
      ...(env.maxTokenLifetimeSeconds === undefined
        ? {}
        : { maxTokenLifetimeSeconds: env.maxTokenLifetimeSeconds }),
      ...(env.defaultTenant ? { defaultTenant: env.defaultTenant } : {}),
    },
    requestState: createRequestStateSealer({
      keys: masterKey,
      store: createPostgresRequestStateStore({ sql: storage.sql }),
    }),
    close: () => storage.close(),
  };
}
