import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, cli, ENGINES, type Engine, json, TEST_ISSUER } from './helpers.js';

/**
 * Subjects bound to their issuer: `grant`, `revoke` and `check` take `--issuer` (required when AUTHSEC_ISSUER
 * lists several, the only one otherwise), `grants` lists the issuer of each subject, `tenant issuer
 * add|remove|list` names the issuers allowed to speak for a tenant, and `migrate` gives grants stored without
 * an issuer to the single configured one, or stops and names `--issuer` when it cannot tell.
 */

const ISS_A = TEST_ISSUER;
const ISS_B = 'https://idp-b.test';
const TWO = `${ISS_A},${ISS_B}`;

interface ErrorJson {
  error: { code: string; message: string };
}

/** The error document of a `--json` run: the last line of stderr (progress notes may come before it). */
function failure(result: CliResult): ErrorJson['error'] {
  const last = result.stderr.trim().split('\n').at(-1) ?? '';
  return (JSON.parse(last) as ErrorJson).error;
}

describe.each(ENGINES)('subjects bound to their issuer ($name)', ({ create }) => {
  let engine: Engine;
  const run = (...args: string[]) => cli(args, engine.env);
  const runWith = (issuers: string, ...args: string[]) =>
    cli(args, { ...engine.env, AUTHSEC_ISSUER: issuers });
  const check = async (issuers: string, subject: string, ...extra: string[]) => {
    const result = await runWith(
      issuers,
      'check',
      subject,
      '--tenant',
      'acme',
      '--tool-requirement',
      '{"roles":["admin"]}',
      ...extra,
      '--json',
    );
    expect(result.code, result.stderr).toBe(0);
    return json<{ allowed: boolean; issuer: string; refusal: { code: string; message: string } | null }>(
      result,
    );
  };

  beforeAll(async () => {
    engine = await create();
    for (const args of [
      ['migrate'],
      ['tenant', 'create', 'acme'],
      ['role', 'add', 'admin', '--tenant', 'acme'],
      ['group', 'add', 'staff', '--tenant', 'acme'],
    ]) {
      const result = await run(...args);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
    }
  }, 60_000);
  afterAll(async () => {
    await engine?.dispose();
  });

  it('grant defaults --issuer to the only AUTHSEC_ISSUER', async () => {
    const result = await run('grant', 'alice', '--tenant', 'acme', '--role', 'admin', '--json');
    expect(result.code, result.stderr).toBe(0);
    expect(json(result)).toMatchObject({ subject: 'alice', issuer: ISS_A, granted: 1 });
  });

  it('grant needs --issuer when AUTHSEC_ISSUER lists several, or none', async () => {
    const several = await runWith(TWO, 'grant', 'alice', '--tenant', 'acme', '--role', 'admin', '--json');
    expect(several.code).toBe(2);
    expect(failure(several).code).toBe('USAGE');
    expect(failure(several).message).toContain('--issuer <url> is required');
    expect(failure(several).message).toContain(ISS_B);

    const none = await cli(['revoke', 'alice', '--tenant', 'acme', '--role', 'admin', '--json'], {
      AUTHSEC_DATA_DIR: engine.env.AUTHSEC_DATA_DIR!,
      AUTHSEC_MASTER_KEY: engine.env.AUTHSEC_MASTER_KEY!,
      ...(engine.env.AUTHSEC_DATABASE_URL ? { AUTHSEC_DATABASE_URL: engine.env.AUTHSEC_DATABASE_URL } : {}),
    });
    expect(none.code).toBe(2);
    expect(failure(none).message).toContain('AUTHSEC_ISSUER is not set');

    const bad = await runWith(
      TWO,
      'grant',
      'alice',
      '--tenant',
      'acme',
      '--role',
      'admin',
      '--issuer',
      'idp-b',
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--issuer: "idp-b" is not an http(s) issuer URL');

    const group = await run('grant', 'group:staff', '--tenant', 'acme', '--role', 'admin', '--issuer', ISS_A);
    expect(group.code).toBe(2);
    expect(group.stderr).toContain('belong to no issuer');
  });

  it("with --issuer, the same sub of another issuer does not get the first one's grants", async () => {
    const granted = await runWith(
      TWO,
      'grant',
      'bob',
      '--tenant',
      'acme',
      '--role',
      'admin',
      '--issuer',
      ISS_B,
    );
    expect(granted.code, granted.stderr).toBe(0);
    expect(granted.stdout).toContain(`Granted 1 to 'bob' of ${ISS_B} in tenant 'acme'`);

    expect(await check(TWO, 'bob', '--issuer', ISS_B)).toMatchObject({ allowed: true, issuer: ISS_B });
    expect(await check(TWO, 'bob', '--issuer', ISS_A)).toMatchObject({ allowed: false, issuer: ISS_A });
    // alice was granted as alice of the only issuer (A): B's alice is someone else.
    expect(await check(ISS_A, 'alice')).toMatchObject({ allowed: true, issuer: ISS_A });
    expect(await check(TWO, 'alice', '--issuer', ISS_B)).toMatchObject({ allowed: false });

    const noIssuer = await runWith(
      TWO,
      'check',
      'bob',
      '--tenant',
      'acme',
      '--tool-requirement',
      '{}',
      '--json',
    );
    expect(noIssuer.code).toBe(2);
    expect(failure(noIssuer).code).toBe('USAGE');

    const revoked = await runWith(
      TWO,
      'revoke',
      'bob',
      '--tenant',
      'acme',
      '--role',
      'admin',
      '--issuer',
      ISS_A,
    );
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`'bob' of ${ISS_A} held none of it`);
    expect(await check(TWO, 'bob', '--issuer', ISS_B)).toMatchObject({ allowed: true });
  });

  it('grants lists each subject with its issuer', async () => {
    expect((await run('grant', 'group:staff', '--tenant', 'acme', '--role', 'admin')).code).toBe(0);
    const table = await run('grants', '--tenant', 'acme');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^SUBJECT\s+ISSUER\s+KIND\s+VALUE\s+GRANTED\n/);
    expect(table.stdout).toMatch(new RegExp(`\\nalice\\s+${ISS_A}\\s+role\\s+admin\\s+\\d{4}-`));
    expect(table.stdout).toMatch(new RegExp(`\\nbob\\s+${ISS_B}\\s+role\\s+admin\\s+\\d{4}-`));
    expect(table.stdout).toMatch(/\ngroup:staff\s+-\s+role\s+admin\s+\d{4}-/);

    const listed = json<{ grants: { subject: string; issuer: string | null }[] }>(
      await run('grants', '--tenant', 'acme', '--json'),
    );
    expect(listed.grants.map((g) => [g.subject, g.issuer])).toEqual([
      ['alice', ISS_A],
      ['bob', ISS_B],
      ['group:staff', null],
    ]);
    const ofB = json<{ grants: { subject: string }[] }>(
      await run('grants', '--tenant', 'acme', '--issuer', ISS_B, '--json'),
    );
    expect(ofB.grants.map((g) => g.subject)).toEqual(['bob']);
  });

  it('tenant issuer add|remove|list names the issuers allowed to speak for a tenant', async () => {
    const empty = await run('tenant', 'issuer', 'list', 'acme');
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout).toContain('every trusted issuer');

    const added = await run('tenant', 'issuer', 'add', 'acme', ISS_A, '--json');
    expect(added.code, added.stderr).toBe(0);
    expect(json(added)).toEqual({ tenant: 'acme', issuer: ISS_A, changed: true, issuers: [ISS_A] });
    expect(json(await run('tenant', 'issuer', 'add', 'acme', ISS_A, '--json'))).toMatchObject({
      changed: false,
    });
    expect(json(await run('tenant', 'issuer', 'list', 'acme', '--json'))).toEqual({
      tenant: 'acme',
      issuers: [ISS_A],
    });
    expect(json(await run('tenant', 'list', '--json'))).toMatchObject({
      tenants: [{ id: 'acme', issuers: [ISS_A] }],
    });

    // bob of B holds admin, but B may no longer speak for the tenant.
    const refused = await check(TWO, 'bob', '--issuer', ISS_B);
    expect(refused.allowed).toBe(false);
    expect(refused.refusal?.code).toBe('TENANT_UNKNOWN');
    expect(refused.refusal?.message).toContain(`does not allow issuer ${ISS_B}`);
    expect(await check(ISS_A, 'alice')).toMatchObject({ allowed: true });

    const removed = await run('tenant', 'issuer', 'remove', 'acme', ISS_A);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toContain('accepts tokens from every trusted issuer again');
    expect((await run('tenant', 'issuer', 'remove', 'acme', ISS_A)).stdout).toContain('was not allowed');
    expect(await check(TWO, 'bob', '--issuer', ISS_B)).toMatchObject({ allowed: true });

    const unknown = await run('tenant', 'issuer', 'add', 'nobody', ISS_A, '--json');
    expect(unknown.code).toBe(1);
    expect(failure(unknown).code).toBe('TENANT_UNKNOWN');
    const bad = await run('tenant', 'issuer', 'add', 'acme', 'not-a-url', '--json');
    expect(bad.code).toBe(2);
    expect(failure(bad).code).toBe('USAGE');
    const missing = await run('tenant', 'issuer', 'add', 'acme');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('<issuer> is required');
    const noAction = await run('tenant', 'issuer');
    expect(noAction.code).toBe(2);
    expect(noAction.stderr).toContain("'tenant issuer' needs a command: add, remove, list");
    const typo = await run('tenant', 'issuer', 'ad', 'acme', ISS_A);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("did you mean 'add'?");

    const help = await run('help', 'tenant', 'issuer', 'add');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: authsec tenant issuer add <tenant> <issuer> [--json]');
    expect((await run('tenant', '--help')).stdout).toContain('authsec tenant issuer list <tenant> [--json]');
  });

  describe('migrate', () => {
    // Puts a tenant back the way the release before issuers left it: bindings without an issuer column.
    const legacyTenant = async (id: string) => {
      expect((await run('tenant', 'create', id)).code).toBe(0);
      expect((await run('role', 'add', 'admin', '--tenant', id)).code).toBe(0);
      const sql = await engine.openSql();
      try {
        const s = `"tenant_${id}"`;
        await sql.query(`ALTER TABLE ${s}.bindings DROP CONSTRAINT bindings_pkey`);
        await sql.query(`ALTER TABLE ${s}.bindings DROP COLUMN issuer`);
        await sql.query(`ALTER TABLE ${s}.bindings ADD PRIMARY KEY (subject, kind, value)`);
        await sql.query(`DELETE FROM ${s}.schema_migrations WHERE component = 'directory' AND version > 1`);
        await sql.query(`INSERT INTO ${s}.bindings (subject, kind, value) VALUES ('carol', 'role', 'admin')`);
      } finally {
        await sql.close();
      }
    };

    it('refuses to guess between several issuers, naming the command, and migrates with --issuer', async () => {
      await legacyTenant('legacy-two');
      const refused = await runWith(TWO, 'migrate', '--json');
      expect(refused.code).toBe(1);
      expect(failure(refused).code).toBe('CONFIG_INVALID');
      expect(failure(refused).message).toContain('authsec migrate --issuer <url>');
      expect(failure(refused).message).toContain("tenant 'legacy-two'");

      const human = await runWith(TWO, 'migrate');
      expect(human.code).toBe(1);
      expect(human.stderr).toContain('run `authsec migrate --issuer <url>`');

      const bad = await runWith(TWO, 'migrate', '--issuer', 'nope');
      expect(bad.code).toBe(2);

      const done = await runWith(TWO, 'migrate', '--issuer', ISS_B);
      expect(done.code, done.stderr).toBe(0);
      const listed = json<{ grants: { subject: string; issuer: string | null }[] }>(
        await run('grants', '--tenant', 'legacy-two', '--json'),
      );
      expect(listed.grants.map((g) => [g.subject, g.issuer])).toEqual([['carol', ISS_B]]);
      // Nothing is left to migrate: several issuers no longer matter.
      expect((await runWith(TWO, 'migrate')).code).toBe(0);
    });

    it('gives rows without an issuer to the single AUTHSEC_ISSUER', async () => {
      await legacyTenant('legacy-one');
      const done = await run('migrate');
      expect(done.code, done.stderr).toBe(0);
      const listed = json<{ grants: { subject: string; issuer: string | null }[] }>(
        await run('grants', '--tenant', 'legacy-one', '--json'),
      );
      expect(listed.grants.map((g) => [g.subject, g.issuer])).toEqual([['carol', ISS_A]]);
    });
  });
});
