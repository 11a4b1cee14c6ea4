import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type AuthSec,
  AuthSecError,
  compileRequirement,
  createAuthSec,
  createResourceServer,
  explainConditions,
  isAuthSecError,
  MemoryAuditSink,
  type PrincipalDirectory,
  type Requirement,
} from '../../src/index.js';
import { principal } from './principal.js';

const silent = { debug() {}, info() {}, warn() {}, error() {} };
const compile = (requirement: Requirement, name = 'refund') =>
  compileRequirement(requirement, { name, logger: silent });

const FINANCE = principal({ roles: ['finance'], groups: ['emea'], scopes: ['refunds:write'] });

let publicJwk: JWK;
let privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
});

function engine(sink: MemoryAuditSink, at = Date.UTC(2026, 11, 4, 10, 0, 0)): AuthSec {
  return createAuthSec({
    issuers: [{ issuer: 'https://idp.test', keys: [publicJwk] }],
    audience: 'https://mcp.test/mcp',
    logger: silent,
    clock: () => at,
    audit: { sinks: [sink] },
  });
}

function withDirectory(directory: PrincipalDirectory, sink = new MemoryAuditSink()): AuthSec {
  return createAuthSec({
    issuers: [{ issuer: 'https://idp.test', keys: [publicJwk] }],
    audience: 'https://mcp.test/mcp',
    logger: silent,
    audit: { sinks: [sink] },
    directory,
  });
}

async function refusalOf(run: () => Promise<void>): Promise<AuthSecError> {
  try {
    await run();
  } catch (error) {
    if (isAuthSecError(error)) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('when: conditions compiled with the requirement', () => {
  it('keeps the conditions as written, deduplicated, and in the source', () => {
    const compiled = compile({
      roles: ['finance'],
      when: ['args.amount <= 1000', 'args.amount <= 1000', 'args.currency in ["EUR", "USD"]'],
    });
    expect(compiled.conditions).toEqual(['args.amount <= 1000', 'args.currency in ["EUR", "USD"]']);
    expect(compiled.source.when).toEqual(compiled.conditions);
    expect(compile({ when: 'args.ok' }).conditions).toEqual(['args.ok']);
    expect(compile({ roles: ['finance'] }).conditions).toEqual([]);
  });

  it.each([
    [{ when: 'args.amount <=' }, /not valid CEL: Unexpected token/],
    [{ when: 'arg.amount <= 10' }, /not valid CEL: Unknown variable: arg$/],
    [{ when: 'args.amount + 1' }, /yields int, not a boolean/],
    [{ when: '"a" + 1 == "a1"' }, /not valid CEL: no such overload/],
    [{ when: 'args.name' + ' && true'.repeat(200) }, /1609 characters long \(at most 1000\)/],
    [{ when: '' }, /non-empty string/],
    [{ when: [] }, /non-empty list/],
    [{ when: [42] }, /non-empty string/],
    [{ when: 42 }, /CEL expression or a non-empty list/],
    [{ when: Array.from({ length: 17 }, (_, i) => `args.n != ${i}`) }, /at most 16/],
    [{ when: 'process.exit(1) == null' }, /Unknown variable: process/],
    [{ when: 'size("x") + 1' }, /yields int, not a boolean/],
  ])('refuses %j with a TypeError naming the tool', (requirement, message) => {
    expect(() => compile(requirement as Requirement)).toThrow(TypeError);
    expect(() => compile(requirement as Requirement)).toThrow(/requirement of tool 'refund'/);
    expect(() => compile(requirement as Requirement)).toThrow(message);
  });

  it('names `when` among the keys a requirement may have', () => {
    expect(() => compile({ whn: 'true' } as unknown as Requirement)).toThrow(/unknown key 'whn'.*when/);
  });
});

describe('explainConditions: arguments, the caller and the time', () => {
  const outcome = (when: string | string[], args: Record<string, unknown>, now?: Date) =>
    explainConditions(FINANCE, compile({ roles: ['finance'], when }), args, now).map((c) => c.result);

  it('compares numbers from JSON with CEL literals, int or double', () => {
    expect(outcome('args.amount <= 1000', { amount: 1000 })).toEqual(['pass']);
    expect(outcome('args.amount <= 1000', { amount: 1000.5 })).toEqual(['fail']);
    expect(outcome('args.amount <= 1000.0', { amount: 250 })).toEqual(['pass']);
    expect(outcome('args.amount > 0 && args.amount <= 1000', { amount: -5 })).toEqual(['fail']);
  });

  it('membership, and, or, not, strings', () => {
    expect(outcome('args.env in ["staging", "dev"]', { env: 'staging' })).toEqual(['pass']);
    expect(outcome('args.env in ["staging", "dev"]', { env: 'production' })).toEqual(['fail']);
    expect(outcome('!(args.env == "production") || "admin" in user.roles', { env: 'production' })).toEqual([
      'fail',
    ]);
    expect(outcome('args.tags.all(t, t.startsWith("ops-"))', { tags: ['ops-a', 'ops-b'] })).toEqual(['pass']);
    expect(outcome('args.tags.exists(t, t == "root")', { tags: ['ops-a'] })).toEqual(['fail']);
  });

  it('the caller: its own projects, its tenant, its effective claims', () => {
    expect(outcome('args.project.startsWith(user.sub + "/")', { project: 'user-1/site' })).toEqual(['pass']);
    expect(outcome('args.project.startsWith(user.sub + "/")', { project: 'user-2/site' })).toEqual(['fail']);
    expect(
      outcome(
        ['user.tenant == "acme-corp"', 'user.email.endsWith("@company.com")', '"emea" in user.groups'],
        {},
      ),
    ).toEqual(['pass', 'pass', 'pass']);
    expect(outcome('"refunds:write" in user.scopes && user.client == null', {})).toEqual(['pass']);
  });

  it('the time of the decision', () => {
    const office = 'now.getHours("UTC") >= 8 && now.getHours("UTC") < 18';
    expect(outcome(office, {}, new Date(Date.UTC(2026, 11, 4, 10)))).toEqual(['pass']);
    expect(outcome(office, {}, new Date(Date.UTC(2026, 11, 4, 22)))).toEqual(['fail']);
    // With a time zone (the README's example): 17:30 UTC in December is 18:30 in Berlin.
    const berlin = 'now.getHours("Europe/Berlin") >= 8 && now.getHours("Europe/Berlin") < 18';
    expect(outcome(berlin, {}, new Date(Date.UTC(2026, 11, 4, 16, 30)))).toEqual(['pass']);
    expect(outcome(berlin, {}, new Date(Date.UTC(2026, 11, 4, 17, 30)))).toEqual(['fail']);
  });

  it('fails closed: a missing argument, a wrong type at run time, a non-boolean result', () => {
    expect(outcome('args.amount <= 1000', {})).toEqual(['error']);
    expect(outcome('args.amount <= 1000', { amount: 'lots' })).toEqual(['error']);
    expect(outcome('args.flag', { flag: 'yes' })).toEqual(['fail']);
    expect(outcome('has(args.limit) && args.limit < 5', {})).toEqual(['fail']);
  });

  it('reads only own keys of the arguments (no prototype walk)', () => {
    expect(outcome('args.constructor == null', {})).toEqual(['error']);
    expect(outcome('has(args.toString)', {})).toEqual(['fail']);
  });
});

describe('AuthSec.checkConditions', () => {
  const refund: Requirement = { roles: ['finance'], when: ['args.amount <= 1000', 'args.currency == "EUR"'] };

  it('passes, audited once as tool.condition allow', async () => {
    const sink = new MemoryAuditSink();
    await engine(sink).checkConditions(FINANCE, {
      target: 'refund',
      requirement: refund,
      args: { amount: 10, currency: 'EUR' },
    });
    expect(sink.events).toHaveLength(1);
    expect(sink.events[0]).toMatchObject({ action: 'tool.condition', decision: 'allow', target: 'refund' });
  });

  it('refuses with CONDITION_FAILED naming the condition, never the value, audited as a deny', async () => {
    const sink = new MemoryAuditSink();
    const error = await refusalOf(() =>
      engine(sink).checkConditions(FINANCE, {
        target: 'refund',
        requirement: refund,
        args: { amount: 987654, currency: 'EUR' },
      }),
    );
    expect(error.code).toBe('CONDITION_FAILED');
    expect(error.status).toBe(403);
    expect(error.message).toContain('args.amount <= 1000');
    expect(error.message).not.toContain('987654');
    expect(error.details.failed).toEqual(['args.amount <= 1000']);
    expect(sink.events).toHaveLength(1);
    const [event] = sink.events;
    expect(event).toMatchObject({
      action: 'tool.condition',
      decision: 'deny',
      reason: 'CONDITION_FAILED',
      failed: ['args.amount <= 1000'],
    });
    expect(JSON.stringify(event)).not.toContain('987654');
  });

  it('is a no-op, with no audit event, for a requirement without conditions', async () => {
    const sink = new MemoryAuditSink();
    await engine(sink).checkConditions(FINANCE, { target: 'hello', requirement: {}, args: { anything: 1 } });
    expect(sink.events).toHaveLength(0);
  });

  it('uses the engine clock for `now`', async () => {
    const sink = new MemoryAuditSink();
    const night = engine(sink, Date.UTC(2026, 11, 4, 23));
    const office: Requirement = { when: 'now.getHours("UTC") < 18' };
    expect(
      (await refusalOf(() => night.checkConditions(FINANCE, { target: 't', requirement: office, args: {} })))
        .code,
    ).toBe('CONDITION_FAILED');
  });

  it("fails closed when the tenant's stored conditions cannot be read: SERVICE_UNAVAILABLE, audited as an error", async () => {
    const sink = new MemoryAuditSink();
    const authsec = withDirectory(
      {
        resolve: async (p) => p,
        toolConditions: async () => {
          throw new AuthSecError('SERVICE_UNAVAILABLE', 'The database is unavailable');
        },
      },
      sink,
    );
    // Even a tool without conditions in code: its tenant may have some.
    const error = await refusalOf(() =>
      authsec.checkConditions(FINANCE, { target: 'hello', requirement: {}, args: {} }),
    );
    expect(error.code).toBe('SERVICE_UNAVAILABLE');
    expect(sink.events).toEqual([
      expect.objectContaining({ action: 'tool.condition', decision: 'error', reason: 'SERVICE_UNAVAILABLE' }),
    ]);
  });

  it('a stored condition that no longer compiles refuses the calls it covers, naming it', async () => {
    const authsec = withDirectory({
      resolve: async (p) => p,
      toolConditions: async () => new Map([['refund', ['args.amount <<< 3']]]),
    });
    const error = await refusalOf(() =>
      authsec.checkConditions(FINANCE, { target: 'refund', requirement: {}, args: { amount: 1 } }),
    );
    expect(error.code).toBe('CONDITION_FAILED');
    expect(error.details.failed).toEqual(['args.amount <<< 3']);
  });

  it("reads the tenant's conditions when it authenticates the caller: a call then never waits for the database", async () => {
    let reads = 0;
    let down = false;
    const authsec = withDirectory({
      resolve: async (p) => p,
      toolConditions: async () => {
        reads++;
        if (down) throw new AuthSecError('SERVICE_UNAVAILABLE', 'The database is unavailable');
        return new Map([['refund', ['args.amount <= 500']]]);
      },
    });
    const token = await new SignJWT({ tenant_id: 'acme-corp', roles: ['finance'] })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer('https://idp.test')
      .setAudience('https://mcp.test/mcp')
      .setSubject('user-1')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    const caller = await authsec.authenticate(token);
    expect(reads).toBe(1);
    down = true;
    // Decided on what was read with the caller: the database going away now refuses nothing already admitted.
    const refund = { target: 'refund', requirement: { roles: ['finance'] } };
    await authsec.checkConditions(caller, { ...refund, args: { amount: 100 } });
    expect(
      (await refusalOf(() => authsec.checkConditions(caller, { ...refund, args: { amount: 900 } }))).code,
    ).toBe('CONDITION_FAILED');
    expect(reads).toBe(1);
    // A caller that cannot be given its tenant's conditions is not authenticated at all.
    authsec.clearTokenCache();
    const refused = await authsec.authenticate(token).then(
      () => 'OK',
      (e: AuthSecError) => e.code,
    );
    expect(refused).toBe('SERVICE_UNAVAILABLE');
  });

  it('a REST route guard refuses a requirement with conditions (nothing to check them on)', () => {
    const authsec = engine(new MemoryAuditSink());
    const rs = createResourceServer({
      authsec,
      resourceUrl: 'https://mcp.test/mcp',
      authorizationServers: ['https://idp.test'],
    });
    expect(() => rs.guard({ when: 'args.x == 1' })).toThrow(/cannot have `when` conditions/);
    expect(() => rs.guard({ roles: ['finance'] })).not.toThrow();
  });
});
