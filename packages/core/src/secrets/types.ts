import type { Requirement } from '../types.js';

/**
 * The contract between service-credential backends (encrypted PostgreSQL, HashiCorp Vault), the per-call
 * `ServiceAccess` a tool receives, and the `authsec service` commands. Values never leave through anything but
 * {@link SecretBackend.read}: not a list, a log line, an error message or an audit record.
 */

/** What is stored for one service of one tenant. */
export interface ServiceSecretInput {
  /** The service's display name; may contain spaces ("GitHub API Integration"). Paths use a slug of it. */
  readonly name: string;
  /** Free-form kind, e.g. `github`. */
  readonly serviceType?: string;
  /** How the credential is presented, e.g. `bearer`. */
  readonly authType?: string;
  /** The service's API base URL. */
  readonly url?: string;
  /** The secret values, e.g. `{ access_token: '...' }`. At least one. */
  readonly credentials: Readonly<Record<string, string>>;
  /** Non-secret metadata. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Who may read it, checked like a tool's requirement. Absent: any authenticated caller of the tenant. */
  readonly requirement?: Requirement;
}

/** A stored service as a backend returns it. */
export interface StoredServiceSecret {
  readonly name: string;
  readonly serviceType: string | undefined;
  readonly authType: string | undefined;
  readonly url: string | undefined;
  readonly credentials: Readonly<Record<string, string>>;
  readonly metadata: Readonly<Record<string, string>>;
  readonly requirement: Requirement | undefined;
  /** Increases with every write or rotation, from 1. */
  readonly version: number;
  /** When this version was written (ms). */
  readonly updatedAt: number;
}

/** A service without its values, for listings. */
export interface ServiceSecretSummary {
  readonly name: string;
  readonly serviceType: string | undefined;
  readonly authType: string | undefined;
  readonly url: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
  readonly requirement: Requirement | undefined;
  readonly version: number;
  readonly updatedAt: number;
  /** Credential keys (never values), e.g. `['access_token']`. */
  readonly keys: readonly string[];
}

/** Options of {@link SecretBackend.rotate}. */
export interface RotateOptions {
  /**
   * How long the previous version stays readable (with {@link SecretBackend.read}'s `version`), ms. Default 0:
   * the previous version is gone at once.
   */
  readonly graceMs?: number;
}

/**
 * Where service credentials live. Scoped by tenant; every method validates the tenant id before it names
 * anything and fails closed (`SERVICE_UNAVAILABLE`) when the store cannot answer.
 */
export interface SecretBackend {
  /** `'postgres'` or `'vault'`. */
  readonly kind: string;
  /** Creates or replaces a service (a new version). */
  write(tenantId: string, input: ServiceSecretInput): Promise<StoredServiceSecret>;
  /**
   * The current version, or an earlier one still within its rotation grace period; `undefined` when there is
   * none.
   */
  read(
    tenantId: string,
    name: string,
    options?: { readonly version?: number },
  ): Promise<StoredServiceSecret | undefined>;
  /** Every service of the tenant, without values, by name. */
  list(tenantId: string): Promise<ServiceSecretSummary[]>;
  /** Replaces the values (a new version); the previous one stays readable for `graceMs`. `NOT_FOUND` if absent. */
  rotate(
    tenantId: string,
    name: string,
    credentials: Readonly<Record<string, string>>,
    options?: RotateOptions,
  ): Promise<StoredServiceSecret>;
  /** Deletes every version. Returns whether it existed. */
  delete(tenantId: string, name: string): Promise<boolean>;
  /** Releases clients and timers. */
  close(): Promise<void>;
}
