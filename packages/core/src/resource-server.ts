/**
 * The OAuth resource server of the MCP authorization spec, once, for every HTTP adapter.
 *
 * Plain values in, plain values out: header values and parsed JSON-RPC bodies go in; principals, booleans,
 * header maps and `{ status, headers, body }` error responses come out. No framework or MCP SDK type crosses
 * this module; an adapter only moves these values between its framework's request and response.
 */

import type { AuthSec, Readiness } from './engine.js';
import { AuthSecError, type ErrorResponse, isAuthSecError, toErrorResponse } from './errors.js';
import { requiredScopes } from './policy/index.js';
import type { Logger, Principal } from './types.js';

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
  /**
   * Extra `Origin` values accepted besides the resource's own origin (and any loopback origin when the resource
   * is on loopback). Every other `Origin` is refused (DNS-rebinding protection). Default: none.
   */
  readonly allowedOrigins?: readonly string[];
  /**
   * How a `tools/call` refused with `INSUFFICIENT_SCOPE` is answered. `'http'` (default): a 403 with an RFC
   * 6750 `insufficient_scope` challenge, which the SDK client acts on (step-up). `'result'`: the call goes to
   * the server, which answers with an `isError` result whose `_meta` carries the code and scopes, for clients
   * that ignore HTTP challenges.
   */
  readonly insufficientScope?: 'http' | 'result';
  /**
   * Whether a reverse proxy in front of this server is trusted to set `X-Forwarded-For`. Only affects
   * {@link ResourceServer.isLoopbackClient}. Default `false`: the socket's address is used. Turning it on
   * without a proxy that overwrites the header lets any client claim to be local.
   */
  readonly trustProxy?: boolean;
  /**
   * CORS for browser-based MCP clients: origins (also accepted by {@link ResourceServer.checkOrigin}) that get
   * `Access-Control-Allow-Origin` and see `WWW-Authenticate` and `Mcp-Session-Id`. Default: CORS off.
   */
  readonly cors?: { readonly origins: readonly string[] };
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
  /** How `INSUFFICIENT_SCOPE` on `tools/call` is answered. */
  readonly insufficientScope: 'http' | 'result';
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
   * The HTTP answer to a refusal: 401 with `resource_metadata` and `scope` = `scopes_supported` (no `error`
   * when no token was sent); 403 `insufficient_scope` naming every scope needed plus those held; other 403s
   * without an OAuth error; 503 without details. Anything that is not an `AuthSecError` is a generic 500.
   */
  challenge(error: unknown): ErrorResponse;
  /**
   * Whether a request's `Origin` is acceptable: absent (non-browser clients) is; otherwise it must be the
   * resource's origin, a configured one, or any loopback origin when the resource itself is on loopback.
   */
  checkOrigin(origin: string | undefined): boolean;
  /** CORS response headers for `origin` (empty when CORS is off or the origin is not a CORS origin). */
  corsHeaders(origin: string | undefined, preflight: boolean): Record<string, string>;
  /**
   * With `insufficientScope: 'http'`: the 403 step-up challenge when `body` (one JSON-RPC message or a batch)
   * holds a `tools/call` of a registered tool that more scopes alone would allow; for a batch, the scopes of
   * every such call. `undefined` otherwise: allowed calls, `PERMISSION_DENIED` and unknown tools are left to the
   * MCP server, which answers them with results.
   */
  preflightToolCall(principal: Principal, body: unknown): ErrorResponse | undefined;
  /** Who owns an MCP session: issuer, tenant and subject (`null` for a session opened without a token). */
  sessionOwner(principal: Principal | undefined): string | null;
  /**
   * Whether `principal` may use a session owned by `owner` (from {@link ResourceServer.sessionOwner}). A
   * refusal is logged and audited; answer it like an unknown session, so nothing tells the caller it exists.
   */
  canUseSession(owner: string | null, principal: Principal | undefined): boolean;
  /** The engine's logger, for adapters' own failures. */
  readonly logger: Logger;
  /** Whether the client is on this machine (socket address, or `X-Forwarded-For` with `trustProxy`). */
  isLoopbackClient(client: {
    readonly remoteAddress?: string | undefined;
    readonly forwardedFor?: string | undefined;
  }): boolean;
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

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1', '::ffff:127.0.0.1']);

/** Whether a host name or address is the loopback interface. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
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

function originOf(value: string): URL | undefined {
  try {
    const url = new URL(value);
    return url.origin === value ? url : undefined;
  } catch {
    return undefined;
  }
}

function single(value: string | readonly string[] | undefined): string | undefined {
  if (typeof value === 'string' || value === undefined) return value;
  // Two Authorization headers are ambiguous: refuse rather than pick one.
  if (value.length !== 1) throw new AuthSecError('TOKEN_INVALID', 'More than one Authorization header');
  return value[0];
}

/** The `tools/call` names of one JSON-RPC message or batch, with their arguments. */
function toolCalls(body: unknown): { name: string; arguments: unknown }[] {
  const messages = Array.isArray(body) ? body : [body];
  const calls: { name: string; arguments: unknown }[] = [];
  for (const message of messages) {
    if (typeof message !== 'object' || message === null) continue;
    const { method, params } = message as { method?: unknown; params?: unknown };
    if (method !== 'tools/call' || typeof params !== 'object' || params === null) continue;
    const { name, arguments: args } = params as { name?: unknown; arguments?: unknown };
    if (typeof name === 'string') calls.push({ name, arguments: args });
  }
  return calls;
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
 * authentication on every request with RFC 6750 challenges naming the metadata, the 403 `insufficient_scope`
 * step-up for `tools/call`, `Origin` validation, CORS, session ownership and health values. Misconfiguration is
 * a `TypeError` here, never on a request.
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
  const mode = options.insufficientScope ?? 'http';
  if (mode !== 'http' && mode !== 'result')
    throw new TypeError("createResourceServer: insufficientScope must be 'http' or 'result'");
  const corsOrigins = new Set(options.cors?.origins ?? []);
  const allowedOrigins = new Set([...(options.allowedOrigins ?? []), ...corsOrigins]);
  for (const origin of allowedOrigins) {
    if (!originOf(origin)) throw new TypeError(`allowedOrigins: not an origin: ${JSON.stringify(origin)}`);
  }
  const loopbackResource = isLoopbackHost(resource.hostname);
  const resourceName = options.resourceName ?? resource.host;
  const trustProxy = options.trustProxy === true;

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

  const challenge = (error: unknown): ErrorResponse =>
    toErrorResponse(error, { resourceMetadataUrl, scopes: scopesSupported() });

  const checkOrigin = (origin: string | undefined): boolean => {
    if (origin === undefined) return true;
    if (origin === resource.origin || allowedOrigins.has(origin)) return true;
    if (!loopbackResource) return false;
    const url = originOf(origin);
    return (
      url !== undefined &&
      (url.protocol === 'http:' || url.protocol === 'https:') &&
      isLoopbackHost(url.hostname)
    );
  };

  // Verified principals are frozen and, on a token-cache hit, the same object: memoise the owner key per object
  // rather than serialise it on every request of a session.
  const owners = new WeakMap<Principal, string>();
  const sessionOwner = (principal: Principal | undefined): string | null => {
    if (principal === undefined) return null;
    let owner = owners.get(principal);
    if (owner === undefined) {
      owner = JSON.stringify([principal.issuer, principal.tenantId, principal.subject]);
      if (Object.isFrozen(principal)) owners.set(principal, owner);
    }
    return owner;
  };

  return {
    resourceUrl,
    mcpPath,
    resourceMetadataUrl,
    metadataPaths,
    insufficientScope: mode,
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
    authInfo(principal, headers) {
      const token = (single(headers.authorization) ?? '').trim().replace(/^Bearer +/i, '');
      return {
        token,
        clientId: principal.clientId ?? '',
        scopes: [...principal.scopes],
        expiresAt: principal.expiresAt,
        resource,
        extra: { [PRINCIPAL_EXTRA_KEY]: principal },
      };
    },
    challenge,
    checkOrigin,
    corsHeaders(origin, preflight) {
      if (origin === undefined || !corsOrigins.has(origin)) return {};
      const headers: Record<string, string> = {
        'access-control-allow-origin': origin,
        vary: 'Origin',
        'access-control-expose-headers': 'WWW-Authenticate, Mcp-Session-Id',
      };
      if (preflight) {
        headers['access-control-allow-methods'] = 'GET, POST, DELETE, OPTIONS';
        headers['access-control-allow-headers'] =
          'Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID';
        headers['access-control-max-age'] = '600';
      }
      return headers;
    },
    preflightToolCall(principal, body) {
      if (mode !== 'http') return undefined;
      const needed: string[] = [];
      let first: AuthSecError | undefined;
      for (const call of toolCalls(body)) {
        const tool = authsec.tools.get(call.name);
        if (tool === undefined) continue;
        try {
          authsec.authorize(principal, tool.requirement, tool.name);
        } catch (error) {
          if (!isAuthSecError(error) || error.code !== 'INSUFFICIENT_SCOPE') continue;
          first ??= error;
          for (const scope of error.details.scopes ?? []) if (!needed.includes(scope)) needed.push(scope);
          authsec.audit({
            action: 'tool.call',
            decision: 'deny',
            principal,
            target: tool.name,
            reason: 'INSUFFICIENT_SCOPE',
            arguments: call.arguments,
          });
        }
      }
      if (first === undefined) return undefined;
      return challenge(
        new AuthSecError('INSUFFICIENT_SCOPE', first.message, {
          details: { ...first.details, scopes: needed },
        }),
      );
    },
    sessionOwner,
    canUseSession(owner, principal) {
      if (sessionOwner(principal) === owner) return true;
      authsec.logger.warn('An MCP session id was presented by another subject; refused', { status: 404 });
      authsec.audit({
        action: 'authenticate',
        decision: 'deny',
        ...(principal ? { principal } : {}),
        target: 'mcp-session',
        reason: 'PERMISSION_DENIED',
      });
      return false;
    },
    logger: authsec.logger,
    isLoopbackClient({ remoteAddress, forwardedFor }) {
      const address = trustProxy && forwardedFor ? forwardedFor.split(',')[0]!.trim() : remoteAddress;
      return address !== undefined && isLoopbackHost(address);
    },
    health: () => ({ status: 'ok' }),
    async ready() {
      const { ready, checks } = await authsec.readiness();
      return { status: ready ? 'ready' : 'unavailable', resource: resourceUrl, checks };
    },
  };
}
