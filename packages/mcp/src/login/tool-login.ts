import { join } from 'node:path';
import {
  type AuthSec,
  AuthSecError,
  type Clock,
  generateCodeVerifier,
  generateNonce,
  isAuthSecError,
  isLoopbackHost,
  type Logger,
  type MasterKeyRing,
  type OAuthClient,
  type Principal,
  type SessionStore,
  type SessionTokens,
  type TokenSet,
  toAuthSecError,
} from '@authsec/core';
import type { LoginCallbackRoute } from '../endpoint.js';

export type { LoginCallbackRoute };

import type { AuthSecTool, JsonSchemaObject, LoginProvider, ToolResult } from '../types.js';
import { toUserInfo } from '../user-info.js';
import {
  type CallbackPage,
  type CallbackServer,
  createCallbackHandler,
  createCallbackServer,
} from './callback-server.js';
import { createLoginHandoff, type LoginHandoff } from './handoff.js';
import { createChangeListeners } from './listeners.js';
import { createRememberedLogin, type RememberedLogin } from './remember.js';
import { createSessionIdBinding, type SessionIdBinding } from './session-binding.js';
import { defineLoginTool, jsonResult, type LoginToolSpec } from './tool-results.js';

/** Where the authorization code flow's loopback listener (RFC 8252) listens. */
export interface ToolLoginCallbackOptions {
  /** Loopback address. Default `'127.0.0.1'` (the redirect URI then is `http://127.0.0.1:<port><path>`). */
  readonly host?: '127.0.0.1' | '::1';
  /**
   * Port. Default `0`: a free port per process, which providers that follow RFC 8252 accept for a native
   * client's loopback redirect URI. Set a fixed port for providers that compare ports.
   */
  readonly port?: number;
  /** Path of the redirect URI. Default `'/callback'`. */
  readonly path?: string;
  /**
   * The redirect URI when the application's own HTTP server serves the callback (pass the login's
   * {@link ToolLogin.callbackRoute} as `loginCallback` to an HTTP adapter): no listener is started and
   * `host`, `port` and `path` must not be set. `https`, or `http` on a loopback host (OAuth 2.1).
   */
  readonly redirectUri?: string;
}

/** The tool-based login: a {@link LoginProvider} for `createAuthSecServer`, and its callback route. */
export interface ToolLogin extends LoginProvider {
  /** Set with `callback.redirectUri`: the route the application serves. `undefined` with the loopback listener. */
  readonly callbackRoute: LoginCallbackRoute | undefined;
}

/** Remembering the login for the local OS user (stdio). */
export interface ToolLoginRememberOptions {
  /** The file (in the data folder), created mode 0600 in a directory created 0700. */
  readonly file: string;
  /** The master key ring that seals it (purpose `remembered-login`). */
  readonly masterKey: MasterKeyRing;
}

/** Options of {@link createToolLogin}. */
export interface ToolLoginOptions<M = unknown> {
  /** The engine: verifies every token (signature, issuer, audience, expiry) and lists accessible tools. */
  readonly authsec: AuthSec<M>;
  /**
   * The OAuth client (its `resource` must be the audience the engine accepts), or a function creating it on
   * first use (discovery then happens at the first `oauth_start`, and a failure is retried on the next).
   */
  readonly oauth: OAuthClient | (() => Promise<OAuthClient>);
  /** Where login sessions live (the Postgres store keeps them across restarts). */
  readonly sessions: SessionStore;
  /**
   * `'code'` (default): authorization code + PKCE with the loopback callback. `'device'`: the device
   * authorization grant (RFC 8628), for machines without a browser. `'auto'`: the device flow when the provider
   * offers it and this machine looks headless (an SSH session, or Linux without a display) or has no
   * authorization endpoint; else the code flow.
   */
  readonly flow?: 'code' | 'device' | 'auto';
  /** The loopback callback listener, started on the first code-flow `oauth_start`. */
  readonly callback?: ToolLoginCallbackOptions;
  /**
   * Remember the login for the local OS user, so a restarted stdio server is still logged in. Default: off.
   * **stdio only**: every new connection of this process resumes the remembered login, which is right when the
   * process serves one local user and wrong when connections come from different people (HTTP).
   */
  readonly remember?: ToolLoginRememberOptions | false;
  /**
   * Cross-process login for stdio (clients that start a new server process per call, as the MCP Inspector CLI
   * does): the code flow's loopback callback is served by a detached helper of this data folder that outlives
   * the process, and any process on the folder finishes a login whose `session_id` it is given. Every
   * `session_id` is then bound to the folder by an HMAC under a 0600 key file there: one from another folder
   * or OS user is refused (`PERMISSION_DENIED`, `reason: 'session_binding'`). Excludes `callback`. Default: off.
   */
  readonly handoff?: { readonly dataDir: string } | false;
  /**
   * Refresh an access token this long before it expires, ms (at most half its lifetime). Default 30000. With a
   * refresh token, a login stays alive (refreshed in the background) until the session's own lifetime ends.
   */
  readonly refreshBeforeExpiryMs?: number;
  /**
   * How long tokens read from the session store are reused before reading them again, ms. Default 5000. A
   * logout in another process sharing the store is noticed within this time (the next token check).
   */
  readonly recheckIntervalMs?: number;
  /** Milliseconds since the epoch. Default: the engine's clock. */
  readonly clock?: Clock;
  /** Default: the engine's logger. Never receives a token. */
  readonly logger?: Logger;
}

/** A login attached to a connection. */
interface Attached {
  readonly sessionId: string;
  readonly subject: string;
  readonly tenantId: string;
  /** When the session itself ends (the store's lifetime), ms. */
  readonly sessionExpiresAt: number;
  tokens: SessionTokens | undefined;
  loadedAt: number;
  timer: NodeJS.Timeout | undefined;
  /** What the timer was set for (a check that changes nothing does not reset it). */
  timerAt: number;
}

type EndedStatus = 'expired' | 'logged_out';

interface ConnectionState {
  attached: Attached | undefined;
  inflight: Promise<Principal | undefined> | undefined;
  /** The last login of this connection that ended, for `oauth_status`. */
  ended: { sessionId: string; status: EndedStatus } | undefined;
  /** Logins this connection started and that are not finished, newest last. */
  readonly pending: string[];
  rememberChecked: boolean;
}

interface PendingLogin {
  readonly connectionId: string;
  readonly state: string;
  readonly expiresAt: number;
  readonly abort: AbortController | undefined;
}

interface Failure {
  readonly code: string;
  readonly message: string;
}

type Status = 'ready_for_authentication' | 'authenticated' | 'expired' | 'not_found' | 'logged_out';

const SESSION_ID_MAX = 256;
const JWT_MAX = 16_384;
const MAX_FAILURES = 100;
const MAX_TIMER_MS = 2_147_000_000;
const RETRY_MS = 30_000;
const DEVICE_REDIRECT = 'urn:ietf:params:oauth:grant-type:device_code';
const PASTED_REDIRECT = 'urn:authsec:pasted-token';
/** How often a process with a pending handed-off login looks for its callback, ms. */
const HANDOFF_POLL_MS = 250;

/** True when this machine probably cannot open a browser (for `flow: 'auto'`). */
function looksHeadless(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform) {
  if (env.SSH_CONNECTION || env.SSH_TTY) return true;
  return platform === 'linux' && !env.DISPLAY && !env.WAYLAND_DISPLAY;
}

function checkOptions<M>(options: ToolLoginOptions<M>) {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('createToolLogin: options object required');
  if (typeof options.authsec?.authenticate !== 'function') {
    throw new TypeError('createToolLogin: authsec must be an engine from createAuthSec()');
  }
  if (typeof options.sessions?.createPending !== 'function') {
    throw new TypeError('createToolLogin: sessions must be a SessionStore');
  }
  if (typeof options.oauth !== 'function' && typeof options.oauth?.authorizationRequest !== 'function') {
    throw new TypeError('createToolLogin: oauth must be an OAuthClient or a function returning one');
  }
  const flow = options.flow ?? 'code';
  if (flow !== 'code' && flow !== 'device' && flow !== 'auto') {
    throw new TypeError("createToolLogin: flow must be 'code', 'device' or 'auto'");
  }
  const redirectUri = options.callback?.redirectUri;
  if (redirectUri !== undefined) {
    const { host: h, port: p, path: q } = options.callback ?? {};
    if (h !== undefined || p !== undefined || q !== undefined)
      throw new TypeError('createToolLogin: callback.redirectUri excludes callback.host, port and path');
    let url: URL;
    try {
      url = new URL(redirectUri);
    } catch {
      throw new TypeError('createToolLogin: callback.redirectUri must be an absolute URL');
    }
    // `hostname` keeps IPv6 brackets (`[::1]`), which isLoopbackHost accepts.
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname)))
      throw new TypeError('createToolLogin: callback.redirectUri must be https, or http on a loopback host');
    if (url.hash !== '' || url.search !== '' || url.username !== '' || url.password !== '')
      throw new TypeError(
        'createToolLogin: callback.redirectUri must have no query, fragment or credentials',
      );
  }
  const host = options.callback?.host ?? '127.0.0.1';
  if (host !== '127.0.0.1' && host !== '::1') {
    throw new TypeError("createToolLogin: callback.host must be a loopback address ('127.0.0.1' or '::1')");
  }
  const port = options.callback?.port ?? 0;
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) {
    throw new TypeError('createToolLogin: callback.port must be an integer from 0 to 65535');
  }
  const path = options.callback?.path ?? '/callback';
  if (typeof path !== 'string' || !/^\/[A-Za-z0-9._~/-]*$/.test(path)) {
    throw new TypeError('createToolLogin: callback.path must be an absolute path');
  }
  const remember = options.remember === undefined ? false : options.remember;
  if (
    remember !== false &&
    (typeof remember?.file !== 'string' || remember.file === '' || !remember.masterKey)
  ) {
    throw new TypeError('createToolLogin: remember needs { file, masterKey }, or false');
  }
  const margin = options.refreshBeforeExpiryMs ?? 30_000;
  if (!Number.isSafeInteger(margin) || margin < 0) {
    throw new TypeError('createToolLogin: refreshBeforeExpiryMs must be an integer >= 0');
  }
  const recheck = options.recheckIntervalMs ?? 5_000;
  if (!Number.isSafeInteger(recheck) || recheck < 0) {
    throw new TypeError('createToolLogin: recheckIntervalMs must be an integer >= 0');
  }
  const handoff = options.handoff === undefined ? false : options.handoff;
  if (handoff !== false) {
    if (typeof handoff?.dataDir !== 'string' || handoff.dataDir === '')
      throw new TypeError('createToolLogin: handoff needs { dataDir }, or false');
    if (options.callback !== undefined)
      throw new TypeError('createToolLogin: handoff excludes callback (the helper serves the callback)');
  }
  return { flow, host, port, path, redirectUri, remember, margin, recheck, handoff } as const;
}

/**
 * The brief's tool-based login (`oauth_start`, `oauth_authenticate`, `oauth_status`, `oauth_logout`,
 * `oauth_user_info`) as a {@link LoginProvider} for `createAuthSecServer`.
 *
 * - A login belongs to the connection that started it: the pending session is bound to the connection id, the
 *   callback attaches the session to that connection only, and a connection without an attached session is
 *   unauthenticated (there is no "latest login" fallback). Presenting a `session_id` (a 256-bit secret handed
 *   only to the connection that started the login) to `oauth_status` or `oauth_authenticate` attaches that
 *   session to the presenting connection.
 * - Every token is verified by the engine (signature, issuer, audience = this server, expiry), including a
 *   token pasted into `oauth_authenticate`. Tokens live sealed in the session store and never appear in a
 *   result, a page or a log line.
 * - `principalFor` re-verifies on every call (the engine's verified-token cache makes that microseconds),
 *   refreshes near expiry, and ends the login when it expired without a usable refresh token. A timer at the
 *   token's expiry does the same without a request, so expiry hides the tools and fires `onChange`.
 * - Tool results are JSON (text and `structuredContent`); status answers are plain results, failures
 *   `isError` results `{ status: 'error', error: <code>, message }`.
 *
 * Misuse of the options is a `TypeError`, thrown here.
 */
export function createToolLogin<M = unknown>(options: ToolLoginOptions<M>): ToolLogin {
  const config = checkOptions(options);
  const { authsec, sessions } = options;
  const clock = options.clock ?? authsec.clock;
  const logger = options.logger ?? authsec.logger;
  const remembered: RememberedLogin | undefined =
    config.remember === false
      ? undefined
      : createRememberedLogin(config.remember.file, config.remember.masterKey, logger);

  const handoff: LoginHandoff | undefined =
    config.handoff === false ? undefined : createLoginHandoff({ dataDir: config.handoff.dataDir });
  const binding: SessionIdBinding | undefined =
    config.handoff === false
      ? undefined
      : createSessionIdBinding(join(config.handoff.dataDir, 'login-callback', 'session-id.key'));
  /** The `session_id` a client sees, and the store's id of one it presents (refused when foreign). */
  const publicId = (sessionId: string): string => (binding ? binding.wrap(sessionId) : sessionId);
  const storeId = (presented: string): string => (binding ? binding.unwrap(presented) : presented);

  const connections = new Map<string, ConnectionState>();
  const pendingLogins = new Map<string, PendingLogin>();
  const sessionByState = new Map<string, string>();
  const failures = new Map<string, Failure>();
  const refreshing = new Map<string, Promise<SessionTokens | undefined>>();
  const listeners = createChangeListeners(logger);
  let closed = false;

  // ------------------------------------------------------------------------------------------------------
  // The OAuth client, created once (a failed creation is retried by the next caller).
  let oauthPromise: Promise<OAuthClient> | undefined;
  const getOAuth = (): Promise<OAuthClient> => {
    const source = options.oauth;
    if (typeof source !== 'function') return Promise.resolve(source);
    oauthPromise ??= source().catch((error: unknown) => {
      oauthPromise = undefined;
      throw error;
    });
    return oauthPromise;
  };

  const stateOf = (connectionId: string): ConnectionState => {
    let state = connections.get(connectionId);
    if (!state) {
      state = {
        attached: undefined,
        inflight: undefined,
        ended: undefined,
        pending: [],
        rememberChecked: false,
      };
      connections.set(connectionId, state);
    }
    return state;
  };

  const fire = (connectionId: string): void => listeners.fire(connectionId);

  const recordFailure = (sessionId: string, error: unknown): void => {
    const err = toAuthSecError(error);
    failures.set(sessionId, {
      code: err.code,
      message: err.expose ? err.message : 'The server could not complete the login',
    });
    if (failures.size > MAX_FAILURES) failures.delete(failures.keys().next().value as string);
  };

  const forgetPending = (sessionId: string): PendingLogin | undefined => {
    const pending = pendingLogins.get(sessionId);
    if (!pending) return undefined;
    pendingLogins.delete(sessionId);
    sessionByState.delete(pending.state);
    const list = connections.get(pending.connectionId)?.pending;
    const index = list?.indexOf(sessionId) ?? -1;
    if (list && index >= 0) list.splice(index, 1);
    return pending;
  };

  /** Drops abandoned logins of a connection that have expired (the store has expired them too). */
  const prunePending = (state: ConnectionState): void => {
    const now = clock();
    for (const sessionId of [...state.pending]) {
      const pending = pendingLogins.get(sessionId);
      if (pending === undefined || pending.expiresAt <= now) {
        forgetPending(sessionId)?.abort?.abort();
        const index = state.pending.indexOf(sessionId);
        if (index >= 0) state.pending.splice(index, 1);
      }
    }
  };

  const endPendingQuietly = (sessionId: string): void => {
    sessions.logout(sessionId).catch((error: unknown) => {
      logger.warn('Could not end an abandoned login', { code: toAuthSecError(error).code });
    });
  };

  // ------------------------------------------------------------------------------------------------------
  // Attaching, detaching and checking logins.

  const clearTimer = (attached: Attached | undefined): void => {
    if (attached?.timer) clearTimeout(attached.timer);
    if (attached) attached.timer = undefined;
  };

  /** Ends the login of a connection: detaches it, remembers why, forgets the remembered file, notifies. */
  const end = (connectionId: string, status: EndedStatus, notify = true): void => {
    const state = connections.get(connectionId);
    const attached = state?.attached;
    if (!state || !attached) return;
    clearTimer(attached);
    state.attached = undefined;
    state.ended = { sessionId: attached.sessionId, status };
    void remembered?.forget(attached.sessionId);
    if (notify) fire(connectionId);
  };

  const schedule = (connectionId: string, attached: Attached): void => {
    if (closed || !attached.tokens) {
      clearTimer(attached);
      return;
    }
    const now = clock();
    const { expiresAt, refreshToken } = attached.tokens;
    const early = expiresAt - config.margin;
    let at = refreshToken !== undefined && early > now ? early : expiresAt;
    at = Math.min(at, attached.sessionExpiresAt);
    if (attached.timer && attached.timerAt === at) return;
    clearTimer(attached);
    attached.timerAt = at;
    const delay = Math.min(Math.max(at - now + 50, 1000), MAX_TIMER_MS);
    attached.timer = setTimeout(() => {
      attached.timer = undefined;
      if (connections.get(connectionId)?.attached !== attached) return;
      principalFor(connectionId).catch((error: unknown) => {
        logger.warn('Could not check a login at its expiry; retrying', { code: toAuthSecError(error).code });
        if (connections.get(connectionId)?.attached === attached && !closed) {
          attached.timer = setTimeout(() => schedule(connectionId, attached), RETRY_MS);
          attached.timer.unref();
        }
      });
    }, delay);
    attached.timer.unref();
  };

  /** Attaches an authenticated session to a connection (replacing any other). */
  const attach = async (
    connectionId: string,
    sessionId: string,
    tokens?: SessionTokens,
  ): Promise<Attached | undefined> => {
    const record = await sessions.get(sessionId);
    if (record?.status !== 'authenticated' || record.subject === undefined || record.tenantId === undefined) {
      return undefined;
    }
    const state = stateOf(connectionId);
    if (state.attached?.sessionId === sessionId) return state.attached;
    clearTimer(state.attached);
    const attached: Attached = {
      sessionId,
      subject: record.subject,
      tenantId: record.tenantId,
      sessionExpiresAt: record.expiresAt,
      tokens,
      loadedAt: tokens ? clock() : 0,
      timer: undefined,
      timerAt: 0,
    };
    state.attached = attached;
    state.ended = undefined;
    return attached;
  };

  /** Refreshes once per session at a time (a rotated refresh token must not be used twice). */
  const refreshSession = (attached: Attached, current: SessionTokens): Promise<SessionTokens | undefined> => {
    let running = refreshing.get(attached.sessionId);
    if (!running) {
      running = doRefresh(attached, current).finally(() => refreshing.delete(attached.sessionId));
      refreshing.set(attached.sessionId, running);
    }
    return running;
  };

  const doRefresh = async (
    attached: Attached,
    current: SessionTokens,
  ): Promise<SessionTokens | undefined> => {
    const oauth = await getOAuth();
    let fresh: TokenSet;
    try {
      fresh = await oauth.refresh(current.refreshToken!);
    } catch (error) {
      if (isAuthSecError(error) && error.code === 'SERVICE_UNAVAILABLE') throw error;
      // Another process sharing this session may have refreshed (and rotated the token) first.
      const stored = await sessions.tokens(attached.sessionId);
      if (stored && stored.refreshToken !== current.refreshToken && stored.expiresAt > clock()) return stored;
      logger.info('A login could not be refreshed; it ended', { code: toAuthSecError(error).code });
      return undefined;
    }
    const principal = await authsec.authenticate(fresh.accessToken);
    if (principal.subject !== attached.subject || principal.tenantId !== attached.tenantId) {
      logger.warn('A refreshed token names another user; the login ended', {});
      return undefined;
    }
    const expiresAt = Math.min(fresh.expiresAt, principal.expiresAt * 1000);
    await sessions.updateTokens(attached.sessionId, {
      accessToken: fresh.accessToken,
      ...(fresh.refreshToken === undefined ? {} : { refreshToken: fresh.refreshToken }),
      ...(fresh.idToken === undefined ? {} : { idToken: fresh.idToken }),
      expiresAt,
    });
    return {
      accessToken: fresh.accessToken,
      refreshToken: fresh.refreshToken ?? current.refreshToken,
      idToken: fresh.idToken ?? current.idToken,
      expiresAt,
    };
  };

  /**
   * Who an audit record of a session's end names: the session's subject and tenant, which route the record to
   * the tenant's audit log. Its token may be expired or gone, so nothing else of it is vouched for: no claims,
   * and no issuer (the session store does not keep one).
   */
  const sessionPrincipal = (attached: Attached): Principal =>
    Object.freeze({
      subject: attached.subject,
      email: undefined,
      tenantId: attached.tenantId,
      clientId: undefined,
      issuer: '',
      roles: [],
      groups: [],
      scopes: [],
      resources: [],
      permissions: [],
      expiresAt: Math.floor((attached.tokens?.expiresAt ?? attached.sessionExpiresAt) / 1000),
      claims: {},
    });

  /** Ends a session for good in the store (dead tokens are erased), then detaches it here. */
  const expireSession = async (connectionId: string, attached: Attached): Promise<undefined> => {
    await sessions.logout(attached.sessionId).catch(() => false);
    authsec.audit({
      action: 'logout',
      decision: 'allow',
      principal: sessionPrincipal(attached),
      target: 'expired',
      reason: 'TOKEN_EXPIRED',
    });
    end(connectionId, 'expired');
    return undefined;
  };

  const check = async (connectionId: string, attached: Attached): Promise<Principal | undefined> => {
    const now = clock();
    let tokens = attached.tokens;
    if (!tokens || now - attached.loadedAt >= config.recheck) {
      tokens = await sessions.tokens(attached.sessionId);
      if (connections.get(connectionId)?.attached !== attached) return undefined;
      if (!tokens) {
        const record = await sessions.get(attached.sessionId);
        end(connectionId, record?.status === 'logged_out' ? 'logged_out' : 'expired');
        return undefined;
      }
      attached.tokens = tokens;
      attached.loadedAt = now;
    }
    const due = tokens.refreshToken !== undefined ? tokens.expiresAt - config.margin : tokens.expiresAt;
    let principal: Principal | undefined;
    if (now < due) {
      try {
        principal = await authsec.authenticate(tokens.accessToken);
      } catch (error) {
        const err = toAuthSecError(error);
        if (err.code === 'SERVICE_UNAVAILABLE' || err.code === 'INTERNAL') throw err;
        if (err.code !== 'TOKEN_EXPIRED' || tokens.refreshToken === undefined) {
          logger.info('A login is no longer accepted; it ended', { code: err.code });
          return expireSession(connectionId, attached);
        }
      }
    }
    if (!principal) {
      if (tokens.refreshToken === undefined) return expireSession(connectionId, attached);
      let next: SessionTokens | undefined;
      try {
        next = await refreshSession(attached, tokens);
      } catch (error) {
        const err = toAuthSecError(error);
        // The provider is down: while the current token is still valid, keep using it.
        if (err.code === 'SERVICE_UNAVAILABLE' && tokens.expiresAt > clock()) {
          principal = await authsec.authenticate(tokens.accessToken);
          schedule(connectionId, attached);
          return principal;
        }
        if (err.code === 'SERVICE_UNAVAILABLE' || err.code === 'INTERNAL') throw err;
        next = undefined;
      }
      if (connections.get(connectionId)?.attached !== attached) return undefined;
      if (!next) return expireSession(connectionId, attached);
      attached.tokens = next;
      attached.loadedAt = clock();
      try {
        principal = await authsec.authenticate(next.accessToken);
      } catch (error) {
        const err = toAuthSecError(error);
        if (err.code === 'SERVICE_UNAVAILABLE' || err.code === 'INTERNAL') throw err;
        return expireSession(connectionId, attached);
      }
    }
    if (principal.subject !== attached.subject || principal.tenantId !== attached.tenantId) {
      return expireSession(connectionId, attached);
    }
    schedule(connectionId, attached);
    return principal;
  };

  /** Resumes the remembered login on a connection's first question (stdio: a restarted server). */
  const restoreRemembered = async (connectionId: string, state: ConnectionState): Promise<void> => {
    if (!remembered || state.rememberChecked) return;
    const sessionId = await remembered.read();
    if (sessionId !== undefined) {
      const attached = await attach(connectionId, sessionId);
      if (!attached) await remembered.forget(sessionId);
      else logger.info('Resumed the remembered login', {});
    }
    state.rememberChecked = true;
  };

  const principalFor = async (connectionId: string): Promise<Principal | undefined> => {
    if (closed) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The login is closed');
    const state = stateOf(connectionId);
    if (state.inflight) return state.inflight;
    const run = async (): Promise<Principal | undefined> => {
      if (!state.attached && !state.rememberChecked && state.ended === undefined) {
        await restoreRemembered(connectionId, state);
      }
      const attached = state.attached;
      return attached ? check(connectionId, attached) : undefined;
    };
    state.inflight = run().finally(() => {
      state.inflight = undefined;
    });
    return state.inflight;
  };

  // ------------------------------------------------------------------------------------------------------
  // Completing a login (callback, device flow, pasted token).

  const completeLogin = async (
    sessionId: string,
    connectionId: string | undefined,
    tokens: Pick<TokenSet, 'accessToken' | 'refreshToken' | 'idToken' | 'expiresAt'>,
    target: string,
  ): Promise<Principal> => {
    const principal = await authsec.authenticate(tokens.accessToken);
    const expiresAt = Math.min(tokens.expiresAt, principal.expiresAt * 1000);
    await sessions.authenticate(sessionId, {
      subject: principal.subject,
      issuer: principal.issuer,
      tenantId: principal.tenantId,
      accessToken: tokens.accessToken,
      ...(tokens.refreshToken === undefined ? {} : { refreshToken: tokens.refreshToken }),
      ...(tokens.idToken === undefined ? {} : { idToken: tokens.idToken }),
      expiresAt,
    });
    authsec.audit({ action: 'login', decision: 'allow', principal, target });
    if (connectionId !== undefined && connections.has(connectionId) && !closed) {
      const attached = await attach(connectionId, sessionId, {
        accessToken: tokens.accessToken,
        refreshToken: tokens.refreshToken,
        idToken: tokens.idToken,
        expiresAt,
      });
      if (attached) {
        schedule(connectionId, attached);
        await remembered?.write(sessionId).catch((error: unknown) => {
          logger.warn('Could not remember the login', { cause: String(error) });
        });
        fire(connectionId);
      }
    }
    return principal;
  };

  const failLogin = (sessionId: string, error: unknown, target: string): void => {
    recordFailure(sessionId, error);
    endPendingQuietly(sessionId);
    const err = toAuthSecError(error);
    authsec.audit({
      action: 'login',
      decision: err.status >= 500 ? 'error' : 'deny',
      target,
      reason: err.code,
    });
    logger.info('A login failed', { code: err.code });
  };

  const handleCallback = async (url: URL): Promise<CallbackPage> => {
    const state = url.searchParams.get('state') ?? '';
    const sessionId = sessionByState.get(state);
    if (sessionId === undefined || closed) {
      return {
        status: 400,
        title: 'Login not recognised',
        message: 'This login is unknown, already finished or expired. Start again with oauth_start.',
      };
    }
    const pending = forgetPending(sessionId)!;
    return finishCallback(sessionId, url.searchParams, pending.connectionId);
  };

  /** Finishes a code-flow login from its callback's query, for `connectionId` (never throws). */
  const finishCallback = async (
    sessionId: string,
    params: URLSearchParams,
    connectionId: string,
  ): Promise<CallbackPage> => {
    const state = params.get('state') ?? '';
    let consumed: Awaited<ReturnType<SessionStore['consumePending']>>;
    try {
      consumed = await sessions.consumePending(state);
    } catch (error) {
      recordFailure(sessionId, error);
      const err = toAuthSecError(error);
      return err.code === 'NOT_FOUND'
        ? {
            status: 400,
            title: 'Login expired',
            message: 'This login has expired. Start again with oauth_start.',
          }
        : {
            status: 503,
            title: 'Login failed',
            message: 'The server is temporarily unavailable; try again.',
          };
    }
    if (consumed.sessionId !== sessionId) {
      recordFailure(sessionId, new AuthSecError('BAD_REQUEST', 'The callback belongs to another login'));
      return { status: 400, title: 'Login failed', message: 'This callback belongs to another login.' };
    }
    try {
      const oauth = await getOAuth();
      const tokens = await oauth.exchangeCode({
        params,
        state,
        codeVerifier: consumed.pending.codeVerifier,
        nonce: consumed.pending.nonce,
        redirectUri: consumed.pending.redirectUri,
      });
      const principal = await completeLogin(sessionId, connectionId, tokens, 'oauth_callback');
      return {
        status: 200,
        title: 'Login complete',
        message: `You are logged in${principal.email ? ` as ${principal.email}` : ''}. You can close this page and return to your application.`,
      };
    } catch (error) {
      failLogin(sessionId, error, 'oauth_callback');
      const err = toAuthSecError(error);
      return {
        status: err.status >= 500 ? 502 : 400,
        title: 'Login failed',
        message: `${err.expose ? err.message : 'The server could not complete the login'}. Start again with oauth_start.`,
      };
    }
  };

  /**
   * With the handoff, the helper receives this process's callbacks: while a code-flow login it started is
   * pending, look for its callback (another process may take it first, and finish the login there).
   */
  let handoffTimer: NodeJS.Timeout | undefined;
  const watchHandoff = (): void => {
    if (handoff === undefined || handoffTimer !== undefined || closed) return;
    handoffTimer = setInterval(() => {
      let waiting = false;
      for (const [sessionId, pending] of [...pendingLogins]) {
        if (pending.abort !== undefined) continue;
        waiting = true;
        const params = handoff.claim(sessionId);
        if (params === undefined) continue;
        forgetPending(sessionId);
        void finishCallback(sessionId, params, pending.connectionId);
      }
      if (!waiting || closed) {
        clearInterval(handoffTimer);
        handoffTimer = undefined;
      }
    }, HANDOFF_POLL_MS);
    handoffTimer.unref();
  };

  // The redirect URI's route: on the application's server (`redirectUri`), or on a loopback listener of ours.
  const external = config.redirectUri === undefined ? undefined : new URL(config.redirectUri);
  const callbackServer: CallbackServer =
    external === undefined
      ? createCallbackServer({
          host: config.host,
          port: config.port,
          path: config.path,
          handle: handleCallback,
          logger,
        })
      : {
          start: () =>
            closed
              ? Promise.reject(new AuthSecError('SERVICE_UNAVAILABLE', 'The login is closed'))
              : Promise.resolve(external.href),
          close: async () => {},
        };
  const externalHosts =
    external !== undefined && isLoopbackHost(external.hostname)
      ? new Set([external.host.toLowerCase()])
      : undefined;
  const callbackRoute: LoginCallbackRoute | undefined =
    external === undefined
      ? undefined
      : Object.freeze({
          path: external.pathname,
          handle: createCallbackHandler({
            path: external.pathname,
            // On loopback, only the redirect URI's own host (DNS rebinding); elsewhere the host is the proxy's.
            allowedHosts: () => externalHosts,
            handle: handleCallback,
            logger,
          }),
        });

  // ------------------------------------------------------------------------------------------------------
  // Tool results.

  const accessibleTools = (principal: Principal): string[] =>
    authsec.visibleTools(principal).map((t) => t.name);

  const authenticatedBody = (sessionId: string, principal: Principal): Record<string, unknown> => ({
    status: 'authenticated',
    session_id: publicId(sessionId),
    user_info: toUserInfo(principal),
    accessible_tools: accessibleTools(principal),
  });

  const statusBody = (status: Status, sessionId: string | undefined, message: string) => ({
    status,
    ...(sessionId === undefined ? {} : { session_id: publicId(sessionId) }),
    message,
  });

  const failureFields = (sessionId: string): Record<string, unknown> => {
    const failure = failures.get(sessionId);
    return failure
      ? {
          error: failure.code,
          message: `The login failed: ${failure.message}. Call oauth_start to try again.`,
        }
      : {};
  };

  /** Reports (and, when authenticated, attaches) the session a client presents. */
  const presentSession = async (connectionId: string, sessionId: string): Promise<ToolResult> => {
    const record = await sessions.get(sessionId);
    if (!record) {
      return jsonResult(statusBody('not_found', sessionId, 'No such login. Call oauth_start to log in.'));
    }
    if (record.status === 'pending') {
      // Handed off: the browser may have finished a login another (perhaps gone) process started.
      const params = handoff?.claim(sessionId);
      if (params !== undefined) {
        forgetPending(sessionId);
        stateOf(connectionId);
        const page = await finishCallback(sessionId, params, connectionId);
        if (page.status === 200) return presentSession(connectionId, sessionId);
        return jsonResult({
          ...statusBody('logged_out', sessionId, 'The login failed. Call oauth_start to log in.'),
          ...failureFields(sessionId),
        });
      }
      return jsonResult(
        statusBody(
          'ready_for_authentication',
          sessionId,
          'The login is not finished: complete it in the browser.',
        ),
      );
    }
    if (record.status === 'authenticated') {
      const state = stateOf(connectionId);
      const before = state.attached?.sessionId;
      const attached = await attach(connectionId, sessionId);
      const principal = attached ? await check(connectionId, attached) : undefined;
      if (principal) {
        await remembered?.write(sessionId).catch((error: unknown) => {
          logger.warn('Could not remember the login', { cause: String(error) });
        });
        if (before !== sessionId) fire(connectionId);
        return jsonResult(authenticatedBody(sessionId, principal));
      }
      return jsonResult({ ...statusBody('expired', sessionId, 'The login has expired. Call oauth_start.') });
    }
    if (record.status === 'expired') {
      return jsonResult(
        statusBody('expired', sessionId, 'The login has expired. Call oauth_start to log in again.'),
      );
    }
    return jsonResult({
      ...statusBody('logged_out', sessionId, 'This login has ended. Call oauth_start to log in.'),
      ...failureFields(sessionId),
    });
  };

  /** The status of the connection's own login. */
  const ownStatus = async (connectionId: string): Promise<ToolResult> => {
    const state = stateOf(connectionId);
    const principal = await principalFor(connectionId);
    if (principal && state.attached)
      return jsonResult(authenticatedBody(state.attached.sessionId, principal));
    prunePending(state);
    const latest = state.pending.at(-1);
    if (latest !== undefined) {
      return jsonResult(
        statusBody(
          'ready_for_authentication',
          latest,
          'The login is not finished: complete it in the browser.',
        ),
      );
    }
    if (state.ended) {
      const { sessionId, status } = state.ended;
      return jsonResult({
        ...statusBody(
          status,
          sessionId,
          status === 'expired' ? 'The login has expired. Call oauth_start to log in again.' : 'Logged out.',
        ),
        ...failureFields(sessionId),
      });
    }
    return jsonResult(statusBody('not_found', undefined, 'Not logged in. Call oauth_start to log in.'));
  };

  // ------------------------------------------------------------------------------------------------------
  // The tools.

  const startLogin = async (connectionId: string): Promise<ToolResult> => {
    const oauth = await getOAuth();
    const wantsDevice =
      config.flow === 'device' ||
      (config.flow === 'auto' &&
        oauth.supportsDeviceFlow &&
        (!oauth.supportsAuthorizationCode || looksHeadless()));
    const codeVerifier = generateCodeVerifier();
    const nonce = generateNonce();
    prunePending(stateOf(connectionId));

    if (!wantsDevice) {
      const handedOff = handoff === undefined ? undefined : await handoff.begin();
      let created: Awaited<ReturnType<SessionStore['createPending']>>;
      let url: URL;
      try {
        const redirectUri = handedOff?.redirectUri ?? (await callbackServer.start());
        created = await sessions.createPending({ codeVerifier, nonce, redirectUri, binding: connectionId });
        try {
          url = await oauth.authorizationRequest({ redirectUri, state: created.state, nonce, codeVerifier });
        } catch (error) {
          endPendingQuietly(created.sessionId);
          throw error;
        }
      } catch (error) {
        handedOff?.abandon();
        throw error;
      }
      handedOff?.expect(created.state, created.sessionId, created.expiresAt);
      watchHandoff();
      pendingLogins.set(created.sessionId, {
        connectionId,
        state: created.state,
        expiresAt: created.expiresAt,
        abort: undefined,
      });
      sessionByState.set(created.state, created.sessionId);
      stateOf(connectionId).pending.push(created.sessionId);
      return jsonResult({
        status: 'ready_for_authentication',
        session_id: publicId(created.sessionId),
        authorization_url: url.href,
        expires_at: new Date(created.expiresAt).toISOString(),
        instructions:
          'Open authorization_url in a browser and sign in. This server receives the result by itself; the tool ' +
          'list then updates. Call oauth_status to check.',
      });
    }

    const device = await oauth.deviceAuthorization();
    const created = await sessions.createPending({
      codeVerifier,
      nonce,
      redirectUri: DEVICE_REDIRECT,
      binding: connectionId,
      ttlMs: Math.max(1000, device.expiresAt - clock()),
    });
    const abort = new AbortController();
    pendingLogins.set(created.sessionId, {
      connectionId,
      state: created.state,
      expiresAt: created.expiresAt,
      abort,
    });
    stateOf(connectionId).pending.push(created.sessionId);
    const sessionId = created.sessionId;
    void (async () => {
      try {
        const tokens = await oauth.pollDeviceToken(device.deviceCode, {
          signal: abort.signal,
          interval: device.interval,
          expiresAt: device.expiresAt,
        });
        if (!pendingLogins.has(sessionId)) return;
        forgetPending(sessionId);
        await sessions.consumePending(created.state);
        await completeLogin(sessionId, connectionId, tokens, 'oauth_device');
      } catch (error) {
        if (abort.signal.aborted) return;
        forgetPending(sessionId);
        failLogin(sessionId, error, 'oauth_device');
      }
    })();
    const verificationUrl = device.verificationUriComplete ?? device.verificationUri;
    return jsonResult({
      status: 'ready_for_authentication',
      session_id: publicId(sessionId),
      authorization_url: verificationUrl,
      verification_uri: device.verificationUri,
      user_code: device.userCode,
      ...(device.verificationUriComplete === undefined
        ? {}
        : { verification_uri_complete: device.verificationUriComplete }),
      expires_at: new Date(created.expiresAt).toISOString(),
      instructions: `Open ${device.verificationUri} in a browser and enter the code ${device.userCode}, then sign in. The tool list updates by itself; call oauth_status to check.`,
    });
  };

  const authenticatePasted = async (connectionId: string, token: string): Promise<ToolResult> => {
    const principal = await authsec.authenticate(token).catch((error: unknown) => {
      authsec.audit({
        action: 'login',
        decision: 'deny',
        target: 'oauth_authenticate',
        reason: toAuthSecError(error).code,
      });
      throw error;
    });
    stateOf(connectionId);
    const created = await sessions.createPending({
      codeVerifier: generateCodeVerifier(),
      nonce: generateNonce(),
      redirectUri: PASTED_REDIRECT,
      binding: connectionId,
    });
    await sessions.consumePending(created.state);
    try {
      await completeLogin(
        created.sessionId,
        connectionId,
        { accessToken: token, expiresAt: principal.expiresAt * 1000 },
        'oauth_authenticate',
      );
    } catch (error) {
      endPendingQuietly(created.sessionId);
      throw error;
    }
    return jsonResult(authenticatedBody(created.sessionId, principal));
  };

  const logout = async (connectionId: string): Promise<ToolResult> => {
    const state = stateOf(connectionId);
    for (const sessionId of [...state.pending]) {
      forgetPending(sessionId)?.abort?.abort();
      endPendingQuietly(sessionId);
    }
    const attached = state.attached;
    if (!attached) {
      await remembered?.forget();
      return jsonResult(statusBody('logged_out', state.ended?.sessionId, 'Not logged in.'));
    }
    const tokens = await sessions.tokens(attached.sessionId).catch(() => attached.tokens);
    await sessions.logout(attached.sessionId);
    await remembered?.forget();
    for (const [id, other] of connections) {
      if (other.attached?.sessionId === attached.sessionId) end(id, 'logged_out');
    }
    authsec.audit({
      action: 'logout',
      decision: 'allow',
      principal: sessionPrincipal(attached),
      target: 'oauth_logout',
    });
    let revoked = false;
    if (tokens) {
      try {
        const oauth = await getOAuth();
        if (tokens.refreshToken !== undefined)
          revoked = await oauth.revoke(tokens.refreshToken, 'refresh_token');
        revoked = (await oauth.revoke(tokens.accessToken, 'access_token')) || revoked;
      } catch (error) {
        logger.warn('Could not revoke the tokens of a logout', { code: toAuthSecError(error).code });
      }
    }
    return jsonResult({
      ...statusBody('logged_out', attached.sessionId, 'Logged out.'),
      revoked,
    });
  };

  const sessionIdSchema = {
    type: 'string',
    maxLength: SESSION_ID_MAX,
    description: 'The session_id returned by oauth_start.',
  };
  const noArguments: JsonSchemaObject = Object.freeze({ type: 'object', properties: {} });

  const tool = (
    name: string,
    description: string,
    inputSchema: JsonSchemaObject,
    annotations: Record<string, unknown>,
    fields: Readonly<Record<string, number>>,
    run: LoginToolSpec['run'],
  ): AuthSecTool =>
    defineLoginTool(
      { name, description, inputSchema, annotations, fields, run },
      { isClosed: () => closed, logger },
    );

  const tools: readonly AuthSecTool[] = Object.freeze([
    tool(
      'oauth_start',
      'Start logging in: returns a session_id and an authorization_url to open in a browser (or a ' +
        'verification_uri and user_code for the device flow).',
      noArguments,
      { title: 'Start login', readOnlyHint: false, openWorldHint: true },
      {},
      (connectionId) => startLogin(connectionId),
    ),
    tool(
      'oauth_authenticate',
      'Complete or resume a login: pass the session_id from oauth_start once the browser login is done, or a ' +
        'jwt_token (an access token for this server) obtained elsewhere.',
      {
        type: 'object',
        properties: {
          session_id: sessionIdSchema,
          jwt_token: {
            type: 'string',
            maxLength: JWT_MAX,
            description: 'An access token issued for this server.',
          },
        },
      },
      { title: 'Complete login', readOnlyHint: false, openWorldHint: false },
      { session_id: SESSION_ID_MAX, jwt_token: JWT_MAX },
      async (connectionId, args) => {
        if (args.jwt_token !== undefined) return authenticatePasted(connectionId, args.jwt_token);
        if (args.session_id !== undefined) return presentSession(connectionId, storeId(args.session_id));
        if (stateOf(connectionId).attached) return ownStatus(connectionId);
        throw new AuthSecError('BAD_REQUEST', 'Give session_id (from oauth_start) or jwt_token', {
          details: { fields: ['session_id', 'jwt_token'] },
        });
      },
    ),
    tool(
      'oauth_status',
      'Report the login status of this connection (or of a session_id, which is then resumed here), with the ' +
        'user and the accessible tools when authenticated.',
      { type: 'object', properties: { session_id: sessionIdSchema } },
      { title: 'Login status', readOnlyHint: true, openWorldHint: false },
      { session_id: SESSION_ID_MAX },
      (connectionId, args) =>
        args.session_id !== undefined
          ? presentSession(connectionId, storeId(args.session_id))
          : ownStatus(connectionId),
    ),
    tool(
      'oauth_logout',
      'Log out: ends the session, revokes its tokens at the provider where supported, and hides the protected ' +
        'tools again.',
      noArguments,
      { title: 'Log out', readOnlyHint: false, destructiveHint: false, openWorldHint: true },
      {},
      (connectionId) => logout(connectionId),
    ),
    tool(
      'oauth_user_info',
      'Show the logged-in user (email, sub, tenant_id, roles, groups, scopes, resources).',
      noArguments,
      { title: 'Current user', readOnlyHint: true, openWorldHint: false },
      {},
      async (connectionId) => {
        const principal = await principalFor(connectionId);
        const state = stateOf(connectionId);
        if (principal && state.attached) {
          return jsonResult({
            status: 'authenticated',
            session_id: publicId(state.attached.sessionId),
            user_info: toUserInfo(principal),
          });
        }
        return jsonResult(
          statusBody(
            state.ended?.status ?? 'not_found',
            state.ended?.sessionId,
            'Not logged in. Call oauth_start to log in.',
          ),
        );
      },
    ),
  ]);

  return {
    tools,
    callbackRoute,
    principalFor,
    sessionIdFor: (connectionId) => connections.get(connectionId)?.attached?.sessionId,
    onChange: (listener) => listeners.add(listener),
    disconnect(connectionId) {
      const state = connections.get(connectionId);
      if (!state) return;
      clearTimer(state.attached);
      for (const sessionId of [...state.pending]) {
        const pending = forgetPending(sessionId);
        pending?.abort?.abort();
        // A handed-off code-flow login outlives its connection: another process may finish it.
        if (handoff === undefined || pending?.abort !== undefined) endPendingQuietly(sessionId);
      }
      connections.delete(connectionId);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const state of connections.values()) clearTimer(state.attached);
      for (const pending of pendingLogins.values()) pending.abort?.abort();
      if (handoffTimer !== undefined) clearInterval(handoffTimer);
      connections.clear();
      pendingLogins.clear();
      sessionByState.clear();
      listeners.clear();
      await callbackServer.close();
    },
  };
}
