import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { SignJWT } from 'jose';
import Provider from 'oidc-provider';

import { MemoryStore } from './adapter.js';
import {
  applyAutoGrant,
  createConfiguration,
  isDefaultAllowedResource,
  isLoopbackHost,
  randomCookieKey,
  resourceScopesOf,
  userTokenClaims,
} from './configuration.js';
import { DevIdpError } from './errors.js';
import { loginPage, messagePage } from './html.js';
import {
  accessTokenSigningKey,
  generateSigningKeys,
  normalizePrivateJwks,
  type PrivateJwks,
} from './keys.js';
import { createJsonLinesLogger, type DevIdpLogger } from './logger.js';
import {
  DEMO_USERS,
  type DevUser,
  loadUsersFile,
  type ResolvedDevUser,
  resolveDevUsers,
  UserDirectory,
} from './users.js';

/**
 * A client registered with the IdP at start (RFC 7591 metadata names). Besides the standard metadata, a
 * static client may carry the claims its client-credentials tokens get: `tenant_id`, `roles`, `groups`,
 * `resources`, `permissions` (dynamically registered clients may not set them).
 */
export interface DevClient {
  /** Unique client identifier; a client with the id `authsec-dev` replaces {@link DEFAULT_DEV_CLIENT}. */
  client_id: string;
  /** Required unless `token_endpoint_auth_method` is `'none'`. */
  client_secret?: string;
  /** Shown on the sign-in page. */
  client_name?: string;
  /** Exact redirect URIs (any port for loopback URIs of a `'native'` client). Required for the code flow. */
  redirect_uris?: string[];
  /** Where RP-initiated logout may return to. */
  post_logout_redirect_uris?: string[];
  /** Default `['authorization_code', 'refresh_token']`. */
  grant_types?: string[];
  /** Default `['code']`; use `[]` for a client-credentials or device-only client. */
  response_types?: Array<'code'>;
  /** Default `'client_secret_basic'`. */
  token_endpoint_auth_method?: 'none' | 'client_secret_basic' | 'client_secret_post';
  /** `'native'` accepts its loopback redirect URIs on any port (RFC 8252). Default `'web'`. */
  application_type?: 'web' | 'native';
  /** When set, the only scopes this client may request. */
  scope?: string;
  /** `tenant_id` claim of this client's client-credentials tokens. */
  tenant_id?: string;
  /** `roles` claim of this client's client-credentials tokens. */
  roles?: string[];
  /** `groups` claim of this client's client-credentials tokens. */
  groups?: string[];
  /** `resources` claim of this client's client-credentials tokens. */
  resources?: string[];
  /** `permissions` claim of this client's client-credentials tokens. */
  permissions?: string[];
}

/** Client id of {@link DEFAULT_DEV_CLIENT}. */
export const DEFAULT_DEV_CLIENT_ID = 'authsec-dev';

/**
 * The public client every dev IdP has (unless `clients` redefines its id): a native application without a
 * secret, for the authorization code flow with a loopback redirect (`http://127.0.0.1:<any port>/callback`
 * or `/oauth/callback`, also on `localhost`) and for the device flow.
 */
export const DEFAULT_DEV_CLIENT: Readonly<DevClient> = Object.freeze<DevClient>({
  client_id: DEFAULT_DEV_CLIENT_ID,
  client_name: 'AuthSec development client',
  application_type: 'native',
  token_endpoint_auth_method: 'none',
  redirect_uris: [
    'http://127.0.0.1/callback',
    'http://localhost/callback',
    'http://127.0.0.1/oauth/callback',
    'http://localhost/oauth/callback',
  ],
  grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
  response_types: ['code'],
});

/** Options of {@link startDevIdp}. */
export interface DevIdpOptions {
  /** TCP port. Default `0`: a free port chosen by the OS (read it from {@link DevIdp.url}). */
  port?: number;
  /**
   * Address to bind. Default `'127.0.0.1'`. A non-loopback address is refused unless `allowNonLoopback` is
   * true: anyone who can reach the port can sign in as the fixture users.
   */
  host?: string;
  /** Allow a non-loopback `host`. Default `false`. Never honoured when `NODE_ENV` is `production`. */
  allowNonLoopback?: boolean;
  /**
   * Issuer identifier (`iss` of every token). Default `http://<host>:<port>`. An origin only: no path, query
   * or fragment; a trailing slash is removed.
   */
  issuer?: string;
  /** The users. Default: {@link DEMO_USERS}. Exclusive with `usersFile`. */
  users?: readonly DevUser[];
  /** A JSON file holding an array of {@link DevUser}. Exclusive with `users`. */
  usersFile?: string;
  /** Static clients, in addition to {@link DEFAULT_DEV_CLIENT}. */
  clients?: readonly DevClient[];
  /** Access token lifetime. Default `600`. */
  accessTokenTtlSeconds?: number;
  /** Refresh token lifetime. Default `86400`. */
  refreshTokenTtlSeconds?: number;
  /**
   * Private signing keys (a JWK Set with at least one EC P-256 private key; access tokens are ES256, ID
   * tokens RS256 when an RSA key is present, else ES256). Default: a fresh ES256 and RS256 key per start.
   */
  jwks?: PrivateJwks;
  /** Where events go. Default: JSON lines on stderr, warnings and errors only. */
  logger?: DevIdpLogger;
  /**
   * Which RFC 8707 resource indicators tokens may be issued for. Default: `http(s)` URLs on a loopback host,
   * and `urn:` identifiers. Anything refused gets `invalid_target`.
   */
  resources?: { allow?: (resource: string) => boolean };
  /**
   * Format of access tokens issued for a resource. Default `'jwt'` (RFC 9068). `'opaque'` issues random
   * strings that only the introspection endpoint (RFC 7662) can read, for testing introspection: oidc-provider
   * refuses to introspect its JWT access tokens (`unsupported_token_type`).
   */
  accessTokenFormat?: 'jwt' | 'opaque';
  /** Environment read for `NODE_ENV`. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** Options of {@link DevIdp.issueToken}. */
export interface IssueTokenOptions {
  /** `aud`: the resource (canonical MCP server URL) the token is for. Required. */
  audience: string;
  /** `scope`, verbatim (not limited to the user's scopes). Default: the user's scopes. */
  scopes?: string[];
  /** Lifetime from now. Default: the access token TTL. Zero or negative mints an already expired token. */
  ttlSeconds?: number;
  /** `client_id` claim. Default {@link DEFAULT_DEV_CLIENT_ID}. */
  clientId?: string;
  /** Added last, so they may override any computed claim (a test can forge a foreign `tenant_id`). */
  extraClaims?: Record<string, unknown>;
}

/** A running development IdP. */
export interface DevIdp {
  /** Issuer identifier: the `iss` of its tokens and the base of its discovery documents. */
  readonly issuer: string;
  /** The URL it actually listens on (`http://<host>:<port>`); the same as `issuer` unless one was given. */
  readonly url: string;
  /** The JWKS URL (public keys). */
  readonly jwksUrl: string;
  /** Its users, defaults filled in (passwords included: they are fixtures). */
  readonly users: readonly ResolvedDevUser[];
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
  /**
   * Signs an RFC 9068 access token (`typ: at+jwt`, ES256) for a user (email or `sub`) with the IdP's current
   * key, without any OAuth flow: for tests, and for the demo's "paste a token" step.
   */
  issueToken(user: string, options: IssueTokenOptions): Promise<string>;
  /**
   * Generates new signing keys and signs with them from now on; the previous keys stay in the JWKS (older ones
   * are dropped), so tokens already issued keep verifying. Sessions and clients survive.
   */
  rotateKeys(): Promise<void>;
}

const FORM_LIMIT = 16 * 1024;
const HTML_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new DevIdpError('INVALID_OPTIONS', `${name} must be a positive integer (got ${String(value)})`);
  }
  return value;
}

function checkPort(port: number | undefined): number {
  if (port === undefined) return 0;
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) {
    throw new DevIdpError('INVALID_OPTIONS', `port must be an integer from 0 to 65535 (got ${String(port)})`);
  }
  return port;
}

function normalizeIssuer(issuer: string): string {
  const url = URL.parse(issuer);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new DevIdpError('INVALID_OPTIONS', `issuer must be an http(s) URL (got ${issuer})`);
  }
  if (
    url.pathname !== '/' ||
    url.search !== '' ||
    url.hash !== '' ||
    issuer.includes('?') ||
    issuer.includes('#')
  ) {
    throw new DevIdpError(
      'INVALID_OPTIONS',
      `issuer must be an origin without path, query or fragment (got ${issuer})`,
    );
  }
  return url.origin;
}

function send(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, HTML_HEADERS);
  res.end(html);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buffer.length;
    if (size > FORM_LIMIT) return undefined;
    chunks.push(buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function listParam(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * Starts a local OAuth 2.1 / OpenID Connect authorization server (oidc-provider) for development, demos and
 * tests: authorization code + PKCE (S256 only), refresh tokens, device authorization grant, client
 * credentials, dynamic client registration, revocation, introspection, discovery (OpenID and RFC 8414), and
 * RFC 9068 JWT access tokens whose `aud` is the RFC 8707 `resource` and which carry the user's `tenant_id`,
 * `roles`, `groups`, `resources`, `permissions` and granted `scope`.
 *
 * Refuses to start (a {@link DevIdpError}) when `NODE_ENV` is `production`, or on a non-loopback host unless
 * `allowNonLoopback` is set.
 */
export async function startDevIdp(options: DevIdpOptions = {}): Promise<DevIdp> {
  const env = options.env ?? process.env;
  if (env.NODE_ENV === 'production') {
    throw new DevIdpError(
      'PRODUCTION_REFUSED',
      'the AuthSec development IdP never runs with NODE_ENV=production',
    );
  }
  const host = options.host ?? '127.0.0.1';
  if (!isLoopbackHost(host) && options.allowNonLoopback !== true) {
    throw new DevIdpError(
      'NON_LOOPBACK_HOST',
      `refusing to bind the development IdP to ${host}: use a loopback host, or set allowNonLoopback: true`,
    );
  }
  const port = checkPort(options.port);
  const accessTokenTtlSeconds = positiveInteger('accessTokenTtlSeconds', options.accessTokenTtlSeconds, 600);
  const refreshTokenTtlSeconds = positiveInteger(
    'refreshTokenTtlSeconds',
    options.refreshTokenTtlSeconds,
    86400,
  );
  if (options.users && options.usersFile) {
    throw new DevIdpError('INVALID_OPTIONS', 'give users or usersFile, not both');
  }
  const resolvedUsers = options.usersFile
    ? await loadUsersFile(options.usersFile)
    : options.users
      ? resolveDevUsers(options.users)
      : [...DEMO_USERS];
  const users = new UserDirectory(resolvedUsers);
  const clientsById = new Map<string, DevClient>([[DEFAULT_DEV_CLIENT_ID, { ...DEFAULT_DEV_CLIENT }]]);
  for (const client of options.clients ?? []) {
    if (typeof client?.client_id !== 'string' || client.client_id === '') {
      throw new DevIdpError('INVALID_OPTIONS', 'every client needs a client_id');
    }
    clientsById.set(client.client_id, { ...client });
  }
  const issuerOption = options.issuer === undefined ? undefined : normalizeIssuer(options.issuer);
  const logger = options.logger ?? createJsonLinesLogger();
  const allowResource = options.resources?.allow ?? isDefaultAllowedResource;
  const accessTokenFormat = options.accessTokenFormat ?? 'jwt';
  if (accessTokenFormat !== 'jwt' && accessTokenFormat !== 'opaque') {
    throw new DevIdpError('INVALID_OPTIONS', `accessTokenFormat must be 'jwt' or 'opaque'`);
  }
  if (!isLoopbackHost(host)) {
    logger.warn('development IdP bound to a non-loopback address: anyone who reaches it can sign in', {
      host,
    });
  }

  let jwks = options.jwks ? await normalizePrivateJwks(options.jwks) : await generateSigningKeys();
  let currentGeneration = jwks.keys;
  let signing = await accessTokenSigningKey(jwks);
  const store = new MemoryStore();
  const cookieKeys = [randomCookieKey()];
  const resourceScopes = new Set(resourceScopesOf(users.users));

  let provider: Provider | undefined;
  let providerCallback: ((req: IncomingMessage, res: ServerResponse) => unknown) | undefined;
  let issuer = '';

  const buildProvider = (): void => {
    const next = new Provider(
      issuer,
      createConfiguration({
        users,
        clients: [...clientsById.values()].map((client) => ({ ...client })),
        jwks,
        cookieKeys,
        store,
        accessTokenTtlSeconds,
        refreshTokenTtlSeconds,
        allowResource,
        accessTokenFormat,
      }),
    );
    next.on('server_error', (ctx, err) => {
      logger.error('authorization server error', { route: ctx.oidc?.route, error: err.message });
    });
    next.on('grant.success', (ctx) => {
      logger.info('token issued', {
        grant_type: ctx.oidc.params?.grant_type,
        client_id: ctx.oidc.client?.clientId,
      });
    });
    next.on('grant.error', (ctx, err) => {
      logger.info('token request refused', { client_id: ctx.oidc.client?.clientId, error: err.message });
    });
    next.on('authorization.error', (ctx, err) => {
      logger.info('authorization request refused', {
        client_id: ctx.oidc.client?.clientId,
        error: err.message,
      });
    });
    provider = next;
    providerCallback = next.callback();
  };

  const handleInteraction = async (
    req: IncomingMessage,
    res: ServerResponse,
    uid: string,
    current: Provider,
  ) => {
    let details: Awaited<ReturnType<Provider['interactionDetails']>>;
    try {
      details = await current.interactionDetails(req, res);
    } catch {
      send(
        res,
        400,
        messagePage(
          'Sign-in expired',
          'This sign-in request is unknown or expired. Start again from the application.',
        ),
      );
      return;
    }
    if (details.uid !== uid) {
      send(
        res,
        400,
        messagePage('Sign-in expired', 'This sign-in request does not match your browser session.'),
      );
      return;
    }
    const { prompt, params } = details;
    const clientId = typeof params.client_id === 'string' ? params.client_id : '';
    if (prompt.name === 'consent') {
      // Consent is automatic: grant what the user holds of what was asked, and resume.
      const accountId = details.session?.accountId ?? '';
      const existing = details.grantId ? await current.Grant.find(details.grantId) : undefined;
      const grant =
        existing && existing.accountId === accountId && existing.clientId === clientId
          ? existing
          : new current.Grant({ accountId, clientId });
      const scope = typeof params.scope === 'string' ? params.scope.split(' ') : [];
      applyAutoGrant(grant, users.bySub(accountId), scope, listParam(params.resource), resourceScopes);
      const grantId = await grant.save();
      await current.interactionFinished(
        req,
        res,
        { consent: { grantId } },
        { mergeWithLastSubmission: true },
      );
      return;
    }
    if (prompt.name !== 'login') {
      send(
        res,
        400,
        messagePage('Unsupported', `This development IdP cannot handle the "${prompt.name}" prompt.`),
      );
      return;
    }
    const client = await current.Client.find(clientId);
    const render = (status: number, extra: { login?: string; error?: string } = {}) =>
      send(
        res,
        status,
        loginPage({
          action: `/interaction/${uid}`,
          client: typeof client?.clientName === 'string' ? client.clientName : clientId,
          ...(typeof params.scope === 'string' ? { scope: params.scope } : {}),
          resources: listParam(params.resource),
          ...extra,
        }),
      );
    if (req.method === 'GET' || req.method === 'HEAD') {
      render(200);
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'GET, POST' }).end();
      return;
    }
    const form = await readForm(req);
    if (!form) {
      render(400, { error: 'Send the form as application/x-www-form-urlencoded.' });
      return;
    }
    const login = form.get('login') ?? '';
    const user = users.authenticate(login, form.get('password') ?? '');
    if (!user) {
      logger.info('sign-in failed', { client_id: clientId });
      render(200, { login, error: 'Wrong email or password.' });
      return;
    }
    logger.info('signed in', { sub: user.sub, client_id: clientId });
    await current.interactionFinished(
      req,
      res,
      { login: { accountId: user.sub, amr: ['pwd'] } },
      { mergeWithLastSubmission: false },
    );
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const current = provider;
    const callback = providerCallback;
    if (!current || !callback) {
      res.writeHead(503).end();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://dev-idp.invalid');
    if (url.pathname === '/.well-known/oauth-authorization-server') {
      // RFC 8414 metadata: the same document as OpenID discovery, which oidc-provider serves.
      req.url = `/.well-known/openid-configuration${url.search}`;
      await callback(req, res);
      return;
    }
    const interaction = /^\/interaction\/([A-Za-z0-9_-]{1,128})$/.exec(url.pathname);
    if (interaction?.[1]) {
      await handleInteraction(req, res, interaction[1], current);
      return;
    }
    await callback(req, res);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      logger.error('request failed', { path: req.url?.split('?')[0], error: String(error) });
      if (!res.headersSent)
        send(res, 500, messagePage('Error', 'The development IdP failed to handle this request.'));
      else res.destroy();
    });
  });
  const address = await listen(server, port, host);
  const urlHost = address.family === 'IPv6' || host.includes(':') ? `[${address.address}]` : host;
  const url = `http://${urlHost}:${address.port}`;
  issuer = issuerOption ?? url;
  try {
    buildProvider();
    // oidc-provider validates static clients on first use; do it now so a bad client fails the start.
    for (const clientId of clientsById.keys()) {
      try {
        await provider!.Client.find(clientId);
      } catch (cause) {
        const detail = (cause as { error_description?: unknown }).error_description ?? String(cause);
        throw new DevIdpError('INVALID_OPTIONS', `client ${clientId}: ${String(detail)}`, { cause });
      }
    }
  } catch (cause) {
    server.close();
    throw cause instanceof DevIdpError
      ? cause
      : new DevIdpError('INVALID_OPTIONS', `cannot configure the authorization server: ${String(cause)}`, {
          cause,
        });
  }
  logger.info('development IdP listening', { issuer, url });

  const jwksUrl = provider!.urlFor('jwks');
  let closed: Promise<void> | undefined;

  return {
    issuer,
    url,
    jwksUrl,
    users: users.users,
    close() {
      closed ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return closed;
    },
    async issueToken(login, tokenOptions) {
      const user = users.find(login);
      if (!user) throw new DevIdpError('UNKNOWN_USER', `no user ${login}`);
      if (typeof tokenOptions?.audience !== 'string' || tokenOptions.audience === '') {
        throw new DevIdpError('INVALID_OPTIONS', 'issueToken needs an audience');
      }
      const ttl = tokenOptions.ttlSeconds ?? accessTokenTtlSeconds;
      if (!Number.isSafeInteger(ttl))
        throw new DevIdpError('INVALID_OPTIONS', 'ttlSeconds must be an integer');
      const scope = (tokenOptions.scopes ?? user.scopes).join(' ');
      const now = Math.floor(Date.now() / 1000);
      const payload = {
        iss: issuer,
        sub: user.sub,
        aud: tokenOptions.audience,
        iat: ttl > 0 ? now : now + ttl - 60,
        exp: now + ttl,
        jti: randomUUID(),
        client_id: tokenOptions.clientId ?? DEFAULT_DEV_CLIENT_ID,
        ...(scope === '' ? {} : { scope }),
        ...userTokenClaims(user),
        ...tokenOptions.extraClaims,
      };
      return new SignJWT(payload)
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: signing.kid })
        .sign(signing.key);
    },
    async rotateKeys() {
      const fresh = await generateSigningKeys();
      jwks = { keys: [...fresh.keys, ...currentGeneration] };
      currentGeneration = fresh.keys;
      signing = await accessTokenSigningKey(jwks);
      buildProvider();
      logger.info('signing keys rotated', { kid: signing.kid });
    },
  };
}
