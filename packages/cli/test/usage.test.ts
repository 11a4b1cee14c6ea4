import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonErrorPosition } from '../src/json.js';
import { cli, ENGINES, type Engine, json, tempDir } from './helpers.js';

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

describe('usage errors: exit 2, naming the command, flag or argument, before any database is opened', () => {
  const dataDir = tempDir();
  // An unreachable database: if any of these commands tried SQL, it would fail with exit 1 instead.
  let env: Record<string, string>;
  beforeAll(async () => {
    env = {
      AUTHSEC_DATA_DIR: dataDir,
      AUTHSEC_DATABASE_URL: `postgresql://postgres@127.0.0.1:${await closedPort()}/none`,
    };
  });
  afterAll(() => {
    expect(existsSync(join(dataDir, 'pglite'))).toBe(false);
  });

  const cases: [string, string[], string][] = [
    [
      'unknown command, nearest suggested',
      ['tenat', 'list'],
      "unknown command 'tenat'; did you mean 'tenant'?",
    ],
    ['unknown subcommand', ['role', 'ad', 'x'], "unknown role command 'ad'; did you mean 'add'?"],
    ['missing subcommand', ['audit'], "'audit' needs a command: tail, verify, checkpoint"],
    ['missing --tenant', ['role', 'list'], '--tenant is required'],
    ['--tenant without a value', ['role', 'list', '--tenant'], '--tenant needs a value'],
    ['unknown flag, nearest suggested', ['role', 'list', '--tenat', 'acme'], 'unknown flag --tenat'],
    [
      'bad placement',
      ['tenant', 'create', 'acme', '--placement', 'cloud'],
      "--placement: \"cloud\" is not one of 'schema', 'database'",
    ],
    ['missing argument', ['tenant', 'create'], '<tenant> is required'],
    ['extra argument', ['tenant', 'list', 'acme'], 'unexpected argument "acme"'],
    [
      'invalid JSON requirement, with the position',
      ['check', 'alice', '--tenant', 'acme', '--tool-requirement', '{"roles":]'],
      '--tool-requirement: not valid JSON at position 9',
    ],
    [
      'a requirement the policy refuses',
      ['check', 'alice', '--tenant', 'acme', '--tool-requirement', '{"role":["admin"]}'],
      "--tool-requirement: requirement: unknown key 'role'",
    ],
    [
      'claims that are not an object',
      ['check', 'alice', '--tenant', 'acme', '--tool-requirement', '{}', '--claims', '[1]'],
      '--claims: a JSON object of token claims is required',
    ],
    ['grant without values', ['grant', 'alice', '--tenant', 'acme'], 'give at least one of --role'],
    [
      'a bad --limit',
      ['audit', 'tail', '--tenant', 'acme', '--limit', 'ten'],
      '--limit: expected a whole number',
    ],
    [
      'a boolean flag with a value',
      ['audit', 'tail', '--tenant', 'acme', '--follow=yes'],
      '--follow takes no value',
    ],
    [
      'flags before the command',
      ['--tenant', 'acme', 'role', 'list'],
      'unknown flag --tenant before the command; flags go after the command',
    ],
  ];

  it.each(cases)('%s', async (_, args, message) => {
    const result = await cli(args, env);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`authsec: ${message}`);
    expect(result.stderr).toMatch(/Run 'authsec help[^']*' for usage\./);
  });

  it('with --json, a usage error is one JSON document on stderr and stdout stays empty', async () => {
    const result = await cli(['role', 'list', '--json'], env);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(JSON.parse(result.stderr)).toEqual({ error: { code: 'USAGE', message: '--tenant is required' } });
  });

  const hostile = ['../x', "a'b", 'A', 'tenänt', '-x', 'x'.repeat(200), 'a;drop', ''];
  it.each(hostile.map((id) => [id.length > 20 ? `${id.length} characters` : JSON.stringify(id), id]))(
    'refuses the hostile tenant id %s before SQL, naming it',
    async (_, id) => {
      for (const args of [
        ['tenant', 'create', '--', id],
        ['role', 'list', `--tenant=${id}`],
        ['check', 'alice', `--tenant=${id}`, '--tool-requirement', '{}'],
      ]) {
        const result = await cli(args, env);
        expect(result.code, result.stderr).toBe(2);
        expect(result.stderr).toContain(`invalid tenant id ${JSON.stringify(id.slice(0, 60))}`);
        expect(result.stderr).not.toContain('unavailable');
      }
    },
  );

  it('finds the position of a JSON mistake', () => {
    expect(jsonErrorPosition('{"a":1}')).toBeUndefined();
    expect(jsonErrorPosition('{"roles":]')).toBe(9);
    expect(jsonErrorPosition('{roles')).toBe(1);
    expect(jsonErrorPosition('{"a":1}x')).toBe(7);
    expect(jsonErrorPosition('')).toBe(0);
    expect(jsonErrorPosition('"\\u12x4"')).toBe(5);
    expect(jsonErrorPosition('[1,]')).toBe(3);
  });
});

describe('help and version', () => {
  it('prints every command in the top-level help, exit 0', async () => {
    for (const args of [['--help'], ['help'], ['-h']]) {
      const result = await cli(args, {});
      expect(result.code).toBe(0);
      for (const command of [
        'migrate',
        'tenant create',
        'permission list',
        'grant',
        'check',
        'audit verify',
      ]) {
        expect(result.stdout).toContain(`  ${command}`);
      }
    }
  });

  it('prints a command help from help <command> or --help', async () => {
    const a = await cli(['help', 'grant'], {});
    const b = await cli(['grant', '--help'], {});
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout).toContain(
      'Usage: authsec grant <subject> --tenant <tenant> [--issuer <url>] [--role <role>]... [--group <group>]... [--scope <scope>]...',
    );
    const group = await cli(['tenant', '--help'], {});
    expect(group.stdout).toContain('authsec tenant create <tenant> [--placement schema|database] [--json]');
    const unknown = await cli(['help', 'tenat'], {});
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("did you mean 'tenant'?");
  });

  it('prints the version, and asks for a command when there is none', async () => {
    const version = await cli(['--version'], {});
    expect(version).toMatchObject({ code: 0, stdout: expect.stringMatching(/^\d+\.\d+\.\d+\n$/) });
    const none = await cli([], {});
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('authsec: a command is required');
  });
});

describe('configuration and availability failures: exit 1, naming the variable, no stack trace', () => {
  it('refuses an unknown AUTHSEC_ variable with the nearest name', async () => {
    const result = await cli(['tenant', 'list'], { AUTHSEC_DATA_DIR: tempDir(), AUTHSEC_DATABSE_URL: 'x' });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'authsec: AUTHSEC_DATABSE_URL: unknown variable; did you mean AUTHSEC_DATABASE_URL?\n',
    );
  });

  it('refuses a malformed variable, naming it', async () => {
    const result = await cli(['tenant', 'list', '--json'], { AUTHSEC_DATABASE_URL: 'mysql://db/x' });
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stderr)).toEqual({
      error: {
        code: 'CONFIG_INVALID',
        message: 'AUTHSEC_DATABASE_URL: must start with postgres:// or postgresql://',
      },
    });
  });

  it('requires AUTHSEC_MASTER_KEY in production', async () => {
    const result = await cli(['tenant', 'list'], { AUTHSEC_DATA_DIR: tempDir(), NODE_ENV: 'production' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('AUTHSEC_MASTER_KEY is required in production');
  });

  it('reports an unreachable database clearly', async () => {
    const port = await closedPort();
    const env = {
      AUTHSEC_DATA_DIR: tempDir(),
      AUTHSEC_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'),
      AUTHSEC_DATABASE_URL: `postgresql://postgres@127.0.0.1:${port}/authsec`,
    };
    const result = await cli(['tenant', 'list'], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `authsec: The database is unavailable (connect ECONNREFUSED 127.0.0.1:${port}); check AUTHSEC_DATABASE_URL and that the server is running\n`,
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
    const asJson = await cli(['migrate', '--json'], env);
    expect(asJson.code).toBe(1);
    expect(JSON.parse(asJson.stderr)).toMatchObject({ error: { code: 'SERVICE_UNAVAILABLE' } });
  });
});

describe.each(ENGINES)('unknown and unmigrated tenants ($name)', ({ create }) => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await create();
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  it('asks for migrate on a fresh database', async () => {
    const result = await cli(['tenant', 'list'], engine.env);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('authsec: The master database is not migrated: run `authsec migrate`\n');
  });

  it('names a tenant that does not exist, exit 1', async () => {
    expect((await cli(['migrate'], engine.env)).code).toBe(0);
    for (const args of [
      ['role', 'list', '--tenant', 'nope'],
      ['grant', 'alice', '--tenant', 'nope', '--role', 'admin'],
      ['check', 'alice', '--tenant', 'nope', '--tool-requirement', '{}'],
      ['tenant', 'disable', 'nope'],
      ['audit', 'tail', '--tenant', 'nope'],
    ]) {
      const result = await cli(args, engine.env);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr).toBe("authsec: tenant 'nope' does not exist\n");
    }
    const asJson = await cli(['role', 'list', '--tenant', 'nope', '--json'], engine.env);
    expect(JSON.parse(asJson.stderr)).toEqual({
      error: { code: 'TENANT_UNKNOWN', message: "tenant 'nope' does not exist" },
    });
  });

  it('keeps a development master key in the data folder when none is configured', async () => {
    const { AUTHSEC_MASTER_KEY: _, ...env } = engine.env;
    const result = await cli(['tenant', 'create', 'devkey'], env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('AUTHSEC_MASTER_KEY is not set: using a development key file');
    expect(existsSync(join(engine.dataDir, 'master.key'))).toBe(true);
    const verified = await cli(['audit', 'verify', '--tenant', 'devkey', '--json'], env);
    expect(json(verified)).toMatchObject({ ok: true, rows: 1 });
  });
});
