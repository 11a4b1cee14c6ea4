import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import {
  type AuthSec,
  createAuthSec,
  createMemorySessionStore,
  createOAuthClient,
  noServiceAccess,
  type OAuthClient,
  type SessionStore,
  silentLogger,
} from '@authsec/core';
import { DEMO_USERS, type DevIdp } from '@authsec/dev-idp';
import { createToolLogin, type ToolLogin, type ToolLoginOptions } from '../../../src/login/index.js';
import type { PublicToolContext, ToolResult } from '../../../src/types.js';
import { detachedCall } from '../../helpers/call-channel.js';

/** The audience of the test server (the dev IdP accepts any loopback resource). */
export const RESOURCE = 'http://127.0.0.1:39998/mcp';
export const SCOPES = ['openid', 'offline_access', 'read', 'write', 'admin'];
export const ADMIN = DEMO_USERS.find((u) => u.roles?.includes('admin'))!;
export const ANALYST = DEMO_USERS.find((u) => u.roles?.includes('analyst'))!;

/** A clock the test moves by hand: real time plus an offset. */
export function offsetClock(): { now: () => number; advance: (ms: number) => void; offset: number } {
  const clock = {
    offset: 0,
    now: () => Date.now() + clock.offset,
    advance: (ms: number) => {
      clock.offset += ms;
    },
  };
  return clock;
}

/** An engine trusting the dev IdP, with the sample requirements registered. */
export function engine(idp: DevIdp, clock?: () => number): AuthSec {
  const authsec = createAuthSec({
    issuers: [idp.issuer],
    audience: RESOURCE,
    logger: silentLogger,
    ...(clock ? { clock, clockToleranceSeconds: 0 } : {}),
  });
  authsec.tools.register('hello', undefined, null);
  authsec.tools.register('admin_panel', { roles: ['admin'] }, null);
  authsec.tools.register('view_reports', { roles: ['admin', 'manager', 'analyst'] }, null);
  return authsec;
}

export function oauthClient(idp: DevIdp, clock?: () => number): Promise<OAuthClient> {
  return createOAuthClient({
    issuer: idp.issuer,
    clientId: 'authsec-dev',
    resource: RESOURCE,
    scopes: SCOPES,
    logger: silentLogger,
    ...(clock ? { clock } : {}),
  });
}

/** A login provider with its engine, store and a record of every change and every result text. */
export interface Harness {
  readonly login: ToolLogin;
  readonly authsec: AuthSec;
  readonly sessions: SessionStore;
  readonly oauth: OAuthClient;
  readonly changes: string[];
  readonly texts: string[];
  call(connectionId: string, name: string, args?: Record<string, unknown>): Promise<ToolResult>;
  body(connectionId: string, name: string, args?: Record<string, unknown>): Promise<Record<string, unknown>>;
  waitForChange(connectionId: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function harness(
  idp: DevIdp,
  extra: Partial<ToolLoginOptions> & { clock?: () => number } = {},
): Promise<Harness> {
  const authsec = extra.authsec ?? engine(idp, extra.clock);
  const oauth = await oauthClient(idp, extra.clock);
  const sessions = extra.sessions ?? createMemorySessionStore();
  const login = createToolLogin({
    logger: silentLogger,
    ...extra,
    authsec,
    oauth: extra.oauth ?? oauth,
    sessions,
  });
  const changes: string[] = [];
  const waiters: Array<{ id: string; resolve: () => void }> = [];
  login.onChange((id) => {
    changes.push(id);
    for (const waiter of waiters.filter((w) => w.id === id)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  });
  const texts: string[] = [];
  const call = async (connectionId: string, name: string, args: Record<string, unknown> = {}) => {
    const tool = login.tools.find((t) => t.name === name);
    if (!tool) throw new Error(`no tool ${name}`);
    const context: PublicToolContext = {
      user: undefined,
      principal: undefined,
      tenant: undefined,
      sessionId: login.sessionIdFor(connectionId),
      services: noServiceAccess,
      ...detachedCall(),
      connectionId,
    };
    const result = await tool.run(args, context);
    for (const item of result.content) if (typeof item.text === 'string') texts.push(item.text);
    texts.push(JSON.stringify(result.structuredContent ?? {}));
    return result;
  };
  return {
    login,
    authsec,
    sessions,
    oauth,
    changes,
    texts,
    call,
    async body(connectionId, name, args) {
      return (await call(connectionId, name, args)).structuredContent ?? {};
    },
    waitForChange(id, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no change for ${id} within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          id,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
    async close() {
      await login.close();
      if (!extra.sessions) await sessions.close();
      if (!extra.authsec) await authsec.close();
    },
  };
}

/** An ES256 access token for the test audience, signed by a key the dev IdP never published. */
export function forgedToken(issuer: string): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const now = Math.floor(Date.now() / 1000);
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const header = encode({ alg: 'ES256', typ: 'at+jwt', kid: 'forged' });
  const payload = encode({
    iss: issuer,
    sub: 'attacker',
    aud: RESOURCE,
    iat: now,
    exp: now + 600,
    jti: randomUUID(),
    email: 'attacker@acme-corp.example',
    tenant_id: 'acme-corp',
    roles: ['admin'],
    scope: 'read write admin',
  });
  const signature = sign('sha256', Buffer.from(`${header}.${payload}`), {
    key: privateKey,
    dsaEncoding: 'ieee-p1363',
  });
  return `${header}.${payload}.${signature.toString('base64url')}`;
}
