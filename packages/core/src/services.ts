import { AuthSecError } from './errors.js';

/**
 * Service credentials a tool may read for its caller's tenant (the brief's "GitHub API Integration" in Vault).
 * Values reach the tool's code only: never a tool result, a log line, an error message or an audit record.
 */

/** A stored service credential, as a tool sees it. */
export interface ServiceCredentials {
  readonly serviceName: string;
  readonly serviceType: string | undefined;
  readonly authType: string | undefined;
  /** The service's API base URL, when stored. */
  readonly url: string | undefined;
  /** The secret values (e.g. `access_token`). */
  readonly credentials: Readonly<Record<string, string>>;
  /** Non-secret metadata. */
  readonly metadata: Readonly<Record<string, string>>;
  /** When the values were read (ms since the epoch). */
  readonly retrievedAt: number;
}

/** A service's name and metadata, never its values. */
export interface ServiceSummary {
  readonly serviceName: string;
  readonly serviceType: string | undefined;
  readonly url: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
}

/** The `services` of a tool's context, scoped to the caller's tenant and checked against the caller. */
export interface ServiceAccess {
  /** The credential's `access_token` (or `token`). */
  getServiceToken(name: string): Promise<string>;
  /** All of a service's credentials. */
  getServiceCredentials(name: string): Promise<ServiceCredentials>;
  /** Names and metadata of the tenant's services the caller may read. */
  listServices(): Promise<ServiceSummary[]>;
}

/**
 * The `services` handed to tools when no credential store is configured: every read fails with
 * `SERVICE_UNAVAILABLE` and says why, instead of pretending a service does not exist.
 */
export const noServiceAccess: ServiceAccess = Object.freeze({
  async getServiceToken(): Promise<string> {
    throw new AuthSecError('SERVICE_UNAVAILABLE', 'No service credential store is configured');
  },
  async getServiceCredentials(): Promise<ServiceCredentials> {
    throw new AuthSecError('SERVICE_UNAVAILABLE', 'No service credential store is configured');
  },
  async listServices(): Promise<ServiceSummary[]> {
    return [];
  },
});
