import { randomBytes } from 'node:crypto';

import {
  type Account,
  type Client,
  type Configuration,
  errors,
  type Grant,
  interactionPolicy,
  type KoaContextWithOIDC,
  type ResourceServer,
} from 'oidc-provider';

import type { MemoryStore } from './adapter.js';
import { escapeHtml, page } from './html.js';
import { hasRsaKey, type PrivateJwks } from './keys.js';
import type { ResolvedDevUser, UserDirectory } from './users.js';

/** Scopes every user may be granted: they concern the OpenID Connect session, not the resource. */
export const OIDC_SCOPES: readonly string[] = ['openid', 'offline_access', 'email', 'profile'];

/** Resource scopes the IdP always knows, whatever its users hold. */
export const DEFAULT_RESOURCE_SCOPES: readonly string[] = ['read', 'write', 'admin'];

/** Claim names a static client may carry in its metadata; they end up in its client-credentials tokens. */
export const CLIENT_CLAIMS = ['tenant_id', 'roles', 'groups', 'resources', 'permissions'] as const;

const TENANT_ID = /^[a-z0-9][a-z0-9-]{0,54}$/;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** True for `localhost`, `::1` and any 127.0.0.0/8 address. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host.toLowerCase()) || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * The default resource rule: an `http:`/`https:` URL on a loopback host, or any `urn:`. Everything else is
 * refused with `invalid_target`, so a development token cannot be minted for a real service.
 */
export function isDefaultAllowedResource(resource: string): boolean {
  const url = URL.parse(resource);
  if (!url) return false;
  if (url.protocol === 'urn:') return true;
  return (url.protocol === 'http:' || url.protocol === 'https:') && isLoopbackHost(url.hostname);
}

/** Everything the provider configuration needs from the running dev IdP. */
export interface ConfigurationInput {
  users: UserDirectory;
  clients: readonly Record<string, unknown>[];
  jwks: PrivateJwks;
  cookieKeys: string[];
  store: MemoryStore;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  allowResource: (resource: string) => boolean;
  accessTokenFormat: 'jwt' | 'opaque';
}

/** The claims a user's access tokens carry besides the registered ones (RFC 9068) and `scope`. */
export function userTokenClaims(user: ResolvedDevUser): Record<string, unknown> {
  return {
    email: user.email,
    ...(user.name === undefined ? {} : { name: user.name }),
    tenant_id: user.tenant_id,
    roles: user.roles,
    groups: user.groups,
    resources: user.resources,
    permissions: user.permissions,
  };
}

function clientTokenClaims(client: Client | undefined): Record<string, unknown> | undefined {
  if (!client) return undefined;
  const claims: Record<string, unknown> = {};
  for (const name of CLIENT_CLAIMS) if (client[name] !== undefined) claims[name] = client[name];
  return claims;
}

/** Resource scopes: the defaults plus every scope some user holds (OpenID Connect scopes excluded). */
export function resourceScopesOf(users: readonly ResolvedDevUser[]): string[] {
  const scopes = new Set(DEFAULT_RESOURCE_SCOPES);
  for (const user of users) for (const scope of user.scopes) scopes.add(scope);
  for (const scope of OIDC_SCOPES) scopes.delete(scope);
  return [...scopes];
}

/**
 * Grants what the dev IdP consents to on the user's behalf: every requested OpenID Connect scope, and of the
 * requested resource scopes those the user holds, for each requested resource. Scopes the user lacks are
 * recorded as rejected, so oidc-provider does not ask for consent and simply leaves them out of the token.
 */
export function applyAutoGrant(
  grant: Grant,
  user: ResolvedDevUser | undefined,
  requested: Iterable<string>,
  resources: readonly string[],
  resourceScopes: ReadonlySet<string>,
): void {
  const held = new Set(user?.scopes ?? []);
  const oidc = new Set(OIDC_SCOPES);
  for (const scope of requested) {
    if (scope === '') continue;
    if (oidc.has(scope) || (resourceScopes.has(scope) && held.has(scope))) grant.addOIDCScope(scope);
    else if (resourceScopes.has(scope)) grant.rejectOIDCScope(scope);
    if (!resourceScopes.has(scope)) continue;
    for (const resource of resources) {
      if (held.has(scope)) grant.addResourceScope(resource, scope);
      else grant.rejectResourceScope(resource, scope);
    }
  }
}

function stringListValid(value: unknown): boolean {
  return Array.isArray(value) && value.every((item) => typeof item === 'string' && item !== '');
}

function originOf(uri: unknown): string | undefined {
  return typeof uri === 'string' ? URL.parse(uri)?.origin : undefined;
}

function deviceMessage(err: unknown): string {
  if (err === undefined) return 'Enter the code shown on your device.';
  const named = err as { name?: unknown; userCode?: unknown };
  if (named.userCode !== undefined || named.name === 'NoCodeError')
    return 'The code you entered is incorrect. Try again.';
  if (named.name === 'AbortedError') return 'The sign-in request was interrupted.';
  return 'There was an error processing your request.';
}

/**
 * The oidc-provider configuration of the dev IdP. Every default that would print a "you SHOULD change"
 * notice is replaced: oidc-provider prints those on stdout, which an MCP stdio server cannot afford.
 */
export function createConfiguration(input: ConfigurationInput): Configuration {
  const { users, accessTokenTtlSeconds: accessTtl, refreshTokenTtlSeconds: refreshTtl } = input;
  const resourceScopes = resourceScopesOf(users.users);
  const resourceScopeSet = new Set(resourceScopes);

  const policy = interactionPolicy.base();
  // Native clients would otherwise always get a consent prompt; this IdP consents automatically.
  policy.get('consent')?.checks.remove('native_client_prompt');

  const getResourceServerInfo = (_ctx: KoaContextWithOIDC, resource: string): ResourceServer => {
    if (!input.allowResource(resource)) {
      throw new errors.InvalidTarget(`resource ${resource} is not accepted by this development IdP`);
    }
    return {
      scope: resourceScopes.join(' '),
      audience: resource,
      accessTokenTTL: accessTtl,
      ...(input.accessTokenFormat === 'jwt'
        ? { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } }
        : { accessTokenFormat: 'opaque' }),
    };
  };

  return {
    adapter: input.store.factory,
    clients: input.clients.map((client) => ({ ...client, client_id: String(client.client_id) })),
    jwks: input.jwks,
    cookies: { keys: input.cookieKeys },
    scopes: [...OIDC_SCOPES, ...resourceScopes],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    responseTypes: ['code'],
    pkce: { required: () => true },
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      id_token_signed_response_alg: hasRsaKey(input.jwks) ? 'RS256' : 'ES256',
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    extraClientMetadata: {
      properties: [...CLIENT_CLAIMS],
      validator(ctx, key, value) {
        if (value === undefined) return;
        // ctx is set for registration requests only: a dynamically registered client must not choose its tenant.
        if (ctx) throw new errors.InvalidClientMetadata(`${key} can only be set on the IdP's static clients`);
        if (
          key === 'tenant_id' ? typeof value !== 'string' || !TENANT_ID.test(value) : !stringListValid(value)
        ) {
          throw new errors.InvalidClientMetadata(
            key === 'tenant_id'
              ? `tenant_id must match ${TENANT_ID.source}`
              : `${key} must be an array of strings`,
          );
        }
      },
    },
    async findAccount(_ctx, sub): Promise<Account | undefined> {
      const user = users.bySub(sub);
      if (!user) return undefined;
      return {
        accountId: user.sub,
        claims: () => ({
          sub: user.sub,
          email: user.email,
          email_verified: true,
          ...(user.name === undefined ? {} : { name: user.name }),
        }),
      };
    },
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const { client, account } = oidc;
      if (!client || !account) return undefined;
      const grantId = oidc.result?.consent?.grantId ?? oidc.session?.grantIdFor(client.clientId);
      const existing = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      const grant =
        existing && existing.accountId === account.accountId && existing.clientId === client.clientId
          ? existing
          : new oidc.provider.Grant({ accountId: account.accountId, clientId: client.clientId });
      applyAutoGrant(
        grant,
        users.bySub(account.accountId),
        oidc.requestParamScopes,
        Object.keys(oidc.resourceServers ?? {}),
        resourceScopeSet,
      );
      await grant.save();
      return grant;
    },
    async extraTokenClaims(ctx, token) {
      if (token.kind === 'ClientCredentials') return clientTokenClaims(ctx.oidc.client);
      const user = users.bySub(token.accountId);
      return user ? userTokenClaims(user) : undefined;
    },
    // Refresh tokens go to every client allowed the refresh_token grant, with or without offline_access:
    // MCP clients expect to refresh, and most of them never ask for offline_access.
    issueRefreshToken: (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Tokens live for their own TTL; signing out of the IdP's browser session does not revoke them.
    expiresWithSession: () => false,
    clientBasedCORS(_ctx, origin, client) {
      const url = URL.parse(origin);
      if (url && isLoopbackHost(url.hostname)) return true;
      const redirects = Array.isArray(client.redirectUris) ? client.redirectUris : [];
      return redirects.some((uri) => originOf(uri) === origin);
    },
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? accessTtl,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? accessTtl,
      AuthorizationCode: 60,
      DeviceCode: 600,
      BackchannelAuthenticationRequest: 600,
      PreAuthorizedCode: 600,
      IdToken: 3600,
      Interaction: 3600,
      Session: 24 * 3600,
      RefreshToken: refreshTtl,
      // A grant must outlive every refresh token issued under it, rotations included.
      Grant: Math.max(30 * 24 * 3600, 2 * refreshTtl),
    },
    interactions: { policy, url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      registration: { enabled: true },
      introspection: {
        enabled: true,
        // A public client may introspect only its own tokens; an authenticated client any token.
        allowedPolicy: (ctx, client, token) =>
          !(client.clientAuthMethod === 'none' && token.clientId !== ctx.oidc.client?.clientId),
      },
      revocation: {
        enabled: true,
        allowedPolicy: (_ctx, client, token) => token.clientId === client.clientId,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx, _client, oneOf) => (oneOf?.length === 1 ? oneOf[0] : oneOf),
        useGrantedResource: () => true,
        getResourceServerInfo,
      },
      deviceFlow: {
        enabled: true,
        userCodeInputSource(ctx, form, _out, err) {
          ctx.body = page(
            'Device sign-in',
            `<h1>Device sign-in</h1>\n<p>${escapeHtml(deviceMessage(err))}</p>\n${form}\n<button type="submit" form="op.deviceInputForm">Continue</button>`,
          );
        },
        userCodeConfirmSource(ctx, form, client, _deviceInfo, userCode) {
          const name = typeof client.clientName === 'string' ? client.clientName : client.clientId;
          ctx.body = page(
            'Confirm device',
            `<h1>Confirm device</h1>\n<p>${escapeHtml(name)} is asking to sign in. The code on the device should read:</p>\n<p><code>${escapeHtml(userCode)}</code></p>\n${form}\n<button type="submit" form="op.deviceConfirmForm">Continue</button>`,
          );
        },
        successSource(ctx) {
          ctx.body = page(
            'Signed in',
            '<h1>Signed in</h1>\n<p>You can close this page and return to your device.</p>',
          );
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource(ctx, form) {
          ctx.body = page(
            'Sign out',
            `<h1>Sign out of the development IdP?</h1>\n${form}\n<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>\n<button type="submit" form="op.logoutForm">Stay signed in</button>`,
          );
        },
        postLogoutSuccessSource(ctx) {
          ctx.body = page('Signed out', '<h1>Signed out</h1>\n<p>You have been signed out.</p>');
        },
      },
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      const lines = Object.entries(out)
        .filter(([, value]) => value !== undefined)
        .map(([key, value]) => `<p><strong>${escapeHtml(key)}</strong>: ${escapeHtml(value)}</p>`)
        .join('\n');
      ctx.body = page('Error', `<h1>Something went wrong</h1>\n${lines}`);
    },
  };
}

/** A fresh random cookie signing key (cookies are signed with keys that live as long as the process). */
export function randomCookieKey(): string {
  return randomBytes(32).toString('base64url');
}
