/**
 * `serveProtectedStdio` over the SDK's `serveStdio` (in memory), with the v2 client pinned to 2026-07-28 and in
 * legacy mode: the login is read once before the first message and before every request, never by the
 * factory (`serveStdio` may build a probe instance and discard it); login changes update the pinned instance,
 * which notifies (on the listen stream in 2026-07-28); a login that cannot be checked counts as nobody.
 */
import { Client } from '@modelcontextprotocol/client';
import { InMemoryTransport } from '@modelcontextprotocol/server';
import { afterEach, describe, expect, it } from 'vitest';
import { protect as protectTool } from '../../src/protect.js';
import { type ProtectedMcpServer, protect } from '../../src/v2/index.js';
import { declareTools, serveProtectedStdio } from '../../src/v2/stdio-entry.js';
import { ALICE, JOHN, JOHN_TOOLS } from '../fixtures/sample-tools.js';
import { createTestEngine, eventually, sampleTools } from '../helpers/app.js';
import { FakeDirectory } from '../helpers/fake-directory.js';
import { FakeLoginProvider } from '../helpers/fake-login-provider.js';

type Era = 'modern' | 'legacy';
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close().catch(() => {});
});

async function serve(era: Era, directory?: FakeDirectory) {
  const engine = createTestEngine(directory ? { directory } : {});
  const login = new FakeLoginProvider(engine.authsec);
  let lookups = 0;
  let lookupsInFactory = 0;
  let instances = 0;
  const principalFor = login.principalFor.bind(login);
  login.principalFor = async (id) => {
    lookups++;
    return principalFor(id);
  };
  const server: ProtectedMcpServer = protect(engine.authsec, { name: 'stdio-test', version: '1.0.0' });
  declareTools(server, sampleTools(), { connectionId: 'stdio' });
  const instance = server.instance.bind(server);
  server.instance = (principal) => {
    instances++;
    const before = lookups;
    const made = instance(principal);
    lookupsInFactory += lookups - before;
    return made;
  };
  const [serverSide, clientSide] = InMemoryTransport.createLinkedPair();
  const handle = await serveProtectedStdio(server, {
    login,
    transport: serverSide,
    ...(directory ? { directory } : {}),
  });
  const lookupsAtStart = lookups;
  const client = new Client(
    { name: 'stdio-test-client', version: '1.0.0' },
    era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
  );
  let changes = 0;
  client.setNotificationHandler('notifications/tools/list_changed', () => {
    changes++;
  });
  await client.connect(clientSide);
  if (era === 'modern') await client.listen({ toolsListChanged: true });
  closers.push(
    () => client.close(),
    () => handle.close(),
    () => engine.authsec.close(),
  );
  const names = async () => (await client.listTools()).tools.map((t) => t.name).sort();
  return {
    engine,
    login,
    client,
    handle,
    names,
    lookupsAtStart,
    stats: () => ({ lookups, lookupsInFactory, instances, changes }),
  };
}

const PUBLIC_LOGIN_TOOLS = ['oauth_authenticate', 'oauth_logout', 'oauth_status'];

describe.each<Era>(['modern', 'legacy'])('serveProtectedStdio, %s era', (era) => {
  it('reads the login before serving and before each request, never in the factory', async () => {
    const s = await serve(era);
    expect(s.lookupsAtStart).toBe(1);
    expect(await s.names()).toEqual(PUBLIC_LOGIN_TOOLS);
    const { lookups, lookupsInFactory, instances } = s.stats();
    expect(lookupsInFactory).toBe(0);
    expect(instances).toBeGreaterThanOrEqual(1);
    expect(lookups).toBeGreaterThan(1);
  });

  it('login and logout update the pinned instance, with list_changed', async () => {
    const s = await serve(era);
    const token = s.engine.token(JOHN);
    const login = await s.client.callTool({ name: 'oauth_authenticate', arguments: { jwt_token: token } });
    expect(login.isError).not.toBe(true);
    await eventually(() => expect(s.stats().changes).toBeGreaterThan(0));
    expect(await s.names()).toEqual([...PUBLIC_LOGIN_TOOLS, ...JOHN_TOOLS].sort());
    const hello = await s.client.callTool({ name: 'hello', arguments: {} });
    expect(hello.content).toEqual([{ type: 'text', text: `Hello, ${JOHN.email}!` }]);
    // The v1 tool's own JSON Schema validates on v2 too: a bad argument never reaches the handler.
    const bad = await s.client.callTool({ name: 'calculator', arguments: { a: 'x', b: 1 } });
    expect(bad.isError).toBe(true);
    const seen = s.stats().changes;
    await s.client.callTool({ name: 'oauth_logout', arguments: {} });
    await eventually(() => expect(s.stats().changes).toBeGreaterThan(seen));
    expect(await s.names()).toEqual(PUBLIC_LOGIN_TOOLS);
    await expect(s.client.callTool({ name: 'hello', arguments: {} })).rejects.toMatchObject({ code: -32602 });
  });

  it('a grant change of the caller refreshes the tools, with list_changed; another tenant’s or subject’s does not', async () => {
    const directory = new FakeDirectory();
    const s = await serve(era, directory);
    // Like the real login: the token is verified (and resolved through the directory) on every check.
    const token = s.engine.token(ALICE);
    s.login.principalFor = async () => s.engine.authsec.authenticate(token);
    s.login.login('stdio', await s.engine.principal(ALICE));
    await eventually(async () => expect(await s.names()).toContain('hello'));
    expect(await s.names()).not.toContain('admin_panel');
    const seen = s.stats().changes;
    directory.extraRoles.set(ALICE.sub, ['admin']);
    directory.announce({ tenantId: 'other-tenant', subject: null });
    directory.announce({ tenantId: ALICE.tenant_id, subject: 'someone-else' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(s.stats().changes).toBe(seen);
    directory.announce({ tenantId: ALICE.tenant_id, subject: ALICE.sub });
    await eventually(() => expect(s.stats().changes).toBeGreaterThan(seen));
    expect(await s.names()).toContain('admin_panel');
    await s.handle.close();
    expect(directory.subscribers).toBe(0);
  });

  it('a login that cannot be checked counts as nobody (fail closed)', async () => {
    const s = await serve(era);
    s.login.login('stdio', await s.engine.principal(JOHN));
    await eventually(async () => expect(await s.names()).toContain('hello'));
    s.login.failWith = new Error('the session store is down');
    expect(await s.names()).toEqual(PUBLIC_LOGIN_TOOLS);
    await expect(s.client.callTool({ name: 'hello', arguments: {} })).rejects.toMatchObject({ code: -32602 });
  });

  it('refuses a server that does not come from protect()', async () => {
    await expect(serveProtectedStdio({} as ProtectedMcpServer)).rejects.toThrow(TypeError);
    // A v1 tool's name clashing with a declared one is refused at declaration.
    const engine = createTestEngine();
    const server = protect(engine.authsec, { name: 'x', version: '1' });
    declareTools(server, [protectTool('hello', () => 'hi')], { connectionId: 'stdio' });
    expect(() => declareTools(server, [protectTool('hello', () => 'hi')], { connectionId: 'stdio' })).toThrow(
      TypeError,
    );
    await engine.authsec.close();
  });
});
