/**
 * @authsec/core/postgres: everything AuthSec keeps in PostgreSQL (real PostgreSQL through `pg`, or embedded
 * PGlite): the tenant registry and routing, database-backed claim validation, login sessions and the
 * tamper-evident audit log. `pg` and `@electric-sql/pglite` are optional peer dependencies, loaded on use.
 *
 * Importing this entry registers every module's migrations.
 *
 * @packageDocumentation
 */

export {
  createPostgresSecretBackend,
  type PostgresSecretBackend,
  type PostgresSecretBackendOptions,
  type RewrapResult,
  SECRET_DATA_KEY_PURPOSE,
  SECRET_MIGRATIONS,
} from '../secrets/postgres-store.js';
export {
  AUDIT_CHECKPOINT_TYPE,
  type AuditCheckpoint,
  type AuditCheckpointInput,
  type AuditCheckpointProblem,
  type AuditCheckpointProblemKind,
  type AuditCheckpointSink,
  type AuditCheckpointVerifyResult,
  createFileCheckpointSink,
  createStreamCheckpointSink,
  type FileCheckpointSinkOptions,
  formatAuditCheckpoints,
  type MalformedAuditCheckpoint,
  type ParsedAuditCheckpoints,
  parseAuditCheckpoints,
  type ReadAuditCheckpoint,
  readAuditCheckpoints,
  type StreamCheckpointSinkOptions,
  signAuditCheckpoint,
  verifyAuditCheckpoints,
} from './audit-checkpoints.js';
export {
  AUDIT_MIGRATIONS,
  type AuditProblem,
  type AuditProblemKind,
  type AuditVerifyResult,
  createPostgresAuditSink,
  ensureAuditSchema,
  type PostgresAuditSink,
  type PostgresAuditSinkOptions,
  type PostgresAuditSinkState,
  type ReadAuditEventsOptions,
  readAuditEvents,
  readAuditHead,
  type StoredAuditEvent,
  verifyAuditChain,
} from './audit-store.js';
export {
  type Binding,
  CATALOG_KINDS,
  type CatalogEntry,
  type CatalogKind,
  createPostgresDirectory,
  type DirectoryAdmin,
  type DirectoryGrants,
  type PostgresDirectory,
  type PostgresDirectoryOptions,
  type SubjectOptions,
  type ToolPolicy,
} from './directory.js';
export {
  type EmbeddedDatabaseOptions,
  type EmbeddedHostInfo,
  type EmbeddedRole,
  type EmbeddedSqlClient,
  openEmbeddedDatabase,
  readEmbeddedHost,
} from './embedded.js';
export {
  type OpenStorageFromEnvOptions,
  openStorageFromEnv,
  type StorageFromEnv,
} from './env-storage.js';
export {
  legacyIssuer,
  type Migration,
  type MigrationContext,
  type MigrationScope,
  migrateSchema,
  registeredMigrations,
  registerMigrations,
} from './migrations.js';
export {
  createPostgresRequestStateStore,
  ensureRequestStateSchema,
  type PostgresRequestStateStoreOptions,
  REQUEST_STATE_MIGRATIONS,
} from './request-state-store.js';
export { DEMO_CATALOG, DEMO_TENANT_ID, seedDemoTenant } from './seed.js';
export {
  createPostgresSessionStore,
  ensureSessionSchema,
  type PostgresSessionStoreOptions,
  SESSION_MIGRATIONS,
} from './sessions.js';
export {
  createPGliteClient,
  createPgClient,
  isUnavailableError,
  type ListenOptions,
  openDatabase,
  type PGliteClientOptions,
  type PgClientOptions,
  quoteIdent,
  type SqlClient,
  type SqlQueryable,
  type SqlResult,
  toDatabaseError,
} from './sql.js';
export { type OpenStorageOptions, openStorage, type Storage } from './storage.js';
export {
  CHANGES_CHANNEL,
  type CreateTenantOptions,
  createTenancy,
  formatChange,
  parseChange,
  type Tenancy,
  type TenancyMigrateOptions,
  type TenancyOptions,
  type TenantChange,
  type TenantChangeListener,
  type TenantHandleOptions,
} from './tenancy.js';
export type { MigrationProgress, TenantHandle, TenantPlacement, TenantRecord } from './tenancy-types.js';
