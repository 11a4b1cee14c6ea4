import type { JWK } from 'jose';
import type { AuditSink } from './audit.js';
import type { ScopeHierarchyOptions } from './scope-hierarchy.js';
import type { TelemetryOptions } from './telemetry.js';
import type { Clock, Logger, Principal } from './types.js';

/** A change of grants announced by a {@link PrincipalDirectory}. */
export interface DirectoryChange {
  /** The tenant concerned, or `null` for "anything may have changed". */
  readonly tenantId: string | null;
  /** The subject whose grants changed, or `null` for the whole tenant. */
  readonly subject: string | null;
}

/**
 * Turns the principal a token describes into the effective one: with a database, only claims that exist in
 * the tenant's catalog, plus the subject's database grants; refuses unknown or disabled tenants
 * (`TENANT_UNKNOWN`) and fails closed (`SERVICE_UNAVAILABLE`) when it cannot answer. `@authsec/core/postgres`
 * provides one.
 */
export interface PrincipalDirectory {
  /** Returns the effective principal (frozen) or throws an `AuthSecError`. */
  resolve(principal: Principal): Promise<Principal>;
  /**
   * Listens for grant changes (any replica): `change.subject` is the subject whose grants changed, or `null`
   * when a whole tenant (catalog, status) changed; `change.tenantId` is `null` when changes may have been
   * missed (a lost connection) and every caller must be re-checked. Adapters use it to re-check live callers and send
   * `notifications/tools/list_changed`. Returns a function that stops listening.
   */
  subscribe?(listener: (change: DirectoryChange) => void): () => void;
  /**
   * The `when` conditions the principal's tenant set on its tools, by tool name, ANDed with the conditions the
   * code declares: a tenant tightens a tool without a deploy, and can never loosen it. The engine reads them
   * when it authenticates a caller (with the principal, so a call that passed authentication never waits for
   * the database again), and `SERVICE_UNAVAILABLE` there refuses the request before anything is decided.
   * Cached, and invalidated on every replica when they change.
   */
  toolConditions?(principal: Principal): Promise<ReadonlyMap<string, readonly string[]>>;
  /** For readiness probes: resolves when the directory can answer, throws `SERVICE_UNAVAILABLE` otherwise. */
  check?(): Promise<void>;
  /** Releases pools and listeners. */
  close?(): Promise<void>;
}

/** Names of the built-in claim-mapping presets. */
export type ClaimPreset = 'generic' | 'keycloak' | 'auth0' | 'entra' | 'okta';

/**
 * Where each principal field is read from in a verified claim set. Paths are dotted (`realm_access.roles`);
 * a path whose key itself contains dots (Auth0 namespaced claims such as `https://acme.example/roles`) is
 * tried whole first. Several paths per field are merged.
 */
export interface ClaimMapping {
  /** Default: `['sub']`. */
  readonly subject?: readonly string[];
  /** Default: `['email']`. */
  readonly email?: readonly string[];
  /** Default: `['tenant_id']`. */
  readonly tenant?: readonly string[];
  /** Default: `['client_id', 'azp']`. */
  readonly clientId?: readonly string[];
  /** Default: `['roles']`. */
  readonly roles?: readonly string[];
  /** Default: `['groups']`. */
  readonly groups?: readonly string[];
  /** Default: `['scope', 'scp', 'scopes']`. Space-separated strings are split. */
  readonly scopes?: readonly string[];
  /** Default: `['resources']`. */
  readonly resources?: readonly string[];
  /** Default: `['permissions']`. */
  readonly permissions?: readonly string[];
}

/** RFC 7662 token introspection, for opaque (non-JWT) tokens of one issuer. */
export interface IntrospectionOptions {
  /** The introspection endpoint URL (https, or http on loopback). */
  readonly endpoint: string;
  /** Client id this resource server authenticates with (HTTP Basic). */
  readonly clientId: string;
  /** Its secret. */
  readonly clientSecret: string;
}

/** One trusted token issuer. Tokens whose `iss` is not configured here are refused (`TOKEN_ISSUER`). */
export interface IssuerOptions {
  /** The exact `iss` value. */
  readonly issuer: string;
  /**
   * Remote JWKS URL. Default: discovered from the issuer's metadata
   * (`/.well-known/openid-configuration`, then `/.well-known/oauth-authorization-server`).
   * Keys are fetched only from here; `jku`, `x5u` and `jwk` token headers are never followed.
   */
  readonly jwksUrl?: string;
  /** Local public keys instead of a remote JWKS (each with a `kid` when there are several). */
  readonly keys?: readonly JWK[];
  /**
   * A shared HS256 secret, at least 32 bytes. Symmetric keys let anyone who verifies also sign, so this is
   * only allowed when given explicitly, and it logs a warning at start.
   */
  readonly secret?: string | Uint8Array;
  /** Algorithms accepted from this issuer. Default: the engine's `algorithms`. */
  readonly algorithms?: readonly string[];
  /** Claim mapping: a preset name, or a mapping (merged over `generic`). Default: `'generic'`. */
  readonly claims?: ClaimPreset | (ClaimMapping & { readonly preset?: ClaimPreset });
  /** Opaque-token introspection for this issuer. */
  readonly introspection?: IntrospectionOptions;
  /**
   * Binds this issuer to one tenant: its tokens act in this tenant only, and a token naming another tenant is
   * refused. Use one issuer entry per tenant for an issuer-per-tenant setup.
   */
  readonly tenantId?: string;
}

/** Options of {@link createAuthSec}. Validated once, at creation. */
export interface AuthSecOptions {
  /** Trusted issuers (at least one). A plain string is `{ issuer }`. */
  readonly issuers: readonly (string | IssuerOptions)[];
  /**
   * Accepted audience(s): the canonical URL of this MCP server (RFC 8707). Required: a token issued for another
   * service must never work here.
   */
  readonly audience: string | readonly string[];
  /** Accepted JWS algorithms. Default: asymmetric only (RS*, PS*, ES*, EdDSA). `none` is never accepted. */
  readonly algorithms?: readonly string[];
  /** Allowed clock skew for `exp`/`nbf`/`iat`, in seconds. Default 30, at most 300. */
  readonly clockToleranceSeconds?: number;
  /**
   * Longest validity window a token may have, in whole seconds: `exp - iat` must not exceed it, nor `exp - now`
   * (beyond the clock tolerance); an `iat` more than the clock tolerance in the future is refused too. Default
   * 86400 (24 h), from 60 to 31536000 (one year); above a week logs a warning. Refusals are `TOKEN_INVALID`.
   * Without a bound, a token minted with an `exp` years ahead (by a misconfigured or compromised issuer) stays
   * usable, and cached, for that long whatever is revoked upstream.
   */
  readonly maxTokenLifetimeSeconds?: number;
  /** Largest token accepted, in bytes. Default 8192. */
  readonly maxTokenBytes?: number;
  /** Required JWT `typ` header (e.g. `'at+jwt'`, RFC 9068). Default: not checked. */
  readonly requiredTokenType?: string;
  /** Tenant for tokens that carry none. Default: none, and such tokens are refused (`TENANT_UNKNOWN`). */
  readonly defaultTenant?: string;
  /**
   * Scope hierarchies, e.g. `{ implies: { admin: ['write'], write: ['read'] } }`: a caller holding `admin` also
   * holds `write` and `read` in every decision, list and challenge (2026-07-28: servers MUST account for scope
   * hierarchies). Default: none, each scope stands alone.
   */
  readonly scopes?: ScopeHierarchyOptions;
  /** Verified-token cache. Default: on, 10,000 entries. */
  readonly cache?: { readonly enabled?: boolean; readonly maxEntries?: number };
  /** Remote key-set fetching limits. */
  readonly jwks?: {
    /** Request timeout, ms. Default 5000. */
    readonly timeoutMs?: number;
    /** Largest key-set document, bytes. Default 65536. */
    readonly maxBytes?: number;
    /** Least time between two refetches triggered by an unknown `kid`, ms. Default 30000. */
    readonly cooldownMs?: number;
    /** How long a fetched key set is used before a background refresh, ms. Default 600000. */
    readonly maxAgeMs?: number;
  };
  /** Where audit events go. Default: none (the adapters add a JSON-lines sink on stderr). */
  readonly audit?: {
    /** Sinks that receive every event. */
    readonly sinks?: readonly AuditSink[];
    /**
     * Store `HMAC(pseudonymKey, [issuer, subject])` instead of the subject, for retention rules: one person, one
     * pseudonym, and the same `sub` from two issuers two pseudonyms. Default `false`.
     * Requires `pseudonymKey`.
     */
    readonly pseudonymizeSubjects?: boolean;
    /** Key for subject pseudonyms, at least 32 bytes. Keep it stable, or pseudonyms stop matching. */
    readonly pseudonymKey?: string | Uint8Array;
  };
  /**
   * Database-backed validation of claims. Absent: token claims are used as they are, and a warning at start
   * says so.
   */
  readonly directory?: PrincipalDirectory;
  /** RFC 9728 metadata URL put into challenges. */
  readonly resourceMetadataUrl?: string;
  /**
   * Logger. Default: JSON lines on stderr at level `info`, until an adapter routes them to the application's
   * logger (`fastify.log`, Nest's `Logger`; see `useApplicationLogger`). An explicit logger is always kept;
   * `applicationLogger(pino)` turns a pino-style or Nest logger into one.
   */
  readonly logger?: Logger;
  /**
   * OpenTelemetry spans and metrics of decisions (see the README's Telemetry section). Default: the global
   * OpenTelemetry API's tracer and meter when `@opentelemetry/api` is installed, else none (nothing is loaded
   * and nothing fails). `false` turns telemetry off.
   */
  readonly telemetry?: TelemetryOptions | false;
  /** Clock (ms). Default `Date.now`. */
  readonly clock?: Clock;
  /** `fetch` used for key sets, discovery and introspection. Default: global `fetch`. */
  readonly fetch?: typeof fetch;
}
