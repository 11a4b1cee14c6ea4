import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../src/logger.js';
import { createServiceAccessFactory } from '../../src/secrets/access.js';
import { createVaultSecretBackend, type VaultSecretBackendOptions } from '../../src/secrets/vault.js';
import { outcome, secretBackendContract, testClock } from './helpers/contract.js';
import { principal, testEngine } from './helpers/engine.js';
import { type FakeVault, startFakeVault } from './helpers/fake-vault.js';

const TOKEN = 'root-token';
const A = 'acme-corp';
const B = 'globex';

/** Log lines written by a backend, parsed. */
function captureLogger() {
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', stream: { write: (chunk: string) => lines.push(chunk) } });
  return { logger, lines, text: () => lines.join('') };
}

async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// The contract, against the fake.
secretBackendContract('vault (fake Vault)', async () => {
  const fake = await startFakeVault();
  const clock = testClock();
  const options: VaultSecretBackendOptions = {
    addr: fake.url,
    token: TOKEN,
    clock: clock.clock,
    logger: silentLogger,
  };
  const backend = createVaultSecretBackend(options);
  const other = createVaultSecretBackend(options);
  return {
    backend,
    other,
    clock,
    tenants: [A, B],
    io: () => fake.requests.length,
    async close() {
      await backend.close();
      await other.close();
      await fake.close();
    },
  };
});

// The contract, against a real Vault when one is configured.
const REAL_ADDR = process.env.AUTHSEC_VAULT_ADDR;
const REAL_TOKEN = process.env.AUTHSEC_VAULT_TOKEN;
if (REAL_ADDR && REAL_TOKEN) {
  secretBackendContract(`vault (real Vault at ${REAL_ADDR})`, async () => {
    const clock = testClock();
    // A folder of its own, removed at the end.
    const pathPrefix = `authsec-test-${randomBytes(4).toString('hex')}`;
    const options: VaultSecretBackendOptions = {
      addr: REAL_ADDR,
      token: REAL_TOKEN,
      namespace: process.env.AUTHSEC_VAULT_NAMESPACE,
      mount: process.env.AUTHSEC_VAULT_MOUNT ?? 'secret',
      pathPrefix,
      clock: clock.clock,
      logger: silentLogger,
    };
    const backend = createVaultSecretBackend(options);
    const other = createVaultSecretBackend(options);
    let io = 0;
    return {
      backend,
      other,
      clock,
      tenants: [A, B],
      // Counted by the fake only; against a real Vault, every hostile id is still refused by code.
      io: () => io,
      async close() {
        for (const tenant of [A, B]) {
          for (const s of await backend.list(tenant)) await backend.delete(tenant, s.name);
        }
        io = 0;
        await backend.close();
        await other.close();
      },
    };
  });
} else {
  process.stderr.write('skip: AUTHSEC_VAULT_ADDR/AUTHSEC_VAULT_TOKEN not set: real Vault tests skipped\n');
}

describe('vault backend against the fake Vault', () => {
  let fake: FakeVault;
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    fake = await startFakeVault({
      approle: { roleId: 'role-1', secretId: 'secret-1', leaseSeconds: 60 },
      renewableTokens: [{ id: 'renewable-token', ttlSeconds: 90 }],
      mounts: ['secret', 'kv'],
    });
  });
  afterEach(async () => {
    fake.unseal();
    fake.slow(0);
    fake.allowAll();
    for (const close of closers.splice(0)) await close();
  });
  afterAll(async () => {
    await fake?.close();
  });

  const open = (options: Partial<VaultSecretBackendOptions> = {}) => {
    const backend = createVaultSecretBackend({
      addr: fake.url,
      token: TOKEN,
      logger: silentLogger,
      ...options,
    });
    closers.push(() => backend.close());
    return backend;
  };
  const since = (start: number) => fake.requests.slice(start);

  it('one KV v2 path per tenant and service: slug in the path, exact name in custom metadata', async () => {
    const backend = open();
    await backend.write(A, {
      name: 'GitHub API Integration',
      url: 'https://api.github.example',
      credentials: { access_token: 'ghp_layout' },
      requirement: { scopes: ['read'] },
      metadata: { owner: 'me' },
    });
    const entry = fake.entry('secret', 'authsec/acme-corp/github-api-integration');
    expect(entry?.current_version).toBe(1);
    // The data is the credentials as they are: what `vault kv get` shows an operator.
    expect(entry?.versions.get(1)?.data).toEqual({ access_token: 'ghp_layout' });
    expect(entry?.custom_metadata).toMatchObject({
      authsec_name: 'GitHub API Integration',
      authsec_url: 'https://api.github.example',
      authsec_keys: '["access_token"]',
      authsec_requirement: '{"scopes":["read"]}',
      'authsec_meta.owner': 'me',
    });
    expect(JSON.stringify(entry?.custom_metadata)).not.toContain('ghp_layout');
  });

  it('sends X-Vault-Token on every request, and X-Vault-Namespace when configured, with separate data', async () => {
    const start = fake.requests.length;
    const team = open({ namespace: 'team-a' });
    await team.write(A, { name: 'Namespaced', credentials: { token: 'in-team-a' } });
    expect((await team.read(A, 'Namespaced'))?.credentials).toEqual({ token: 'in-team-a' });
    await team.list(A);
    const sent = since(start);
    expect(sent.length).toBeGreaterThan(3);
    for (const r of sent) {
      expect(r.token).toBe(TOKEN);
      expect(r.namespace).toBe('team-a');
    }
    // The root namespace does not see it.
    expect(await open().read(A, 'Namespaced')).toBeUndefined();
    expect(fake.entry('secret', 'authsec/acme-corp/namespaced', 'team-a')).toBeDefined();
    expect(fake.entry('secret', 'authsec/acme-corp/namespaced')).toBeUndefined();
  });

  it('mount and path prefix are configurable', async () => {
    const backend = open({ mount: 'kv', pathPrefix: 'apps/authsec' });
    await backend.write(A, { name: 'Mounted', credentials: { token: 'on-kv' } });
    expect(fake.entry('kv', 'apps/authsec/acme-corp/mounted')).toBeDefined();
    expect((await backend.list(A)).map((s) => s.name)).toEqual(['Mounted']);
    expect(() => open({ mount: '../x' })).toThrow(/mount/);
    expect(() => open({ pathPrefix: 'a//b' })).toThrow(/pathPrefix/);
  });

  it('two names with one slug: the second is refused and never reads the first', async () => {
    const backend = open();
    await backend.write(A, { name: 'Slug Clash', credentials: { token: 'first-owner' } });
    expect(await outcome(backend.write(A, { name: 'slug clash', credentials: { token: 'x' } }))).toBe(
      'BAD_REQUEST',
    );
    expect(await backend.read(A, 'slug clash')).toBeUndefined();
    expect(await backend.delete(A, 'slug clash')).toBe(false);
    expect((await backend.read(A, 'Slug Clash'))?.credentials).toEqual({ token: 'first-owner' });
  });

  it('reads a secret an operator wrote with the Vault CLI (no AuthSec metadata) by its path name', async () => {
    const response = await fetch(`${fake.url}/v1/secret/data/authsec/acme-corp/legacy-service`, {
      method: 'POST',
      headers: { 'x-vault-token': TOKEN, 'content-type': 'application/json' },
      body: JSON.stringify({ data: { access_token: 'from-cli', port: 8080 } }),
    });
    expect(response.status).toBe(200);
    const backend = open();
    expect((await backend.read(A, 'Legacy Service'))?.credentials).toEqual({
      access_token: 'from-cli',
      port: '8080',
    });
    expect((await backend.list(A)).find((s) => s.name === 'legacy-service')).toMatchObject({
      version: 1,
      keys: [],
    });
  });

  it('rotation destroys expired versions in Vault too, not only in our answers', async () => {
    const clock = testClock();
    const backend = open({ clock: clock.clock });
    await backend.write(A, { name: 'Destroyed', credentials: { token: 'd1' } });
    await backend.rotate(A, 'Destroyed', { token: 'd2' }, { graceMs: 10_000 });
    const entry = () => fake.entry('secret', 'authsec/acme-corp/destroyed')!;
    expect(entry().versions.get(1)?.destroyed).toBe(false);
    expect(entry().custom_metadata?.authsec_grace).toBe(JSON.stringify({ 1: clock.now + 10_000 }));
    clock.advance(10_001);
    await backend.rotate(A, 'Destroyed', { token: 'd3' });
    expect(entry().versions.get(1)?.destroyed).toBe(true);
    expect(entry().versions.get(2)?.destroyed).toBe(true);
    expect(entry().versions.get(3)?.data).toEqual({ token: 'd3' });
    expect(fake.dump()).not.toContain('"d1"');
  });

  it('AppRole: logs in at first use (not at creation), renews before expiry, logs in again when refused', async () => {
    const clock = testClock();
    const logins = fake.logins;
    const renewals = fake.renewals;
    const start = fake.requests.length;
    const backend = open({ token: undefined, roleId: 'role-1', secretId: 'secret-1', clock: clock.clock });
    expect(fake.logins).toBe(logins);
    await backend.write(A, { name: 'Via AppRole', credentials: { token: 'approle-value' } });
    expect(fake.logins).toBe(logins + 1);
    const login = since(start)[0]!;
    expect(login).toMatchObject({ method: 'POST', path: '/v1/auth/approle/login', token: undefined });
    expect(JSON.parse(login.body)).toEqual({ role_id: 'role-1', secret_id: 'secret-1' });
    const issued = fake.issuedTokens.at(-1)!;
    for (const r of since(start).slice(1)) expect(r.token).toBe(issued);

    // Two thirds of the 60 s lease later, the next call renews first.
    clock.advance(41_000);
    expect((await backend.read(A, 'Via AppRole'))?.credentials).toEqual({ token: 'approle-value' });
    expect(fake.renewals).toBe(renewals + 1);
    expect(fake.logins).toBe(logins + 1);

    // The token is revoked behind our back: one fresh login, and the call still succeeds.
    fake.revoke(issued);
    expect((await backend.read(A, 'Via AppRole'))?.credentials).toEqual({ token: 'approle-value' });
    expect(fake.logins).toBe(logins + 2);
    expect(fake.issuedTokens.at(-1)).not.toBe(issued);

    // Past the lease without a renewal: a new login before the call.
    clock.advance(120_000);
    await backend.read(A, 'Via AppRole');
    expect(fake.logins).toBe(logins + 3);
  });

  it('wrong AppRole credentials: SERVICE_UNAVAILABLE with a clear log, never a crash', async () => {
    const captured = captureLogger();
    const backend = open({ token: undefined, roleId: 'role-1', secretId: 'wrong', logger: captured.logger });
    expect(await outcome(backend.read(A, 'Anything'))).toBe('SERVICE_UNAVAILABLE');
    expect(captured.text()).toContain('AppRole login');
    expect(captured.text()).not.toContain('wrong');
  });

  it('a renewable token is looked up once and renewed after two thirds of its TTL', async () => {
    const clock = testClock();
    const renewals = fake.renewals;
    const start = fake.requests.length;
    const backend = open({ token: 'renewable-token', clock: clock.clock });
    await backend.write(A, { name: 'Renewed', credentials: { token: 'r' } });
    expect(since(start)[0]).toMatchObject({ method: 'GET', path: '/v1/auth/token/lookup-self' });
    clock.advance(30_000);
    await backend.read(A, 'Renewed');
    expect(fake.renewals).toBe(renewals);
    clock.advance(31_000);
    await backend.read(A, 'Renewed');
    expect(fake.renewals).toBe(renewals + 1);
    const renewal = since(start).find((r) => r.path === '/v1/auth/token/renew-self');
    expect(renewal).toMatchObject({ method: 'POST', token: 'renewable-token' });
    // renew: false turns it off.
    const quiet = open({ token: 'renewable-token', clock: clock.clock, renew: false });
    clock.advance(100_000);
    await quiet.read(A, 'Renewed');
    expect(fake.renewals).toBe(renewals + 1);
  });

  it('sealed: SERVICE_UNAVAILABLE for every operation, and back to normal once unsealed', async () => {
    const backend = open();
    await backend.write(A, { name: 'Seal Test', credentials: { token: 'sealed-value' } });
    fake.seal();
    expect(await outcome(backend.read(A, 'Seal Test'))).toBe('SERVICE_UNAVAILABLE');
    expect(await outcome(backend.list(A))).toBe('SERVICE_UNAVAILABLE');
    expect(await outcome(backend.write(A, { name: 'Seal Test', credentials: { token: 'x' } }))).toBe(
      'SERVICE_UNAVAILABLE',
    );
    expect(await outcome(backend.rotate(A, 'Seal Test', { token: 'x' }))).toBe('SERVICE_UNAVAILABLE');
    expect(await outcome(backend.delete(A, 'Seal Test'))).toBe('SERVICE_UNAVAILABLE');
    expect(await outcome(backend.currentVersion(A, 'Seal Test'))).toBe('SERVICE_UNAVAILABLE');
    fake.unseal();
    expect((await backend.read(A, 'Seal Test'))?.credentials).toEqual({ token: 'sealed-value' });
  });

  it('down (connection refused): SERVICE_UNAVAILABLE', async () => {
    const backend = open({ addr: `http://127.0.0.1:${await unusedPort()}` });
    const error = await backend.read(A, 'Anything').catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('SERVICE_UNAVAILABLE');
    expect(String((error as Error).message)).toMatch(/unreachable/);
  });

  it('slow: SERVICE_UNAVAILABLE within timeoutMs, whatever the operation', async () => {
    const backend = open({ timeoutMs: 300 });
    await backend.write(A, { name: 'Slow Test', credentials: { token: 'slow' } });
    fake.slow(5_000);
    for (const op of [() => backend.read(A, 'Slow Test'), () => backend.list(A)]) {
      const started = Date.now();
      expect(await outcome(op())).toBe('SERVICE_UNAVAILABLE');
      expect(Date.now() - started).toBeLessThan(300 + 700);
    }
    // AppRole login is inside the same bound.
    const approle = open({ token: undefined, roleId: 'role-1', secretId: 'secret-1', timeoutMs: 300 });
    const started = Date.now();
    expect(await outcome(approle.read(A, 'Slow Test'))).toBe('SERVICE_UNAVAILABLE');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('403 (a token without rights): SERVICE_UNAVAILABLE with a clear server-side log, never a value of another tenant', async () => {
    const captured = captureLogger();
    const backend = open({ logger: captured.logger });
    await backend.write(A, { name: 'Tenant Service', credentials: { token: 'tenant-a-only' } });
    fake.deny(`secret/data/authsec/${B}/`);
    fake.deny(`secret/metadata/authsec/${B}`);
    expect(await outcome(backend.read(B, 'Tenant Service'))).toBe('SERVICE_UNAVAILABLE');
    expect(await outcome(backend.list(B))).toBe('SERVICE_UNAVAILABLE');
    expect(captured.text()).toContain('Vault refused AuthSec (403)');
    expect(captured.text()).not.toContain('tenant-a-only');
    // Tenant A is unaffected.
    expect((await backend.read(A, 'Tenant Service'))?.credentials).toEqual({ token: 'tenant-a-only' });
    // A bad token: the same.
    const wrong = open({ token: 'not-a-token', logger: captured.logger });
    expect(await outcome(wrong.read(A, 'Tenant Service'))).toBe('SERVICE_UNAVAILABLE');
  });

  it('a missing mount is SERVICE_UNAVAILABLE with a log naming the mount, not "not found"', async () => {
    const captured = captureLogger();
    const backend = open({ mount: 'nope', logger: captured.logger });
    expect(await outcome(backend.read(A, 'Anything'))).toBe('SERVICE_UNAVAILABLE');
    expect(captured.text()).toContain('no KV v2 engine at this mount');
  });

  it('through ServiceAccess, a Vault fault is a clear refusal with no fallback and no value', async () => {
    const captured = captureLogger();
    const backend = open({ logger: captured.logger });
    await backend.write(A, {
      name: 'GitHub API Integration',
      credentials: { access_token: 'ghp_tenant_a_canary' },
    });
    const { authsec, events } = testEngine(captured.logger);
    const services = createServiceAccessFactory({ backend, authsec });
    const reader = (tenantId: string) => principal(tenantId, 'reader', { scopes: ['read'] });
    expect(await services(reader(A)).getServiceToken('GitHub API Integration')).toBe('ghp_tenant_a_canary');
    expect(await outcome(services(reader(B)).getServiceToken('GitHub API Integration'))).toBe('NOT_FOUND');
    fake.seal();
    expect(await outcome(services(reader(A)).getServiceToken('GitHub API Integration'))).toBe(
      'SERVICE_UNAVAILABLE',
    );
    fake.unseal();
    fake.deny('secret/');
    expect(await outcome(services(reader(B)).getServiceToken('GitHub API Integration'))).toBe(
      'SERVICE_UNAVAILABLE',
    );
    await authsec.close();
    expect(events).toContainEqual(expect.objectContaining({ action: 'service.read', decision: 'error' }));
    const all = `${captured.text()}${JSON.stringify(events)}`;
    expect(all).not.toContain('ghp_tenant_a_canary');
  });

  it('refuses bad configuration at creation', () => {
    expect(() => createVaultSecretBackend({ addr: 'not a url', token: 't' })).toThrow(/addr/);
    expect(() => createVaultSecretBackend({ addr: 'ftp://vault', token: 't' })).toThrow(/addr/);
    expect(() => createVaultSecretBackend({ addr: fake.url })).toThrow(/token/);
    expect(() => createVaultSecretBackend({ addr: fake.url, roleId: 'r' })).toThrow();
    expect(() => createVaultSecretBackend({ addr: fake.url, token: 't', timeoutMs: 0 })).toThrow(/timeoutMs/);
  });
});
