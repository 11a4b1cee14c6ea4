import * as oauth from 'oauth4webapi';
import { AuthSecError } from '../errors.js';
import { createLogger } from '../logger.js';
import { fetchUrlProblem } from '../tokens/url-policy.js';
import type { Clock, Logger } from '../types.js';
import { toOAuthError } from './errors.js';

/**
 * An OAuth 2.1 / OpenID Connect client for the tool-based login, built on oauth4webapi (panva): discovery
 * (OpenID Connect Discovery, then RFC 8414), authorization code with PKCE (S256 only), refresh, the device
 * authorization grant (RFC 8628) and revocation (RFC 7009), with the RFC 8707 `resource` on every request so
 * tokens are issued for this MCP server only. It holds no state between calls: the caller keeps state, nonce
 * and verifier (the session store seals them).
 */

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_TIMEOUT_MS = 120_000;
const DEFAULT_DEVICE_INTERVAL_S = 5;
/** Used when a token response has no `expires_in` and the access token is not a JWT with `exp`. */
const FALLBACK_LIFETIME_MS = 5 * 60_000;

/** Options of {@link createOAuthClient}. Invalid values are `CONFIG_INVALID`, naming the option. */
export interface OAuthClientOptions {
  /**
   * The authorization server's issuer identifier. Its metadata must name exactly this issuer. `https:`, or
   * `http:` on a loopback host only (127.0.0.1, ::1, localhost): tokens must never cross a network in clear.
   */
  readonly issuer: string;
  /** This server's client id at the authorization server. */
  readonly clientId: string;
  /**
   * The client secret, for a confidential client (HTTP Basic, or `client_secret_post` when the server only
   * offers that). Default: none, a public client (PKCE protects the code).
   */
  readonly clientSecret?: string;
  /** Default redirect URI of {@link OAuthClient.authorizationRequest} and {@link OAuthClient.exchangeCode}. */
  readonly redirectUri?: string;
  /**
   * Scopes requested. Default `['openid']`. With `openid`, every login returns an ID token whose `nonce` is
   * checked. Add `offline_access` where the provider issues refresh tokens only for it.
   */
  readonly scopes?: readonly string[];
  /**
   * RFC 8707 resource indicator: the MCP server's canonical URL (or `urn:` identifier), i.e. the audience its
   * tokens must carry. Sent with the authorization, token, refresh and device requests. Default: none (then
   * many providers issue tokens the server refuses for lack of an audience; a warning says so).
   */
  readonly resource?: string;
  /** `fetch` used for every request. Default: global `fetch`. */
  readonly fetch?: typeof fetch;
  /** Deadline of each request, ms. Default 10000, at most 120000. */
  readonly timeoutMs?: number;
  /** Milliseconds since the epoch, for token expiry and ID token time checks. Default `Date.now`. */
  readonly clock?: Clock;
  /** Receives start-up warnings. Default: JSON lines on stderr. */
  readonly logger?: Logger;
}

/** Tokens from the token endpoint. Never log them, never put them in a tool result. */
export interface TokenSet {
  /** The access token. */
  readonly accessToken: string;
  /** The refresh token, when the server issued one. */
  readonly refreshToken?: string;
  /** The ID token, when one was issued (its claims, nonce included, were checked). */
  readonly idToken?: string;
  /**
   * When the access token expires, ms since the epoch: from `expires_in`, else the JWT's `exp` (unverified,
   * for scheduling only), else five minutes from now.
   */
  readonly expiresAt: number;
  /** The granted scope (space-separated), or `undefined` when the server did not say. */
  readonly scope: string | undefined;
  /** `bearer` (lower case). */
  readonly tokenType: string;
}

/** What {@link OAuthClient.authorizationRequest} needs. */
export interface AuthorizationRequestInput {
  /** The redirect URI. Default: the client's `redirectUri`. */
  readonly redirectUri?: string;
  /** The `state` value (opaque, single-use; the session store issues it). */
  readonly state: string;
  /** The OIDC `nonce`; sent when `openid` is among the scopes. */
  readonly nonce?: string;
  /** The PKCE code verifier; only its S256 challenge goes into the URL. */
  readonly codeVerifier: string;
  /** Scopes for this request. Default: the client's scopes. */
  readonly scopes?: readonly string[];
}

/** What {@link OAuthClient.exchangeCode} needs. Give `callbackUrl` or `params`. */
export interface CodeExchangeInput {
  /** The full URL the browser was redirected to. */
  readonly callbackUrl?: string | URL;
  /** Or the callback's query parameters. */
  readonly params?: URLSearchParams | Readonly<Record<string, string>>;
  /** The state sent in the authorization request; the callback's must equal it. */
  readonly state: string;
  /** The PKCE code verifier of this login. */
  readonly codeVerifier: string;
  /** The nonce sent in the authorization request; the ID token's must equal it. */
  readonly nonce?: string;
  /** The redirect URI of the authorization request. Default: the client's `redirectUri`. */
  readonly redirectUri?: string;
  /** The scopes requested (decides whether an ID token is required). Default: the client's scopes. */
  readonly scopes?: readonly string[];
}

/** A started device authorization (RFC 8628). `deviceCode` is a secret: keep it server-side. */
export interface DeviceAuthorization {
  /** The device code to poll with. */
  readonly deviceCode: string;
  /** The code the user types at the verification URI. */
  readonly userCode: string;
  /** Where the user goes. */
  readonly verificationUri: string;
  /** The verification URI with the user code filled in, when the server offers one. */
  readonly verificationUriComplete?: string;
  /** Seconds to wait between polls (default 5). */
  readonly interval: number;
  /** When the device code expires, ms since the epoch. */
  readonly expiresAt: number;
}

/** Options of {@link OAuthClient.pollDeviceToken}. */
export interface DevicePollOptions {
  /** Stops polling; the promise then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Seconds between polls, from {@link DeviceAuthorization.interval}. Default 5; `slow_down` adds 5. */
  readonly interval?: number;
  /** Give up (`TOKEN_EXPIRED`) after this time, ms since the epoch. Default: when the server says so. */
  readonly expiresAt?: number;
}

/** The `token_type_hint` of a revocation request. */
export type TokenTypeHint = 'access_token' | 'refresh_token';

/** A discovered OAuth client. Safe to share; every method is independent. */
export interface OAuthClient {
  /** The issuer, as configured (and as the metadata named it). */
  readonly issuer: string;
  /** The client id. */
  readonly clientId: string;
  /** The RFC 8707 resource tokens are requested for, if configured. */
  readonly resource: string | undefined;
  /** The default scopes. */
  readonly scopes: readonly string[];
  /** True when the server has an authorization endpoint (authorization code flow). */
  readonly supportsAuthorizationCode: boolean;
  /** True when the server has a device authorization endpoint (RFC 8628). */
  readonly supportsDeviceFlow: boolean;
  /** True when the server has a revocation endpoint (RFC 7009). */
  readonly supportsRevocation: boolean;
  /**
   * Builds the authorization URL: `response_type=code`, PKCE `S256` challenge, state, nonce (with `openid`),
   * scope and resource. `BAD_REQUEST` when the server has no authorization endpoint.
   */
  authorizationRequest(input: AuthorizationRequestInput): Promise<URL>;
  /**
   * Checks the callback (state, RFC 9207 `iss`, `error`) and exchanges its code with the PKCE verifier. With
   * `openid` requested, an ID token is required and its nonce, issuer, audience and times are checked.
   */
  exchangeCode(input: CodeExchangeInput): Promise<TokenSet>;
  /** Exchanges a refresh token (RFC 6749 §6). A rotated refresh token is returned; else the old one stays valid. */
  refresh(refreshToken: string, options?: { readonly scopes?: readonly string[] }): Promise<TokenSet>;
  /** Starts a device authorization. `BAD_REQUEST` when the server has no device endpoint. */
  deviceAuthorization(options?: { readonly scopes?: readonly string[] }): Promise<DeviceAuthorization>;
  /**
   * Polls the token endpoint until the user has finished (or refused: `BAD_REQUEST` `access_denied`; or the code
   * expired: `TOKEN_EXPIRED`), waiting `interval` seconds between polls and slowing down when told to.
   */
  pollDeviceToken(deviceCode: string, options?: DevicePollOptions): Promise<TokenSet>;
  /**
   * Revokes a token (RFC 7009). Resolves `true` once the server accepted the request; `false` without a request
   * when the server has no revocation endpoint, or when it answers `unsupported_token_type` (many servers cannot
   * revoke self-contained JWT access tokens: those stay valid until they expire).
   */
  revoke(token: string, hint?: TokenTypeHint): Promise<boolean>;
}

function configError(option: string, problem: string): AuthSecError {
  return new AuthSecError('CONFIG_INVALID', `OAuth client option ${option} ${problem}`);
}

function checkScopes(option: string, scopes: unknown): readonly string[] {
  if (
    !Array.isArray(scopes) ||
    !scopes.every((s) => typeof s === 'string' && /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s))
  ) {
    throw configError(option, 'must be an array of scope tokens (no spaces or quotes)');
  }
  return Object.freeze([...new Set(scopes as string[])]);
}

function checkResource(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !URL.canParse(value) || value.includes('#')) {
    throw configError('resource', 'must be an absolute URI without a fragment (RFC 8707)');
  }
  return value;
}

function checkUri(option: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !URL.canParse(value)) throw configError(option, 'must be an absolute URL');
  return value;
}

/** Reads the unverified `exp` of a JWT, for scheduling only (the engine verifies the token itself). */
function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === undefined) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    const exp = (payload as { exp?: unknown } | null)?.exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function toTokenSet(response: oauth.TokenEndpointResponse, now: number): TokenSet {
  const expiresAt =
    typeof response.expires_in === 'number'
      ? now + response.expires_in * 1000
      : (jwtExpiry(response.access_token) ?? now + FALLBACK_LIFETIME_MS);
  return Object.freeze({
    accessToken: response.access_token,
    ...(response.refresh_token === undefined ? {} : { refreshToken: response.refresh_token }),
    ...(response.id_token === undefined ? {} : { idToken: response.id_token }),
    expiresAt,
    scope: response.scope,
    tokenType: response.token_type,
  });
}

function waitFor(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Discovers `issuer` and returns an {@link OAuthClient}.
 *
 * Start-up checks (`CONFIG_INVALID`): options; an issuer that is `http:` off loopback; metadata naming another
 * issuer; an endpoint that is neither `https:` nor loopback `http:`; no token endpoint; a server advertising
 * PKCE methods without `S256`. A server that does not advertise PKCE at all gets a warning (PKCE is still sent).
 * An unreachable server is `SERVICE_UNAVAILABLE` (retry later).
 *
 * Errors of the methods: unreachable, timed out, 5xx, `server_error`, `temporarily_unavailable` or malformed
 * answers are `SERVICE_UNAVAILABLE`; `invalid_grant` and bad ID tokens are `TOKEN_INVALID`; `expired_token`
 * is `TOKEN_EXPIRED`; every other OAuth error and a callback whose state or issuer does not match are
 * `BAD_REQUEST`. Messages carry the OAuth `error` value and never a token or code.
 */
export async function createOAuthClient(options: OAuthClientOptions): Promise<OAuthClient> {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('createOAuthClient: options object required');
  }
  const issuerProblem = fetchUrlProblem(options.issuer);
  if (issuerProblem) throw configError('issuer', issuerProblem);
  const issuerUrl = new URL(options.issuer);
  if (issuerUrl.search !== '' || issuerUrl.hash !== '') {
    throw configError('issuer', 'must not have a query or fragment');
  }
  if (typeof options.clientId !== 'string' || options.clientId === '') {
    throw configError('clientId', 'must be a non-empty string');
  }
  if (
    options.clientSecret !== undefined &&
    (typeof options.clientSecret !== 'string' || options.clientSecret === '')
  ) {
    throw configError('clientSecret', 'must be a non-empty string when given');
  }
  const scopes = checkScopes('scopes', options.scopes ?? ['openid']);
  const resource = checkResource(options.resource);
  const defaultRedirectUri = checkUri('redirectUri', options.redirectUri);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS) {
    throw configError('timeoutMs', `must be an integer from 1 to ${MAX_TIMEOUT_MS}`);
  }
  if (options.clock !== undefined && typeof options.clock !== 'function') {
    throw configError('clock', 'must be a function');
  }
  if (options.fetch !== undefined && typeof options.fetch !== 'function') {
    throw configError('fetch', 'must be a function');
  }
  const clock = options.clock ?? Date.now;
  const logger = options.logger ?? createLogger();
  const userFetch = options.fetch ?? globalThis.fetch;
  // oauth4webapi refuses plain http unless told; we allow it only for a loopback issuer (checked above), and
  // every endpoint is checked against the same policy below.
  const insecure = issuerUrl.protocol === 'http:';

  const http = (signal?: AbortSignal) => ({
    signal: () =>
      signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
    [oauth.customFetch]: (url: string, init: RequestInit) => userFetch(url, init),
    ...(insecure ? { [oauth.allowInsecureRequests]: true } : {}),
  });

  const as = await discover(issuerUrl, http());

  for (const endpoint of [
    'authorization_endpoint',
    'token_endpoint',
    'device_authorization_endpoint',
    'revocation_endpoint',
  ] as const) {
    const value = as[endpoint];
    if (value === undefined) continue;
    const problem = fetchUrlProblem(value);
    if (problem) throw configError('issuer', `metadata ${endpoint} ${problem}`);
  }
  if (as.token_endpoint === undefined) throw configError('issuer', 'metadata has no token_endpoint');
  const pkceMethods = as.code_challenge_methods_supported;
  if (Array.isArray(pkceMethods) && !pkceMethods.includes('S256')) {
    throw configError('issuer', 'metadata advertises PKCE without S256; only S256 is used');
  }
  if (as.authorization_endpoint !== undefined && !Array.isArray(pkceMethods)) {
    logger.warn('The authorization server does not advertise PKCE support; S256 is sent anyway', {
      issuer: options.issuer,
    });
  }
  if (resource === undefined) {
    logger.warn('OAuth client without a resource: tokens may lack the audience this server requires', {
      option: 'resource',
    });
  }

  const authMethods = as.token_endpoint_auth_methods_supported;
  const clientAuth: oauth.ClientAuth =
    options.clientSecret === undefined
      ? oauth.None()
      : Array.isArray(authMethods) &&
          !authMethods.includes('client_secret_basic') &&
          authMethods.includes('client_secret_post')
        ? oauth.ClientSecretPost(options.clientSecret)
        : oauth.ClientSecretBasic(options.clientSecret);

  // A fresh object per call: clockSkew makes oauth4webapi's ID token time checks follow the injected clock.
  const client = (): oauth.Client => ({
    client_id: options.clientId,
    [oauth.clockSkew]: Math.round((clock() - Date.now()) / 1000),
  });
  const resourceParams = (): Record<string, string> => (resource === undefined ? {} : { resource });
  const scopeOf = (list: readonly string[] | undefined) =>
    list === undefined ? scopes : checkScopes('scopes', list);

  const redirectOf = (value: string | undefined): string => {
    const uri = value ?? defaultRedirectUri;
    if (typeof uri !== 'string' || !URL.canParse(uri)) {
      throw new TypeError('A redirect URI is required (per call or as the redirectUri option)');
    }
    return uri;
  };

  const requireString = (name: string, value: unknown): string => {
    if (typeof value !== 'string' || value === '') throw new TypeError(`${name} must be a non-empty string`);
    return value;
  };

  const self: OAuthClient = {
    issuer: options.issuer,
    clientId: options.clientId,
    resource,
    scopes,
    supportsAuthorizationCode: as.authorization_endpoint !== undefined,
    supportsDeviceFlow: as.device_authorization_endpoint !== undefined,
    supportsRevocation: as.revocation_endpoint !== undefined,

    async authorizationRequest(input) {
      if (as.authorization_endpoint === undefined) {
        throw new AuthSecError('BAD_REQUEST', 'The authorization server has no authorization endpoint');
      }
      const state = requireString('state', input.state);
      const verifier = requireString('codeVerifier', input.codeVerifier);
      const wanted = scopeOf(input.scopes);
      const url = new URL(as.authorization_endpoint);
      url.searchParams.set('response_type', 'code');
      url.searchParams.set('client_id', options.clientId);
      url.searchParams.set('redirect_uri', redirectOf(input.redirectUri));
      if (wanted.length > 0) url.searchParams.set('scope', wanted.join(' '));
      url.searchParams.set('state', state);
      if (wanted.includes('openid') && input.nonce !== undefined) {
        url.searchParams.set('nonce', requireString('nonce', input.nonce));
      }
      url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
      url.searchParams.set('code_challenge_method', 'S256');
      if (resource !== undefined) url.searchParams.set('resource', resource);
      return url;
    },

    async exchangeCode(input) {
      const state = requireString('state', input.state);
      const verifier = requireString('codeVerifier', input.codeVerifier);
      let params: URLSearchParams;
      if (input.callbackUrl !== undefined) params = new URL(input.callbackUrl).searchParams;
      else if (input.params !== undefined) params = new URLSearchParams(input.params);
      else throw new TypeError('exchangeCode: callbackUrl or params is required');
      let checked: URLSearchParams;
      try {
        checked = oauth.validateAuthResponse(as, client(), params, state);
      } catch (error) {
        if (error instanceof oauth.AuthorizationResponseError) throw toOAuthError(error, 'the login');
        // Never keep this error as a cause: it holds the callback parameters, code included.
        throw new AuthSecError('BAD_REQUEST', 'The authorization response does not match this login');
      }
      const wanted = scopeOf(input.scopes);
      const openid = wanted.includes('openid');
      try {
        const response = await oauth.authorizationCodeGrantRequest(
          as,
          client(),
          clientAuth,
          checked,
          redirectOf(input.redirectUri),
          verifier,
          { ...http(), additionalParameters: resourceParams() },
        );
        const now = clock();
        const result = await oauth.processAuthorizationCodeResponse(as, client(), response, {
          ...(openid
            ? {
                expectedNonce: input.nonce === undefined ? oauth.expectNoNonce : input.nonce,
                requireIdToken: true,
              }
            : {}),
        });
        return toTokenSet(result, now);
      } catch (error) {
        throw toOAuthError(error, 'the code exchange');
      }
    },

    async refresh(refreshToken, refreshOptions) {
      requireString('refreshToken', refreshToken);
      const wanted = refreshOptions?.scopes === undefined ? undefined : scopeOf(refreshOptions.scopes);
      try {
        const response = await oauth.refreshTokenGrantRequest(as, client(), clientAuth, refreshToken, {
          ...http(),
          additionalParameters: {
            ...resourceParams(),
            ...(wanted === undefined ? {} : { scope: wanted.join(' ') }),
          },
        });
        const now = clock();
        return toTokenSet(await oauth.processRefreshTokenResponse(as, client(), response), now);
      } catch (error) {
        throw toOAuthError(error, 'the token refresh');
      }
    },

    async deviceAuthorization(deviceOptions) {
      if (as.device_authorization_endpoint === undefined) {
        throw new AuthSecError('BAD_REQUEST', 'The authorization server does not offer the device flow');
      }
      const wanted = scopeOf(deviceOptions?.scopes);
      try {
        const parameters: Record<string, string> = { ...resourceParams() };
        if (wanted.length > 0) parameters.scope = wanted.join(' ');
        const response = await oauth.deviceAuthorizationRequest(as, client(), clientAuth, parameters, http());
        const now = clock();
        const result = await oauth.processDeviceAuthorizationResponse(as, client(), response);
        for (const uri of [result.verification_uri, result.verification_uri_complete]) {
          if (uri !== undefined && !/^https?:\/\//i.test(uri)) {
            throw new AuthSecError(
              'SERVICE_UNAVAILABLE',
              'The device verification URI is not an http(s) URL',
            );
          }
        }
        return Object.freeze({
          deviceCode: result.device_code,
          userCode: result.user_code,
          verificationUri: result.verification_uri,
          ...(result.verification_uri_complete === undefined
            ? {}
            : { verificationUriComplete: result.verification_uri_complete }),
          interval: result.interval ?? DEFAULT_DEVICE_INTERVAL_S,
          expiresAt: now + result.expires_in * 1000,
        });
      } catch (error) {
        throw toOAuthError(error, 'the device authorization');
      }
    },

    async pollDeviceToken(deviceCode, pollOptions = {}) {
      requireString('deviceCode', deviceCode);
      const { signal } = pollOptions;
      let interval = pollOptions.interval ?? DEFAULT_DEVICE_INTERVAL_S;
      if (!Number.isFinite(interval) || interval <= 0) throw new TypeError('interval must be positive');
      for (;;) {
        await waitFor(interval * 1000, signal);
        if (pollOptions.expiresAt !== undefined && clock() >= pollOptions.expiresAt) {
          throw new AuthSecError('TOKEN_EXPIRED', 'The device code expired before the login was finished');
        }
        try {
          const response = await oauth.deviceCodeGrantRequest(as, client(), clientAuth, deviceCode, {
            ...http(signal),
            additionalParameters: resourceParams(),
          });
          const now = clock();
          return toTokenSet(await oauth.processDeviceCodeResponse(as, client(), response), now);
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          if (error instanceof oauth.ResponseBodyError) {
            if (error.error === 'authorization_pending') continue;
            if (error.error === 'slow_down') {
              interval += 5;
              continue;
            }
          }
          throw toOAuthError(error, 'the device token request');
        }
      }
    },

    async revoke(token, hint) {
      requireString('token', token);
      if (as.revocation_endpoint === undefined) return false;
      try {
        const response = await oauth.revocationRequest(as, client(), clientAuth, token, {
          ...http(),
          ...(hint === undefined ? {} : { additionalParameters: { token_type_hint: hint } }),
        });
        await oauth.processRevocationResponse(response);
        return true;
      } catch (error) {
        // RFC 7009 §2.2.1: the server cannot revoke this kind of token (oidc-provider, for JWT access tokens).
        if (error instanceof oauth.ResponseBodyError && error.error === 'unsupported_token_type')
          return false;
        throw toOAuthError(error, 'the revocation');
      }
    },
  };
  // The device grant type is only worth advertising if the server lists it (or lists nothing).
  if (
    self.supportsDeviceFlow &&
    Array.isArray(as.grant_types_supported) &&
    !as.grant_types_supported.includes(DEVICE_GRANT)
  ) {
    return Object.freeze({ ...self, supportsDeviceFlow: false });
  }
  return Object.freeze(self);
}

/**
 * Fetches the metadata: OpenID Connect Discovery first, then RFC 8414 when the first answers 4xx. The document
 * must name exactly `issuer` (oauth4webapi checks it).
 */
async function discover(
  issuer: URL,
  http: oauth.DiscoveryRequestOptions,
): Promise<oauth.AuthorizationServer> {
  let lastStatus: number | undefined;
  for (const algorithm of ['oidc', 'oauth2'] as const) {
    let response: Response;
    try {
      response = await oauth.discoveryRequest(issuer, { ...http, algorithm });
    } catch (error) {
      throw toOAuthError(error, 'the metadata request');
    }
    if (response.status >= 400 && response.status < 500) {
      lastStatus = response.status;
      await response.body?.cancel().catch(() => {});
      continue;
    }
    try {
      return await oauth.processDiscoveryResponse(issuer, response);
    } catch (error) {
      if (error instanceof oauth.OperationProcessingError && error.code === oauth.JSON_ATTRIBUTE_COMPARISON) {
        throw new AuthSecError(
          'CONFIG_INVALID',
          'The authorization server metadata names a different issuer',
        );
      }
      throw toOAuthError(error, 'the metadata request');
    }
  }
  throw new AuthSecError(
    'CONFIG_INVALID',
    `No authorization server metadata found for the issuer (HTTP ${String(lastStatus)})`,
  );
}

/** A fresh PKCE code verifier (RFC 7636: 32 random bytes, base64url). */
export function generateCodeVerifier(): string {
  return oauth.generateRandomCodeVerifier();
}

/** A fresh OIDC nonce (32 random bytes, base64url). */
export function generateNonce(): string {
  return oauth.generateRandomNonce();
}
