import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeVault, startFakeVault } from '../../core/test/secrets/helpers/fake-vault.js';
import { mask, parseGrace } from '../src/commands/service.js';
import { type CliResult, cli, ENGINES, type Engine, input, json, tempDir } from './helpers.js';

const SERVICE = 'GitHub API Integration';

interface GetJson {
  tenant: string;
  name: string;
  backend: string;
  version: number;
  keys: string[];
  credentials: Record<string, string>;
  revealed: boolean;
  serviceType: string | null;
  authType: string | null;
  url: string | null;
  metadata: Record<string, string>;
  requirement: unknown;
}

interface ListJson {
  tenant: string;
  backend: string;
  services: { name: string; keys: string[]; version: number; url: string | null }[];
}

/** stderr without the log lines (the suite runs with AUTHSEC_LOG_LEVEL=debug): the command's own message. */
function problem(result: CliResult): string {
  return result.stderr
    .split('\n')
    .filter((line) => line !== '' && !/^authsec: (debug|info|warning|error): /.test(line))
    .map((line) => `${line}\n`)
    .join('');
}

/** Every file under `dir`, recursively. */
function files(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

/**
 * Where the values live for one run of the suite: the encrypted store on an engine's database, or (later) an
 * in-test Vault beside it. The tenant registry and the audit log are always in the engine's database.
 */
interface Variant {
  readonly name: string;
  readonly backend: 'postgres' | 'vault';
  create(): Promise<{ engine: Engine; env: Readonly<Record<string, string>>; dispose(): Promise<void> }>;
}

/** PGlite with the fake Vault beside it, selected by AUTHSEC_VAULT_ADDR as in production. */
async function withVault(): Promise<{ engine: Engine; vault: FakeVault; env: Record<string, string> }> {
  const engine = await ENGINES[0]!.create();
  const vault = await startFakeVault({ tokens: ['cli-root-token'] });
  const env = { ...engine.env, AUTHSEC_VAULT_ADDR: vault.url, AUTHSEC_VAULT_TOKEN: 'cli-root-token' };
  return { engine, vault, env };
}

const VARIANTS: Variant[] = [
  ...ENGINES.map(({ name, create }) => ({
    name: `${name}, encrypted store`,
    backend: 'postgres' as const,
    async create() {
      const engine = await create();
      return { engine, env: engine.env, dispose: () => engine.dispose() };
    },
  })),
  {
    name: 'pglite, fake Vault',
    backend: 'vault',
    async create() {
      const { engine, vault, env } = await withVault();
      return {
        engine,
        env,
        async dispose() {
          await vault.close();
          await engine.dispose();
        },
      };
    },
  },
];

describe.each(VARIANTS)('service credentials ($name)', ({ backend, create }) => {
  let engine: Engine;
  let env: Readonly<Record<string, string>>;
  let dispose: () => Promise<void>;
  // Distinctive, and long enough that get shows its first 4 characters.
  const CANARY = `CANARY-${randomBytes(16).toString('hex')}`;
  const NEXT = `NEXTVAL-${randomBytes(16).toString('hex')}`;
  /** stdout and stderr of every run except the `get --reveal` ones, for the canary check. */
  const transcript: string[] = [];

  const run = async (args: readonly string[], stdin?: string): Promise<CliResult> => {
    const result = await cli(args, env, stdin === undefined ? {} : { stdin: input(stdin) });
    if (!args.includes('--reveal')) transcript.push(result.stdout, result.stderr);
    return result;
  };
  const ok = async (args: readonly string[], stdin?: string): Promise<CliResult> => {
    const result = await run(args, stdin);
    expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
    return result;
  };

  beforeAll(async () => {
    ({ engine, env, dispose } = await create());
    // Debug logging: any log line holding a value would land in the transcript.
    env = { ...env, AUTHSEC_LOG_LEVEL: 'debug' };
    await ok(['migrate']);
    await ok(['tenant', 'create', 'acme']);
    await ok(['tenant', 'create', 'other']);
  });
  afterAll(async () => {
    await dispose?.();
  });

  it('set reads the value from stdin, trimmed, and never prints it', async () => {
    const result = await ok(
      [
        'service',
        'set',
        SERVICE,
        '--tenant',
        'acme',
        '--type',
        'github',
        '--auth-type',
        'bearer',
        '--url',
        'https://api.github.com',
        '--metadata',
        'owner=octo-org',
        '--requirement',
        '{"roles":["admin"]}',
      ],
      `${CANARY}\n`,
    );
    expect(result.stdout).toMatch(
      new RegExp(`^Stored service '${SERVICE}' for tenant 'acme' in .+: version 1, keys access_token\\n$`),
    );
  });

  it('get shows the settings and a masked value; --json too', async () => {
    const human = await ok(['service', 'get', SERVICE, '--tenant', 'acme']);
    expect(human.stdout).toContain(`Service '${SERVICE}' in tenant 'acme'`);
    expect(human.stdout).toMatch(/\n\s*url\s+https:\/\/api\.github\.com\n/);
    expect(human.stdout).toMatch(/\n\s*metadata\s+owner=octo-org\n/);
    expect(human.stdout).toContain('{"roles":["admin"]}');
    expect(human.stdout).toMatch(new RegExp(`\\naccess_token\\s+CANA… \\(${CANARY.length} characters\\)\\n`));

    const asJson = json<GetJson>(await ok(['service', 'get', SERVICE, '--tenant', 'acme', '--json']));
    expect(asJson).toMatchObject({
      tenant: 'acme',
      name: SERVICE,
      backend,
      version: 1,
      keys: ['access_token'],
      serviceType: 'github',
      authType: 'bearer',
      url: 'https://api.github.com',
      metadata: { owner: 'octo-org' },
      requirement: { roles: ['admin'] },
      revealed: false,
      credentials: { access_token: mask(CANARY) },
    });
  });

  it('get --reveal prints the value, and records a service.read audit event', async () => {
    const human = await ok(['service', 'get', SERVICE, '--tenant', 'acme', '--reveal']);
    expect(human.stdout).toMatch(new RegExp(`\\naccess_token\\s+${CANARY}\\n`));
    const asJson = json<GetJson>(
      await ok(['service', 'get', SERVICE, '--tenant', 'acme', '--reveal', '--json']),
    );
    expect(asJson).toMatchObject({ revealed: true, credentials: { access_token: CANARY } });
    const tail = json<{ events: { action: string; target: string }[] }>(
      await ok(['audit', 'tail', '--tenant', 'acme', '--limit', '1', '--json']),
    );
    expect(tail.events).toEqual([
      expect.objectContaining({
        action: 'service.read',
        target: `service get ${SERVICE} --reveal (version 1)`,
      }),
    ]);
  });

  it('list shows names, type, url, keys and version, never values', async () => {
    await ok(
      ['service', 'set', 'slack', '--tenant', 'acme', '--json-input'],
      '{"bot_token":"xoxb-1","signing_secret":"s3"}',
    );
    const human = await ok(['service', 'list', '--tenant', 'acme']);
    const lines = human.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+TYPE\s+AUTH\s+URL\s+KEYS\s+VERSION\s+UPDATED$/);
    expect(lines[1]).toMatch(
      new RegExp(`^${SERVICE}\\s+github\\s+bearer\\s+https://api.github.com\\s+access_token\\s+1\\s+\\d{4}-`),
    );
    expect(lines[2]).toMatch(/^slack\s+-\s+-\s+-\s+bot_token, signing_secret\s+1\s+/);
    expect(human.stdout).not.toContain('xoxb-1');

    const asJson = json<ListJson>(await ok(['service', 'list', '--tenant', 'acme', '--json']));
    expect(asJson).toMatchObject({ tenant: 'acme', backend });
    expect(asJson.services.map((s) => [s.name, s.keys, s.version])).toEqual([
      [SERVICE, ['access_token'], 1],
      ['slack', ['bot_token', 'signing_secret'], 1],
    ]);
    expect(JSON.stringify(asJson)).not.toMatch(/xoxb-1|"s3"/);

    // Tenants do not see each other's services.
    expect(json<ListJson>(await ok(['service', 'list', '--tenant', 'other', '--json'])).services).toEqual([]);
    expect((await ok(['service', 'list', '--tenant', 'other'])).stdout).toMatch(
      /^No services in tenant 'other'/,
    );
    const elsewhere = await run(['service', 'get', SERVICE, '--tenant', 'other', '--json']);
    expect(elsewhere.code).toBe(1);
    expect(JSON.parse(problem(elsewhere))).toEqual({
      error: { code: 'NOT_FOUND', message: `service '${SERVICE}' does not exist in tenant 'other'` },
    });
  });

  it('rotate --grace: get shows the new value, get --version <old> reads the previous one within grace', async () => {
    const rotated = await ok(
      ['service', 'rotate', SERVICE, '--tenant', 'acme', '--grace', '10m', '--json'],
      NEXT,
    );
    const body = json<{
      version: number;
      previousVersion: number;
      graceMs: number;
      previousReadableUntil: string;
    }>(rotated);
    expect(body).toMatchObject({ version: 2, previousVersion: 1, graceMs: 600_000 });
    expect(Date.parse(body.previousReadableUntil) - Date.now()).toBeGreaterThan(500_000);

    const current = json<GetJson>(
      await ok(['service', 'get', SERVICE, '--tenant', 'acme', '--reveal', '--json']),
    );
    // Rotation changes values only: the settings stay.
    expect(current).toMatchObject({
      version: 2,
      credentials: { access_token: NEXT },
      url: 'https://api.github.com',
      requirement: { roles: ['admin'] },
    });
    const previous = json<GetJson>(
      await ok(['service', 'get', SERVICE, '--tenant', 'acme', '--version', '1', '--reveal', '--json']),
    );
    expect(previous).toMatchObject({ version: 1, credentials: { access_token: CANARY } });
    const masked = await ok(['service', 'get', SERVICE, '--tenant', 'acme', '--version', '1']);
    expect(masked.stdout).toContain('CANA…');

    const human = await ok(
      ['service', 'rotate', SERVICE, '--tenant', 'acme', '--grace', '0'],
      `${CANARY}-3\n`,
    );
    expect(human.stdout).toBe(
      `Rotated service '${SERVICE}' in tenant 'acme': version 3\nVersion 2 is no longer readable\n`,
    );
    const gone = await run(['service', 'get', SERVICE, '--tenant', 'acme', '--version', '2']);
    expect(gone.code).toBe(1);
    expect(problem(gone)).toBe(
      `authsec: version 2 of service '${SERVICE}' in tenant 'acme' does not exist or is past its rotation grace period\n`,
    );
  });

  it('rotate --key replaces one value and keeps the others; --json-input replaces all', async () => {
    await ok(['service', 'rotate', 'slack', '--tenant', 'acme', '--key', 'bot_token'], 'xoxb-2');
    let got = json<GetJson>(await ok(['service', 'get', 'slack', '--tenant', 'acme', '--reveal', '--json']));
    expect(got.credentials).toEqual({ bot_token: 'xoxb-2', signing_secret: 's3' });

    const noKey = await run(['service', 'rotate', 'slack', '--tenant', 'acme'], 'x');
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain(
      "authsec: --key: service 'slack' has no key 'access_token' (its keys: bot_token, signing_secret)",
    );

    await ok(['service', 'rotate', 'slack', '--tenant', 'acme', '--json-input'], '{"bot_token":"xoxb-3"}');
    got = json<GetJson>(await ok(['service', 'get', 'slack', '--tenant', 'acme', '--reveal', '--json']));
    expect(got.credentials).toEqual({ bot_token: 'xoxb-3' });
  });

  it('reads the value from --from-file', async () => {
    const dir = tempDir();
    const file = join(dir, 'token.txt');
    writeFileSync(file, `${CANARY}-file\n`);
    await ok(['service', 'set', 'Jira Cloud', '--tenant', 'acme', '--key', 'token', '--from-file', file]);
    const got = json<GetJson>(
      await ok(['service', 'get', 'Jira Cloud', '--tenant', 'acme', '--reveal', '--json']),
    );
    expect(got.credentials).toEqual({ token: `${CANARY}-file` });
  });

  it('rotate and get of a service that does not exist: exit 1 naming it', async () => {
    for (const args of [
      ['service', 'get', 'nope', '--tenant', 'acme'],
      ['service', 'rotate', 'nope', '--tenant', 'acme'],
    ]) {
      const result = await run(args, 'value');
      expect(result.code, args.join(' ')).toBe(1);
      expect(problem(result)).toBe("authsec: service 'nope' does not exist in tenant 'acme'\n");
    }
  });

  it('delete removes every version; get then exits 1 NOT_FOUND naming the service', async () => {
    const deleted = await ok(['service', 'delete', SERVICE, '--tenant', 'acme']);
    expect(deleted.stdout).toBe(`Deleted service '${SERVICE}' from tenant 'acme'\n`);
    const gone = await run(['service', 'get', SERVICE, '--tenant', 'acme', '--json']);
    expect(gone.code).toBe(1);
    expect(JSON.parse(problem(gone))).toEqual({
      error: { code: 'NOT_FOUND', message: `service '${SERVICE}' does not exist in tenant 'acme'` },
    });
    const again = await ok(['service', 'delete', SERVICE, '--tenant', 'acme', '--json']);
    expect(json(again)).toEqual({ tenant: 'acme', name: SERVICE, backend, deleted: false });
  });

  it('usage errors after the tenant check: empty or oversized stdin, bad JSON input; exit 2 naming the source', async () => {
    const cases: [string[], string | undefined, string][] = [
      [
        ['service', 'set', 'x', '--tenant', 'acme'],
        '  \n',
        'stdin: no value: pipe the value in, or use --from-file',
      ],
      [['service', 'set', 'x', '--tenant', 'acme'], undefined, 'stdin: no value'],
      [
        ['service', 'set', 'x', '--tenant', 'acme'],
        'v'.repeat(64 * 1024 + 1),
        'stdin: value too large (more than 65536 bytes)',
      ],
      [
        ['service', 'set', 'x', '--tenant', 'acme', '--json-input'],
        `{"token": ${CANARY}}`,
        'stdin: not valid JSON at position 10; --json-input expects a JSON object',
      ],
      [
        ['service', 'set', 'x', '--tenant', 'acme', '--json-input'],
        '["a"]',
        'stdin: --json-input expects a JSON object',
      ],
      [
        ['service', 'set', 'x', '--tenant', 'acme', '--json-input'],
        '{"token":""}',
        "stdin: the value of 'token' must be a non-empty string",
      ],
      [
        ['service', 'set', 'x', '--tenant', 'acme', '--from-file', '/nonexistent/token'],
        undefined,
        '--from-file: cannot read "/nonexistent/token" (ENOENT)',
      ],
    ];
    for (const [args, stdin, message] of cases) {
      const result = await run(args, stdin);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toContain(`authsec: ${message}`);
      expect(result.stdout).toBe('');
    }
    expect(
      json<ListJson>(await ok(['service', 'list', '--tenant', 'acme', '--json'])).services.map((s) => s.name),
    ).not.toContain('x');
  });

  it('a tenant that does not exist: exit 1 naming it, for every service command', async () => {
    for (const args of [
      ['service', 'set', 'x', '--tenant', 'nope'],
      ['service', 'get', 'x', '--tenant', 'nope'],
      ['service', 'list', '--tenant', 'nope'],
      ['service', 'rotate', 'x', '--tenant', 'nope'],
      ['service', 'delete', 'x', '--tenant', 'nope'],
    ]) {
      const result = await run(args, 'value');
      expect(result.code, args.join(' ')).toBe(1);
      expect(problem(result)).toBe("authsec: tenant 'nope' does not exist\n");
    }
  });

  it('records every change as admin.change without a value, and the audit chain verifies', async () => {
    const tail = await ok(['audit', 'tail', '--tenant', 'acme', '--limit', '1000', '--json']);
    const { events } = json<{ events: { action: string; target: string; subject: string }[] }>(tail);
    const changes = events.filter((e) => e.target.startsWith('service '));
    expect(changes.map((e) => [e.action, e.target])).toEqual([
      ['admin.change', `service set ${SERVICE} (version 1; keys access_token)`],
      ['service.read', `service get ${SERVICE} --reveal (version 1)`],
      ['service.read', `service get ${SERVICE} --reveal (version 1)`],
      ['admin.change', 'service set slack (version 1; keys bot_token,signing_secret)'],
      ['admin.change', `service rotate ${SERVICE} (version 2; grace 10m)`],
      ['service.read', `service get ${SERVICE} --reveal (version 2)`],
      ['service.read', `service get ${SERVICE} --reveal (version 1)`],
      ['admin.change', `service rotate ${SERVICE} (version 3; grace 0)`],
      ['admin.change', 'service rotate slack (version 2; grace 0)'],
      ['service.read', 'service get slack --reveal (version 2)'],
      ['admin.change', 'service rotate slack (version 3; grace 0)'],
      ['service.read', 'service get slack --reveal (version 3)'],
      ['admin.change', 'service set Jira Cloud (version 1; keys token)'],
      ['service.read', 'service get Jira Cloud --reveal (version 1)'],
      ['admin.change', `service delete ${SERVICE}`],
    ]);
    for (const e of changes) expect(e.subject).toMatch(/^cli:./);
    for (const value of [CANARY, NEXT, 'xoxb-']) expect(tail.stdout).not.toContain(value);
    const verified = await ok(['audit', 'verify', '--tenant', 'acme']);
    expect(verified.stdout).toMatch(/^OK: /);
  });

  it('the canary value appears in no output but get --reveal, and nowhere in the embedded database files', async () => {
    const all = transcript.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    for (const value of [CANARY, NEXT]) expect(all).not.toContain(value);
    if (engine.name === 'pglite') {
      const needle = Buffer.from(CANARY.slice(7), 'utf8');
      const holding = files(join(engine.dataDir, 'pglite')).filter((f) => readFileSync(f).includes(needle));
      expect(holding).toEqual([]);
    }
  });
});

describe('service usage errors: exit 2 naming the flag, before any database is opened', () => {
  // No database: a command that got past the command line would fail with exit 1 instead.
  const env = {
    AUTHSEC_DATA_DIR: '/nonexistent/authsec-data',
    AUTHSEC_DATABASE_URL: 'postgresql://127.0.0.1:1/none',
  };
  const cases: [string, string[], string][] = [
    ['missing --tenant', ['service', 'set', 'x'], '--tenant is required'],
    ['missing name', ['service', 'get', '--tenant', 'acme'], '<name> is required'],
    [
      'a value as --value: no such flag',
      ['service', 'set', 'x', '--tenant', 'acme', '--value', 'hunter2-secret'],
      "unknown flag --value for 'service set'; values are read from stdin or --from-file, never from an argument",
    ],
    [
      'a value as a second argument, not repeated',
      ['service', 'rotate', 'x', 'hunter2-secret', '--tenant', 'acme'],
      'unexpected argument; values are read from stdin or --from-file, never from an argument',
    ],
    [
      'bad --grace',
      ['service', 'rotate', 'x', '--tenant', 'acme', '--grace', '10'],
      '--grace: expected a duration such as 10m, 3600s, 1h or 0, got "10"',
    ],
    [
      'bad --grace unit',
      ['service', 'rotate', 'x', '--tenant', 'acme', '--grace', '5y'],
      '--grace: expected a duration',
    ],
    [
      'too long --grace',
      ['service', 'rotate', 'x', '--tenant', 'acme', '--grace', '31d'],
      '--grace: at most 30d',
    ],
    [
      'bad --requirement JSON',
      ['service', 'set', 'x', '--tenant', 'acme', '--requirement', '{"roles":]'],
      '--requirement: not valid JSON at position 9',
    ],
    [
      'a --requirement the policy refuses',
      ['service', 'set', 'x', '--tenant', 'acme', '--requirement', '{"role":["admin"]}'],
      "--requirement: requirement: unknown key 'role'",
    ],
    [
      'bad --version',
      ['service', 'get', 'x', '--tenant', 'acme', '--version', '0'],
      '--version: expected a version number',
    ],
    [
      'bad --url',
      ['service', 'set', 'x', '--tenant', 'acme', '--url', 'ftp://h'],
      '--url: expected an http:// or https:// URL',
    ],
    [
      'credentials in --url',
      ['service', 'set', 'x', '--tenant', 'acme', '--url', 'https://u:p@h'],
      '--url: must not hold credentials',
    ],
    [
      'bad --metadata',
      ['service', 'set', 'x', '--tenant', 'acme', '--metadata', 'owner'],
      '--metadata: expected key=value',
    ],
    [
      'bad --key',
      ['service', 'set', 'x', '--tenant', 'acme', '--key', 'a b'],
      '--key: expected 1 to 64 letters',
    ],
    [
      '--key with --json-input',
      ['service', 'set', 'x', '--tenant', 'acme', '--key', 'k', '--json-input'],
      '--key cannot be used with --json-input',
    ],
    [
      'a name with a control character',
      ['service', 'get', 'a\u001bb', '--tenant', 'acme'],
      '<name>: invalid service name "a\\u001bb"',
    ],
    [
      'a name with a leading space',
      ['service', 'get', ' x', '--tenant', 'acme'],
      '<name>: invalid service name',
    ],
    [
      'a name too long',
      ['service', 'delete', 'n'.repeat(129), '--tenant', 'acme'],
      '<name>: invalid service name',
    ],
    ['a bad tenant id', ['service', 'list', '--tenant', 'Acme'], '--tenant: invalid tenant id "Acme"'],
  ];

  it.each(cases)('%s', async (_, args, message) => {
    const result = await cli(args, env, { stdin: input('value') });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`authsec: ${message}`);
    expect(result.stderr).not.toContain('hunter2');
  });

  it('help lists the service commands', async () => {
    const top = await cli(['--help'], {});
    for (const command of ['set', 'get', 'list', 'rotate', 'delete'])
      expect(top.stdout).toContain(`  service ${command}`);
    const set = await cli(['service', 'set', '--help'], {});
    expect(set.stdout).toContain(
      'Usage: authsec service set <name> --tenant <tenant> [--type <type>] [--auth-type <auth>] [--url <url>] [--key <key>] [--json-input] [--from-file <file>] [--metadata <key=value>]... [--requirement <json>] [--json]',
    );
    expect(set.stdout).toContain('never from an argument');
  });

  it('masks values and reads durations', () => {
    expect(mask('short')).toBe('********');
    expect(mask('x'.repeat(19))).toBe('********');
    expect(mask(`ghp_${'a'.repeat(36)}`)).toBe('ghp_… (40 characters)');
    expect(parseGrace('0', 'c')).toBe(0);
    expect(parseGrace('3600s', 'c')).toBe(3_600_000);
    expect(parseGrace('10m', 'c')).toBe(600_000);
    expect(parseGrace('2h', 'c')).toBe(7_200_000);
    expect(parseGrace('250ms', 'c')).toBe(250);
    expect(parseGrace(undefined, 'c')).toBe(0);
    expect(() => parseGrace('-1s', 'c')).toThrow('--grace');
  });
});

describe('service commands on an unavailable Vault', () => {
  let engine: Engine;
  let vault: FakeVault;
  let env: Record<string, string>;
  beforeAll(async () => {
    ({ engine, vault, env } = await withVault());
    for (const args of [['migrate'], ['tenant', 'create', 'acme']]) {
      const result = await cli(args, env);
      expect(result.code, result.stderr).toBe(0);
    }
    const set = await cli(['service', 'set', 'github', '--tenant', 'acme'], env, {
      stdin: input('ghp_vault_value'),
    });
    expect(set.code, set.stderr).toBe(0);
  });
  afterAll(async () => {
    await vault?.close();
    await engine?.dispose();
  });

  it('a sealed Vault: exit 1 SERVICE_UNAVAILABLE naming AUTHSEC_VAULT_ADDR, nothing printed on stdout', async () => {
    vault.seal();
    try {
      for (const args of [
        ['service', 'get', 'github', '--tenant', 'acme', '--json'],
        ['service', 'list', '--tenant', 'acme', '--json'],
      ]) {
        const result = await cli(args, env);
        expect(result.code, args.join(' ')).toBe(1);
        expect(result.stdout).toBe('');
        const { error } = JSON.parse(problem(result)) as { error: { code: string; message: string } };
        expect(error.code).toBe('SERVICE_UNAVAILABLE');
        expect(error.message).toContain(`check AUTHSEC_VAULT_ADDR (${vault.url}`);
      }
    } finally {
      vault.unseal();
    }
    const again = await cli(['service', 'get', 'github', '--tenant', 'acme', '--reveal', '--json'], env);
    expect(again.code, again.stderr).toBe(0);
    expect(json<GetJson>(again).credentials).toEqual({ access_token: 'ghp_vault_value' });
  });

  it('a refused token: exit 1, naming the Vault variables, and the token never printed', async () => {
    const result = await cli(['service', 'list', '--tenant', 'acme'], {
      ...env,
      AUTHSEC_VAULT_TOKEN: 'wrong-token',
    });
    expect(result.code).toBe(1);
    expect(problem(result)).toMatch(/^authsec: Vault refused .+; check AUTHSEC_VAULT_ADDR .+\n$/);
    expect(result.stderr).not.toContain('wrong-token');
  });

  it('a tenant unknown to the registry is refused before Vault is asked', async () => {
    const before = vault.requests.length;
    const result = await cli(['service', 'list', '--tenant', 'nope'], env);
    expect(result.code).toBe(1);
    expect(problem(result)).toBe("authsec: tenant 'nope' does not exist\n");
    expect(vault.requests.length).toBe(before);
  });
});
