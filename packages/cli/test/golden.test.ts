import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, ENGINES, type Engine, json } from './helpers.js';

interface CheckJson {
  allowed: boolean;
  decision: string;
  effective: Record<string, string[]>;
  ignoredClaims: Record<string, string[]>;
  categories: { category: string; passed: boolean; missing: string[] }[];
  refusal: { code: string; message: string; scopes?: string[] } | null;
}

describe.each(ENGINES)('golden path ($name)', ({ create }) => {
  let engine: Engine;
  const run = (...args: string[]) => cli(args, engine.env);
  const check = async (subject: string, requirement: unknown, claims?: unknown) => {
    const args = ['check', subject, '--tenant', 'acme', '--tool-requirement', JSON.stringify(requirement)];
    if (claims !== undefined) args.push('--claims', JSON.stringify(claims));
    const result = await run(...args, '--json');
    expect(result.code, result.stderr).toBe(0);
    return json<CheckJson>(result);
  };

  beforeAll(async () => {
    engine = await create();
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('migrates the master database, then reports each tenant on stderr', async () => {
    const first = await run('migrate');
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('migrate: master database:');
    expect(first.stdout).toMatch(/^Migrated: \d+ migration\(s\) on the master database/);

    expect((await run('tenant', 'create', 'acme')).code).toBe(0);
    const again = await run('migrate', '--json');
    expect(again.code).toBe(0);
    expect(json(again)).toEqual({ master: 0, tenants: 0, tenantCount: 1 });
    expect(again.stderr).toContain("migrate: tenant 'acme' (1/1): 0 applied");
  });

  it('builds a catalog and grants, and lists them as tables and as JSON', async () => {
    for (const args of [
      ['role', 'add', 'admin'],
      ['scope', 'add', 'read'],
      ['scope', 'add', 'write'],
      ['group', 'add', 'engineering'],
      ['resource', 'add', 'projects'],
      ['permission', 'add', 'projects:deploy'],
    ]) {
      const result = await run(...args, '--tenant', 'acme');
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
    }
    const granted = await run('grant', 'alice', '--tenant', 'acme', '--role', 'admin', '--scope', 'read');
    expect(granted.code, granted.stderr).toBe(0);
    expect(granted.stdout).toContain("Granted 2 to 'alice' of https://idp.test in tenant 'acme'");

    const scopes = await run('scope', 'list', '--tenant', 'acme');
    expect(scopes.code).toBe(0);
    const lines = scopes.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^SCOPE\s+CREATED$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['read', 'write']);

    const scopesJson = json<{ tenant: string; kind: string; entries: { name: string }[] }>(
      await run('scope', 'list', '--tenant', 'acme', '--json'),
    );
    expect(scopesJson).toMatchObject({ tenant: 'acme', kind: 'scope' });
    expect(scopesJson.entries.map((e) => e.name)).toEqual(['read', 'write']);

    const tenants = await run('tenant', 'list');
    expect(tenants.stdout).toMatch(/^TENANT\s+STATUS\s+PLACEMENT\s+CREATED\n/);
    expect(tenants.stdout).toMatch(/\nacme\s+active\s+schema\s+\d{4}-/);
    expect(json(await run('tenant', 'list', '--json'))).toMatchObject({
      tenants: [{ id: 'acme', status: 'active', placement: 'schema' }],
    });
  });

  it('re-adding or removing what is not there changes nothing and succeeds', async () => {
    const again = await run('role', 'add', 'admin', '--tenant', 'acme', '--json');
    expect(again.code).toBe(0);
    expect(json(again)).toEqual({ tenant: 'acme', kind: 'role', name: 'admin', changed: false });
    const absent = await run('role', 'remove', 'nobody', '--tenant', 'acme');
    expect(absent.code).toBe(0);
    expect(absent.stdout).toContain("role 'nobody' was not in tenant 'acme'");
  });

  it('check allows a granted role and explains each category', async () => {
    const human = await run(
      'check',
      'alice',
      '--tenant',
      'acme',
      '--tool-requirement',
      '{"roles":["admin"]}',
    );
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/\nroles\s+admin\s+-\s+admin\s+-\n/);
    expect(human.stdout).toMatch(/\nroles\s+any of admin\s+admin\s+-\s+pass\n/);
    expect(human.stdout).toContain('Decision: allow');

    const result = await check('alice', { roles: ['admin'] });
    expect(result).toMatchObject({ allowed: true, decision: 'allow', refusal: null });
    expect(result.effective).toMatchObject({ roles: ['admin'], scopes: ['read'] });
    expect(result.categories).toEqual([expect.objectContaining({ category: 'roles', passed: true })]);
  });

  it('check refuses a missing scope with INSUFFICIENT_SCOPE naming it', async () => {
    const result = await check('alice', { scopes: ['write'] });
    expect(result.allowed).toBe(false);
    expect(result.refusal).toMatchObject({ code: 'INSUFFICIENT_SCOPE', scopes: ['write', 'read'] });
    expect(result.categories).toEqual([
      expect.objectContaining({ category: 'scopes', passed: false, missing: ['write'] }),
    ]);
    const human = await run(
      'check',
      'alice',
      '--tenant',
      'acme',
      '--tool-requirement',
      '{"scopes":["write"]}',
    );
    expect(human.stdout).toMatch(/Decision: deny INSUFFICIENT_SCOPE: .*write/);
    expect(human.stdout).toContain('Scopes to request: write read');
  });

  it('check --args explains the conditions of a requirement, and refuses with CONDITION_FAILED', async () => {
    const refund = {
      roles: ['admin'],
      when: ['args.amount <= 1000', 'args.project.startsWith(user.sub + "/")'],
    };
    const withArgs = async (args: string) => {
      const result = await run(
        'check',
        'alice',
        '--tenant',
        'acme',
        '--tool-requirement',
        JSON.stringify(refund),
        '--args',
        args,
        '--json',
      );
      expect(result.code, result.stderr).toBe(0);
      return json<CheckJson & { conditions: { expression: string; result: string }[] }>(result);
    };
    const allowed = await withArgs('{"amount":250,"project":"alice/site"}');
    expect(allowed).toMatchObject({ allowed: true, refusal: null });
    expect(allowed.conditions.map((c) => c.result)).toEqual(['pass', 'pass']);
    const over = await withArgs('{"amount":5000,"project":"bob/site"}');
    expect(over.allowed).toBe(false);
    expect(over.refusal).toMatchObject({ code: 'CONDITION_FAILED' });
    expect(over.refusal?.message).toContain('args.amount <= 1000');
    expect(over.conditions.map((c) => c.result)).toEqual(['fail', 'fail']);
    // No --args: the conditions see {} and cannot be evaluated, which is not met.
    const none = await run(
      'check',
      'alice',
      '--tenant',
      'acme',
      '--tool-requirement',
      JSON.stringify(refund),
    );
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toMatch(/\nargs\.amount <= 1000\s+error\n/);
    expect(none.stdout).toMatch(
      /Decision: deny CONDITION_FAILED: the condition args\.amount <= 1000 does not hold \(it cannot be evaluated/,
    );
    // A bad expression or bad --args is a usage error naming the flag.
    const bad = await run('check', 'alice', '--tenant', 'acme', '--tool-requirement', '{"when":"args.x <="}');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--tool-requirement: requirement: condition "args.x <=" is not valid CEL/);
    const badArgs = await run(
      'check',
      'alice',
      '--tenant',
      'acme',
      '--tool-requirement',
      JSON.stringify(refund),
      '--args',
      '[1]',
    );
    expect(badArgs.code).toBe(2);
    expect(badArgs.stderr).toMatch(/--args: a JSON object/);
  });

  it("policy set|get|list|remove keeps a tenant's tool conditions; check --tool applies them", async () => {
    const setRefund = ['policy', 'set', 'refund', '--tenant', 'acme'];
    const conditions = ['--when', 'args.amount <= 500', '--when', 'args.currency == "EUR"'];
    const set = await run(...setRefund, ...conditions);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain("Set 2 condition(s) on tool 'refund' in tenant 'acme'");
    const again = await run(...setRefund, ...conditions, '--json');
    expect(json(again)).toMatchObject({ tool: 'refund', changed: false });
    const got = json<{ policies: { tool: string; conditions: string[] }[] }>(
      await run('policy', 'get', 'refund', '--tenant', 'acme', '--json'),
    );
    expect(got.policies).toEqual([
      expect.objectContaining({
        tool: 'refund',
        conditions: ['args.amount <= 500', 'args.currency == "EUR"'],
      }),
    ]);
    expect((await run('policy', 'list', '--tenant', 'acme')).stdout).toMatch(
      /^TOOL\s+CONDITIONS \(all must hold\)\s+UPDATED\nrefund\s+args\.amount <= 500, args\.currency == "EUR"/,
    );

    // check --tool: the tenant's conditions ANDed with the requirement's own (1,000 in code, 500 stored).
    const checkRefund = async (args: string) =>
      json<CheckJson & { conditions: { expression: string; result: string }[] }>(
        await run(
          'check',
          'alice',
          '--tenant',
          'acme',
          '--tool',
          'refund',
          '--tool-requirement',
          '{"roles":["admin"],"when":"args.amount <= 1000"}',
          '--args',
          args,
          '--json',
        ),
      );
    const over = await checkRefund('{"amount":800,"currency":"EUR"}');
    expect(over.refusal).toMatchObject({ code: 'CONDITION_FAILED' });
    expect(over.conditions).toEqual([
      { expression: 'args.amount <= 1000', result: 'pass' },
      { expression: 'args.amount <= 500', result: 'fail' },
      { expression: 'args.currency == "EUR"', result: 'pass' },
    ]);
    expect((await checkRefund('{"amount":300,"currency":"EUR"}')).allowed).toBe(true);

    const bad = await run('policy', 'set', 'refund', '--tenant', 'acme', '--when', 'args.amount <=');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/Conditions of tool 'refund' in tenant 'acme': .*is not valid CEL/);
    const missing = await run('policy', 'set', 'refund', '--tenant', 'acme');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--when/);

    const removed = await run('policy', 'remove', 'refund', '--tenant', 'acme');
    expect(removed.stdout).toContain("Removed the conditions of tenant 'acme' on tool 'refund'");
    expect((await run('policy', 'remove', 'refund', '--tenant', 'acme')).stdout).toContain(
      'had no conditions',
    );
    expect((await run('policy', 'get', 'refund', '--tenant', 'acme')).stdout).toContain(
      "Tool 'refund' has no conditions",
    );
    expect((await checkRefund('{"amount":800,"currency":"EUR"}')).allowed).toBe(true);
  });

  it('check counts token claims only when they are in the catalog', async () => {
    const result = await check(
      'carol',
      { roles: ['admin'] },
      { roles: ['admin', 'ghost'], scope: 'read nope' },
    );
    expect(result.allowed).toBe(true);
    expect(result.effective).toMatchObject({ roles: ['admin'], scopes: ['read'] });
    expect(result.ignoredClaims).toMatchObject({ roles: ['ghost'], scopes: ['nope'] });
    const denied = await check('carol', { roles: ['ghost'] }, { roles: ['ghost'] });
    expect(denied.refusal?.code).toBe('PERMISSION_DENIED');
  });

  it('grants to a group reach its members', async () => {
    const granted = await run('grant', 'group:engineering', '--tenant', 'acme', '--resource', 'projects');
    expect(granted.code, granted.stderr).toBe(0);
    const requirement = { permissions: ['projects:deploy'] };
    const member = await check('bob', requirement, { groups: ['engineering'], scope: 'deploy' });
    expect(member.refusal?.code).toBe('INSUFFICIENT_SCOPE');
    expect(member.effective.resources).toEqual(['projects']);
    const withScope = await run('scope', 'add', 'deploy', '--tenant', 'acme');
    expect(withScope.code).toBe(0);
    expect((await check('bob', requirement, { groups: ['engineering'], scope: 'deploy' })).allowed).toBe(
      true,
    );
    expect((await check('bob', requirement)).refusal?.code).toBe('PERMISSION_DENIED');
  });

  it('after revoke the same check is refused', async () => {
    const revoked = await run('revoke', 'alice', '--tenant', 'acme', '--role', 'admin', '--json');
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(json(revoked)).toMatchObject({ tenant: 'acme', subject: 'alice', revoked: 1 });
    const result = await check('alice', { roles: ['admin'] });
    expect(result).toMatchObject({ allowed: false, decision: 'deny' });
    expect(result.refusal?.code).toBe('PERMISSION_DENIED');
    expect(result.effective.roles).toEqual([]);
  });

  it('a disabled tenant refuses every check with TENANT_UNKNOWN, and enable restores it', async () => {
    expect((await run('tenant', 'disable', 'acme')).code).toBe(0);
    expect(json(await run('tenant', 'list', '--json'))).toMatchObject({ tenants: [{ status: 'disabled' }] });
    const refused = await check('alice', { scopes: ['read'] });
    expect(refused.refusal?.code).toBe('TENANT_UNKNOWN');
    // Administration still works on a disabled tenant.
    expect((await run('role', 'list', '--tenant', 'acme')).code).toBe(0);
    const enabled = await run('tenant', 'enable', 'acme');
    expect(enabled.code).toBe(0);
    expect(enabled.stdout).toContain("Tenant 'acme' is now active");
    expect((await check('alice', { scopes: ['read'] })).allowed).toBe(true);
  });

  it('records every admin change in the tenant audit log, as the OS user, and the chain verifies', async () => {
    const tail = await run('audit', 'tail', '--tenant', 'acme', '--limit', '1000', '--json');
    expect(tail.code, tail.stderr).toBe(0);
    const { events } = json<{ events: Record<string, unknown>[] }>(tail);
    const targets = events.map((e) => e.target);
    expect(targets).toEqual([
      'tenant create acme --placement schema',
      'role add admin',
      'scope add read',
      'scope add write',
      'group add engineering',
      'resource add projects',
      'permission add projects:deploy',
      'grant alice --issuer https://idp.test --role admin --scope read',
      'policy set refund (2 condition(s))',
      'policy remove refund',
      'grant group:engineering --resource projects',
      'scope add deploy',
      'revoke alice --issuer https://idp.test --role admin',
      'tenant disable acme',
      'tenant enable acme',
    ]);
    for (const event of events) {
      expect(event).toMatchObject({
        action: 'admin.change',
        decision: 'allow',
        tenantId: 'acme',
        clientId: 'authsec-cli',
      });
      expect(event.subject).toMatch(/^cli:./);
      expect(typeof event.time).toBe('string');
    }
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));

    const last = await run('audit', 'tail', '--tenant', 'acme', '--limit', '2');
    expect(last.stdout.trim().split('\n')).toHaveLength(3);
    expect(last.stdout).toMatch(/\n14\s+\S+\s+admin\.change\s+allow\s+cli:\S+\s+tenant disable acme/);

    const verified = await run('audit', 'verify', '--tenant', 'acme');
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toContain(`OK: the audit log of tenant 'acme' verifies (${events.length} rows)`);
  });

  it('refuses what the database refuses, naming the tenant', async () => {
    const twice = await run('tenant', 'create', 'acme');
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain("Tenant 'acme' already exists");
    const notInCatalog = await run('grant', 'dave', '--tenant', 'acme', '--role', 'root', '--json');
    expect(notInCatalog.code).toBe(1);
    expect(notInCatalog.stdout).toBe('');
    expect(JSON.parse(notInCatalog.stderr)).toEqual({
      error: { code: 'BAD_REQUEST', message: "Not in the catalog of tenant 'acme': role root" },
    });
    const badName = await run('permission', 'add', 'no-colon', '--tenant', 'acme');
    expect(badName.code).toBe(1);
    expect(badName.stderr).toContain("tenant 'acme'");
  });
});
