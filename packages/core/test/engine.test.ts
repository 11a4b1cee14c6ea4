import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AuthSec,
  type AuthSecError,
  type AuthSecOptions,
  createAuthSec,
  type Logger,
  MemoryAuditSink,
  type Principal,
} from '../src/index.js';
import { SAMPLE_TOOLS } from './fixtures/sample-tools.js';

const ISSUER = 'https://idp.test';
const AUDIENCE = 'https://mcp.test/mcp';
let privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let publicJwk: JWK;

function recordingLogger(): Logger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => {
    lines.push({ level, message });
  };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

async function token(claims: Record<string, unknown>, ttl = 300): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(String(claims.sub ?? 'user-1'))
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
    .sign(privateKey);
}

async function rejection(promise: Promise<unknown>): Promise<AuthSecError> {
  try {
    await promise;
  } catch (error) {
    return error as AuthSecError;
  }
  throw new Error('expected a rejection');
}

function engineWith(extra: Partial<AuthSecOptions> = {}, logger: Logger = recordingLogger()): AuthSec {
  return createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [publicJwk] }],
    audience: AUDIENCE,
    logger,
    ...extra,
  });
}

// The brief's user: roles admin/developer, groups engineering, scopes read/write, resources projects/analytics.
const BRIEF_USER = {
  sub: 'john',
  email: 'john@company.com',
  tenant_id: 'acme-corp',
  roles: ['admin', 'developer'],
  groups: ['engineering'],
  scope: 'read write',
  resources: ['projects', 'analytics'],
};

beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
});

describe('createAuthSec', () => {
  it('fails at creation, naming the option, when issuers or audience are missing', () => {
    for (const bad of [
      { issuers: [], audience: AUDIENCE },
      { issuers: [ISSUER], audience: '' },
    ]) {
      let error: AuthSecError | undefined;
      try {
        createAuthSec({ ...(bad as AuthSecOptions), logger: recordingLogger() });
      } catch (e) {
        error = e as AuthSecError;
      }
      expect(error?.code).toBe('CONFIG_INVALID');
    }
  });

  it('warns at start that claims are not validated against a database when no directory is configured', async () => {
    const logger = recordingLogger();
    const engine = engineWith({}, logger);
    expect(logger.lines.some((l) => l.level === 'warn' && l.message.includes('database'))).toBe(true);
    await engine.close();
  });

  it('refuses pseudonymised audit without a key', () => {
    let error: AuthSecError | undefined;
    try {
      engineWith({ audit: { pseudonymizeSubjects: true } });
    } catch (e) {
      error = e as AuthSecError;
    }
    expect(error?.code).toBe('CONFIG_INVALID');
  });
});

describe('the brief worked example, end to end through a signed token', () => {
  let engine: AuthSec;
  let sink: MemoryAuditSink;
  let principal: Principal;
  let raw: string;

  beforeAll(async () => {
    sink = new MemoryAuditSink();
    engine = engineWith({ audit: { sinks: [sink] } });
    for (const [name, requirement] of Object.entries(SAMPLE_TOOLS))
      engine.tools.register(name, requirement, {});
    raw = await token(BRIEF_USER);
    principal = await engine.authenticateHeader(`Bearer ${raw}`);
  });
  afterAll(() => engine.close());

  it('authenticates into a frozen principal', () => {
    expect(Object.isFrozen(principal)).toBe(true);
    expect(principal).toMatchObject({ subject: 'john', email: 'john@company.com', tenantId: 'acme-corp' });
    expect([...principal.scopes].sort()).toEqual(['read', 'write']);
  });

  it('shows exactly the tools of the brief user', () => {
    expect(engine.visibleTools(principal).map((t) => t.name)).toEqual([
      'hello',
      'calculator',
      'admin_panel',
      'admin_dashboard',
      'create_resource',
      'view_analytics',
      'view_reports',
      'engineering_tools',
      'list_my_repos',
    ]);
  });

  it('authorizes a call again and audits it without the token or claims', () => {
    engine.authorizeTool(principal, { tool: 'admin_dashboard', arguments: { x: 1 } });
    const err = (() => {
      try {
        engine.authorizeTool(principal, { tool: 'deploy_production', arguments: {} });
      } catch (e) {
        return e as AuthSecError;
      }
    })();
    expect(err?.code).toBe('PERMISSION_DENIED');
    const unknown = (() => {
      try {
        engine.authorizeTool(principal, { tool: 'nope' });
      } catch (e) {
        return e as AuthSecError;
      }
    })();
    expect(unknown?.code).toBe('NOT_FOUND');
    const [allow, deny] = sink.events.slice(-3);
    expect(allow).toMatchObject({
      action: 'tool.call',
      decision: 'allow',
      subject: 'john',
      target: 'admin_dashboard',
    });
    expect(allow?.argumentsDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(deny).toMatchObject({
      decision: 'deny',
      reason: 'PERMISSION_DENIED',
      target: 'deploy_production',
    });
    const serialised = JSON.stringify(sink.events);
    expect(serialised).not.toContain(raw);
    expect(serialised).not.toContain(raw.split('.')[1]!);
    expect(serialised).not.toContain('john@company.com');
    expect(serialised).not.toContain('"roles"');
  });
});

describe('authenticateHeader', () => {
  it('distinguishes a missing header from a malformed one', async () => {
    const engine = engineWith();
    expect((await rejection(engine.authenticateHeader(undefined))).code).toBe('TOKEN_MISSING');
    expect((await rejection(engine.authenticateHeader('  '))).code).toBe('TOKEN_MISSING');
    expect((await rejection(engine.authenticateHeader('Basic dXNlcjpwYXNz'))).code).toBe('TOKEN_INVALID');
    expect((await rejection(engine.authenticateHeader('Bearer a b'))).code).toBe('TOKEN_INVALID');
    await engine.close();
  });

  it('records a refused authentication without the token', async () => {
    const sink = new MemoryAuditSink();
    const engine = engineWith({ audit: { sinks: [sink] } });
    const expired = await token(BRIEF_USER, -3600);
    expect((await rejection(engine.authenticate(expired))).code).toBe('TOKEN_EXPIRED');
    expect(sink.events.at(-1)).toMatchObject({
      action: 'authenticate',
      decision: 'deny',
      reason: 'TOKEN_EXPIRED',
    });
    expect(JSON.stringify(sink.events)).not.toContain(expired);
    await engine.close();
  });
});

describe('directory hook', () => {
  it('returns the effective principal the directory resolves', async () => {
    const engine = engineWith({
      directory: { resolve: async (p) => Object.freeze({ ...p, roles: Object.freeze(['analyst']) }) },
    });
    const p = await engine.authenticate(await token(BRIEF_USER));
    expect(p.roles).toEqual(['analyst']);
    expect(engine.can(p, { roles: ['admin'] })).toBe(false);
    await engine.close();
  });

  it('fails closed when the directory is unavailable', async () => {
    const { AuthSecError } = await import('../src/index.js');
    let closed = 0;
    const engine = engineWith({
      directory: {
        resolve: async () => {
          throw new AuthSecError('SERVICE_UNAVAILABLE', 'database unreachable');
        },
        close: async () => {
          closed++;
        },
      },
    });
    expect((await rejection(engine.authenticate(await token(BRIEF_USER)))).code).toBe('SERVICE_UNAVAILABLE');
    await engine.close();
    await engine.close();
    expect(closed).toBe(1);
  });

  it('fails closed with SERVICE_UNAVAILABLE, never INTERNAL, when a directory throws a plain Error', async () => {
    const logger = recordingLogger();
    const engine = engineWith(
      {
        directory: {
          resolve: async () => {
            throw new Error('connection reset by peer');
          },
        },
      },
      logger,
    );
    const error = await rejection(engine.authenticate(await token(BRIEF_USER)));
    expect(error.code).toBe('SERVICE_UNAVAILABLE');
    expect(error.status).toBe(503);
    expect(error.details.dependency).toBe('directory');
    expect(error.message).not.toContain('connection reset');
    expect(logger.lines).toContainEqual(
      expect.objectContaining({ level: 'error', message: 'The directory failed to resolve a caller' }),
    );
    await engine.close();
  });
});

describe('pseudonymised audit subjects', () => {
  it('stores a stable keyed pseudonym instead of the subject', async () => {
    const sink = new MemoryAuditSink();
    const engine = engineWith({
      audit: { sinks: [sink], pseudonymizeSubjects: true, pseudonymKey: 'k'.repeat(32) },
    });
    engine.tools.register('hello', {}, {});
    const p = await engine.authenticate(await token(BRIEF_USER));
    engine.authorizeTool(p, { tool: 'hello' });
    engine.authorizeTool(p, { tool: 'hello' });
    const [a, b] = sink.events;
    expect(a?.subject).toMatch(/^anon:[0-9a-f]{32}$/);
    expect(a?.subject).toBe(b?.subject);
    expect(JSON.stringify(sink.events)).not.toContain('john');
    await engine.close();
  });

  it('gives the same sub from two issuers two pseudonyms (the person is issuer and subject)', async () => {
    const sink = new MemoryAuditSink();
    const engine = engineWith({
      audit: { sinks: [sink], pseudonymizeSubjects: true, pseudonymKey: 'k'.repeat(32) },
    });
    const p = await engine.authenticate(await token(BRIEF_USER));
    engine.audit({ action: 'tool.call', decision: 'allow', principal: p, target: 'x' });
    engine.audit({
      action: 'tool.call',
      decision: 'allow',
      principal: Object.freeze({ ...p, issuer: 'https://other-idp.test' }),
      target: 'x',
    });
    const [first, second] = sink.events;
    expect(first?.subject).toMatch(/^anon:[0-9a-f]{32}$/);
    expect(second?.subject).toMatch(/^anon:[0-9a-f]{32}$/);
    expect(first?.subject).not.toBe(second?.subject);
    await engine.close();
  });
});

describe('the audit gate: no decision the audit log cannot record', () => {
  /** A sink that says when it can record, like the PostgreSQL sink under backpressure. */
  class GatedSink extends MemoryAuditSink {
    accepting = true;
    refusals = 0;
    recordRefusal(): void {
      this.refusals++;
    }
  }

  function caught(fn: () => unknown): AuthSecError | undefined {
    try {
      fn();
    } catch (error) {
      return error as AuthSecError;
    }
    return undefined;
  }

  it('refuses authenticate, authorize and authorizeTool with SERVICE_UNAVAILABLE while a sink is not accepting', async () => {
    const gated = new GatedSink();
    const plain = new MemoryAuditSink();
    const logger = recordingLogger();
    const engine = engineWith({ audit: { sinks: [gated, plain] } }, logger);
    engine.tools.register('hello', {}, {});
    const raw = await token(BRIEF_USER);
    const principal = await engine.authenticate(raw);
    expect(await engine.readiness()).toEqual({ ready: true, checks: { audit: 'ok' } });

    gated.accepting = false;
    const before = plain.events.length;
    const refusal = await rejection(engine.authenticate(raw));
    expect(refusal.code).toBe('SERVICE_UNAVAILABLE');
    expect(refusal.status).toBe(503);
    expect(refusal.details).toMatchObject({ dependency: 'audit' });
    expect((await rejection(engine.authenticateHeader(`Bearer ${raw}`))).code).toBe('SERVICE_UNAVAILABLE');
    expect(caught(() => engine.authorize(principal, {}))?.code).toBe('SERVICE_UNAVAILABLE');
    expect(caught(() => engine.authorizeTool(principal, { tool: 'hello' }))?.code).toBe(
      'SERVICE_UNAVAILABLE',
    );
    // Refusals are counted by the sink, not recorded as events (the sink cannot take them).
    expect(gated.refusals).toBe(4);
    expect(plain.events.length).toBe(before);
    expect(await engine.readiness()).toEqual({ ready: false, checks: { audit: 'unavailable' } });
    expect(
      logger.lines.filter((l) => l.level === 'error' && /audit log cannot record/.test(l.message)),
    ).toHaveLength(1);

    gated.accepting = true;
    expect(engine.authorizeTool(principal, { tool: 'hello' }).name).toBe('hello');
    await expect(engine.authenticate(raw)).resolves.toMatchObject({ subject: 'john' });
    expect(await engine.readiness()).toMatchObject({ ready: true });
    expect(logger.lines.some((l) => l.level === 'info' && /accepts events again/.test(l.message))).toBe(true);
    expect(gated.events.at(-1)).toMatchObject({ action: 'tool.call', decision: 'allow', target: 'hello' });
    await engine.close();
  });

  it('has no audit check and never refuses when no sink reports accepting', async () => {
    const engine = engineWith({ audit: { sinks: [new MemoryAuditSink()] } });
    expect(await engine.readiness()).toEqual({ ready: true, checks: {} });
    await expect(engine.authenticate(await token(BRIEF_USER))).resolves.toBeDefined();
    await engine.close();
  });
});
