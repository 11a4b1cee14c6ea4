/**
 * The OAuth resource server of the MCP authorization spec, once, for every HTTP adapter.
 *
 * Plain values in, plain values out: header values and parsed JSON-RPC bodies go in; principals, booleans,
 * header maps and `{ status, headers, body }` error responses come out. No framework or MCP SDK type crosses
 * this module; an adapter only moves these values between its framework's request and response.
 */

import type { AuthSec, Readiness, RequirementInput } from './engine.js';
import { AuthSecError, type ErrorResponse, toErrorResponse } from './errors.js';
import { requiredScopes } from './policy/index.js';
import type { Logger, Principal } from './types.js';

export { isLoopbackHost } from './loopback.js';

/** Where the RFC 9728 protected resource metadata lives (root form); the path form appends the MCP path. */
export const PROTECTED_RESOURCE_METADATA_PATH = '/.well-known/oauth-protected-resource';

/** The key of `AuthInfo.extra` that carries the verified {@link Principal} to MCP request handlers. */
export const PRINCIPAL_EXTRA_KEY = 'principal';

/** Options of {@link createResourceServer}. Validated once, at creation (`TypeError` for misuse). */
export interface ResourceServerOptions {
  /** The engine that verifies every token. Its `audience` must be `resourceUrl`. */
  readonly authsec: AuthSec;
  /**
   * The canonical URL of the MCP endpoint (lowercase scheme and host, no query, no fragment, no trailing
   * slash), e.g. `https://mcp.example.com/mcp`. It is the metadata's `resource` and the audience tokens must
   * carry (RFC 8707); its path is where MCP is served.
   */
  readonly resourceUrl: string;
  /** Issuers clients may get tokens from, for the metadata's `authorization_servers`. At least one. */
  readonly authorizationServers: readonly string[];
  /**
   * `scopes_supported` and the `scope` of 401 challenges. `offline_access` is always dropped. Default: every
   * scope the tools registered in the engine name, read on each use (tools may register after creation).
   */
  readonly scopesSupported?: readonly string[];
  /** The metadata's `resource_name`. Default: the resource URL's host. */
  readonly resourceName?: string;
}

/** The RFC 9728 protected resource metadata document. */
export interface ProtectedResourceMetadata {
  readonly resource: string;
  readonly authorization_servers: readonly string[];
  readonly scopes_supported: readonly string[];
  readonly bearer_methods_supported: readonly ['header'];
  readonly resource_name: string;
}

/** The `AuthInfo` shape of the MCP SDK, as plain values (the SDK reads it from `req.auth`). */
export interface ResourceAuthInfo {
  readonly token: string;
  readonly clientId: string;
  readonly scopes: string[];
  readonly expiresAt: number;
  readonly resource: URL;
  readonly extra: { readonly [PRINCIPAL_EXTRA_KEY]: Principal };
}

/** See {@link ResourceServer.guard}: `target` names the route in the audit record (never its query). */
export type RouteGuard = (
  headers: { readonly authorization?: string | readonly string[] | undefined },
  target: string,
) => Promise<ResourceAuthInfo>;

/** The framework-free resource server: see {@link createResourceServer}. */
export interface ResourceServer {
  /** The canonical resource URL (the audience). */
  readonly resourceUrl: string;
  /** The path MCP is served at (the resource URL's path), e.g. `/mcp`. */
  readonly mcpPath: string;
  /** The metadata URL (path form) sent as `resource_metadata` in challenges. */
  readonly resourceMetadataUrl: string;
  /** The paths to serve {@link ResourceServer.metadata} at: the path form, then the root form. */
  readonly metadataPaths: readonly string[];
  /** The RFC 9728 document (never `offline_access` in `scopes_supported`). */
  metadata(): ProtectedResourceMetadata;
  /**
   * Verifies the request's bearer token (every request; a session never authenticates). Throws an
   * `AuthSecError`: `TOKEN_MISSING`, `TOKEN_*`, `TENANT_UNKNOWN` or `SERVICE_UNAVAILABLE`.
   */
  authenticate(headers: {
    readonly authorization?: string | readonly string[] | undefined;
  }): Promise<Principal>;
  /** The SDK-shaped `AuthInfo` of a verified request. */
  authInfo(
    principal: Principal,
    headers: { readonly authorization?: string | readonly string[] },
  ): ResourceAuthInfo;
  /**
   * The check of an ordinary (REST) route, compiled once (a bad requirement is a `TypeError` here, not on a
   * request): it authenticates the request and, with a `requirement` (as a tool's), authorizes the caller,
   * audited under `target`. Resolves to the request's `AuthInfo`; a refusal rejects with what
   * {@link ResourceServer.challenge} answers. Every framework's route guard is this, translated.
   */
  guard(requirement?: RequirementInput): RouteGuard;
  /**
   * The HTTP answer to a refusal: 401 with `resource_metadata` and `scope` = `scopes_supported` (no `error`
   * when no token was sent); 403 `insufficient_scope` naming every scope needed plus those held; other 403s
   * without an OAuth error; 503 without details. Anything that is not an `AuthSecError` is a generic 500.
   */
  challenge(error: unknown): ErrorResponse;
  /** The engine behind it. */
  readonly authsec: AuthSec;
  /** The engine's logger, for adapters' own failures. */
  readonly logger: Logger;
  /** Liveness: the process answers. */
  health(): { readonly status: 'ok' };
  /**
   * Readiness: what this resource server serves, and whether the engine's dependencies answer (key sets,
   * directory; see `AuthSec.readiness`). Answer `ready` with 200, `unavailable` with 503.
   */
  ready(): Promise<{
    readonly status: 'ready' | 'unavailable';
    readonly resource: string;
    readonly checks: Readiness['checks'];
  }>;
}

function canonicalResource(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`resourceUrl: not a valid URL: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new TypeError('resourceUrl: must be http(s)');
  if (url.hash !== '' || value.includes('#')) throw new TypeError('resourceUrl: must not have a fragment');
  if (url.search !== '') throw new TypeError('resourceUrl: must not have a query');
  if (url.pathname.length > 1 && url.pathname.endsWith('/'))
    throw new TypeError('resourceUrl: must not end with a slash');
  return url;
}

function single(value: string | readonly string[] | undefined): string | undefined {
  if (typeof value === 'string' || value === undefined) return value;
  // Two Authorization headers are ambiguous: refuse rather than pick one.
  if (value.length !== 1) throw new AuthSecError('TOKEN_INVALID', 'More than one Authorization header');
  return value[0];
}

/** A resource server, or the options to create one (what the adapters' guards accept). */
export type ResourceServerInput = ResourceServer | ResourceServerOptions;

/**
 * `input` itself when it already is a resource server, else one created from these options. A missing input
 * is a `TypeError` naming `who`.
 */
export function toResourceServer(input: ResourceServerInput, who: string): ResourceServer {
  if (typeof input !== 'object' || input === null)
    throw new TypeError(`${who}: a resource server or its options are required`);
  const isServer = typeof (input as ResourceServer).challenge === 'function' && 'metadataPaths' in input;
  return isServer ? (input as ResourceServer) : createResourceServer(input as ResourceServerOptions);
}

/**
 * Creates the resource server of the MCP authorization spec: RFC 9728 metadata (path and root form), bearer
 * authentication on every request, and RFC 6750 challenges naming the metadata. The order in which a request
 * meets these (and origin rules, limits and decisions) is the request pipeline's (`createRequestPipeline`).
 * Misconfiguration is a `TypeError` here, never on a request.
 */
export function createResourceServer(options: ResourceServerOptions): ResourceServer {
  const { authsec } = options;
  if (typeof authsec?.authenticateHeader !== 'function')
    throw new TypeError('createResourceServer: authsec must be an engine from createAuthSec()');
  const resource = canonicalResource(options.resourceUrl);
  const resourceUrl = resource.pathname === '/' ? resource.origin : `${resource.origin}${resource.pathname}`;
  const mcpPath = resource.pathname;
  const pathForm = `${PROTECTED_RESOURCE_METADATA_PATH}${mcpPath === '/' ? '' : mcpPath}`;
  const metadataPaths = Object.freeze([...new Set([pathForm, PROTECTED_RESOURCE_METADATA_PATH])]);
  const resourceMetadataUrl = `${resource.origin}${pathForm}`;
  const authorizationServers = Object.freeze([...(options.authorizationServers ?? [])]);
  if (authorizationServers.length === 0)
    throw new TypeError('createResourceServer: authorizationServers needs at least one issuer URL');
  for (const server of authorizationServers) {
    if (!URL.canParse(server))
      throw new TypeError(`authorizationServers: not a URL: ${JSON.stringify(server)}`);
  }
  const resourceName = options.resourceName ?? resource.host;

  const fixedScopes = options.scopesSupported
    ? Object.freeze(options.scopesSupported.filter((s) => s !== 'offline_access'))
    : undefined;
  let derived: { size: number; scopes: readonly string[] } | undefined;
  const scopesSupported = (): readonly string[] => {
    if (fixedScopes) return fixedScopes;
    if (derived?.size !== authsec.tools.size) {
      const scopes = new Set<string>();
      for (const tool of authsec.tools.list())
        for (const scope of requiredScopes(tool.requirement))
          if (scope !== 'offline_access') scopes.add(scope);
      derived = { size: authsec.tools.size, scopes: Object.freeze([...scopes]) };
    }
    return derived.scopes;
  };

  const authInfo: ResourceServer['authInfo'] = (principal, headers) => {
    const token = (single(headers.authorization) ?? '').trim().replace(/^Bearer +/i, '');
    return {
      token,
      clientId: principal.clientId ?? '',
      scopes: [...principal.scopes],
      expiresAt: principal.expiresAt,
      resource,
      extra: { [PRINCIPAL_EXTRA_KEY]: principal },
    };
  };
  return {
    resourceUrl,
    mcpPath,
    resourceMetadataUrl,
    metadataPaths,
    metadata: () => ({
      resource: resourceUrl,
      authorization_servers: authorizationServers,
      scopes_supported: scopesSupported(),
      bearer_methods_supported: ['header'],
      resource_name: resourceName,
    }),
    async authenticate(headers) {
      return authsec.authenticateHeader(single(headers.authorization));
    },
    authInfo,
    guard(requirement) {
      const compiled = requirement === undefined ? undefined : authsec.compile(requirement);
      // A route has no validated arguments to check them on: refused, never silently skipped.
      if (compiled !== undefined && compiled.conditions.length > 0)
        throw new TypeError(
          'guard: a route requirement cannot have `when` conditions (they apply to tools only)',
        );
      return async (headers, target) => {
        const principal = await authsec.authenticateHeader(single(headers.authorization));
        if (compiled !== undefined) {
          const started = performance.now();
          const decided = (error?: AuthSecError) =>
            authsec.audit({
              action: 'route.access',
              decision: error === undefined ? 'allow' : 'deny',
              principal,
              target,
              ...(error === undefined ? {} : { reason: error.code }),
              latencyMicros: Math.round((performance.now() - started) * 1000),
            });
          try {
            authsec.authorize(principal, compiled, target);
          } catch (error) {
            if (error instanceof AuthSecError) decided(error);
            throw error;
          }
          decided();
        }
        return authInfo(principal, headers);
      };
    },
    challenge: (error) => toErrorResponse(error, { resourceMetadataUrl, scopes: scopesSupported() }),
    authsec,
    logger: authsec.logger,
    health: () => ({ status: 'ok' }),
    async ready() {
      const { ready, checks } = await authsec.readiness();
      return { status: ready ? 'ready' : 'unavailable', resource: resourceUrl, checks };
    },
  };
}
