import { AuthSecError, noServiceAccess, type ServiceAccess } from '@authsec/core';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { afterEach, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { protect, publicTool } from '../src/protect.js';
import { createAuthSecServer } from '../src/server.js';
import type { PublicToolContext, ToolContext, UserInfo } from '../src/types.js';
import { ALICE, ALICE_TOOLS, JOHN, JOHN_TOOLS, SAMPLE_TOOL_NAMES } from './fixtures/sample-tools.js';
import {
  connectClient,
  createTestApp,
  createTestEngine,
  eventually,
  sampleTools,
  type TestApp,
  type TestClient,
} from './helpers/app.js';
import { FakeDirectory } from './helpers/fake-directory.js';

const LOGIN_TOOLS = ['oauth_authenticate', 'oauth_status', 'oauth_logout'];

type CallResult = {
  content: { type: string; text?: string }[];
  isError?: boolean;
  structuredContent?: Record<string, unknown>;
  _meta?: Record<string, unknown>;
};

async function call(tc: TestClient, name: string, args: Record<string, unknown> = {}): Promise<CallResult> {
  return (await tc.client.callTool({ name, arguments: args })) as CallResult;
}

function text(result: CallResult): string {
  return result.content.map((c) => c.text ?? '').join('\n');
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function app(options: Parameters<typeof createTestApp>[0] = {}): Promise<TestApp> {
  const created = await createTestApp(options);
  cleanups.push(() => created.mcp.close());
  return created;
}

async function loginAs(a: TestApp, tc: TestClient, claims: Record<string, unknown>): Promise<void> {
  const changed = tc.nextListChanged();
  const result = await call(tc, 'oauth_authenticate', { jwt_token: a.token(claims) });
  expect(result.isError).toBeFalsy();
  await changed;
}

describe('tools/list before and after login (the brief, steps 1 to 5)', () => {
  it('shows only the login tools before login', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    expect(await tc.toolNames()).toEqual(LOGIN_TOOLS);
  });

  it('sends tools/list_changed on login and then lists exactly the caller’s tools', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    expect(tc.listChanged()).toBe(0);
    await loginAs(a, tc, JOHN);
    expect(tc.listChanged()).toBe(1);
    expect(await tc.toolNames()).toEqual([...LOGIN_TOOLS, ...JOHN_TOOLS]);
  });

  it('gives each connection its own caller', async () => {
    const a = await app();
    const john = await connectClient(a.mcp, 'john');
    const alice = await connectClient(a.mcp, 'alice');
    await loginAs(a, john, JOHN);
    expect(alice.listChanged()).toBe(0);
    expect(await alice.toolNames()).toEqual(LOGIN_TOOLS);
    await loginAs(a, alice, ALICE);
    expect(await john.toolNames()).toEqual([...LOGIN_TOOLS, ...JOHN_TOOLS]);
    expect(await alice.toolNames()).toEqual([...LOGIN_TOOLS, ...ALICE_TOOLS]);
    expect(text(await call(alice, 'hello'))).toBe('Hello, alice@company.com!');
    expect(text(await call(john, 'hello'))).toBe('Hello, john@company.com!');
  });

  it('hides the tools again on logout, with list_changed', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, JOHN);
    const changed = tc.nextListChanged();
    await call(tc, 'oauth_logout');
    await changed;
    expect(await tc.toolNames()).toEqual(LOGIN_TOOLS);
  });

  it('advertises zod, JSON Schema and default input schemas, descriptions and annotations', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, JOHN);
    const tools = (await tc.client.listTools()).tools;
    const byName = new Map(tools.map((t) => [t.name, t]));
    expect(byName.get('create_resource')).toMatchObject({
      description: 'Creates a resource',
      inputSchema: { type: 'object', properties: { name: { type: 'string', minLength: 1 } } },
    });
    expect(byName.get('create_resource')?.inputSchema).not.toHaveProperty('$schema');
    expect(byName.get('calculator')).toMatchObject({
      inputSchema: { type: 'object', required: ['a', 'b'] },
      annotations: { readOnlyHint: true },
    });
    expect(byName.get('admin_panel')?.inputSchema).toEqual({ type: 'object', additionalProperties: true });
  });
});

describe('tools/call (step 6 and refusals)', () => {
  it('runs an allowed tool with the caller injected', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, JOHN);
    expect(text(await call(tc, 'hello'))).toBe('Hello, john@company.com!');
    expect(text(await call(tc, 'admin_panel'))).toBe('admin_panel accessed by john@company.com');
    expect(text(await call(tc, 'create_resource', { name: 'Project Alpha' }))).toBe(
      "Resource 'Project Alpha' created successfully!",
    );
    const sum = await call(tc, 'calculator', { a: 2, b: 3 });
    expect(sum.structuredContent).toEqual({ sum: 5 });
  });

  it('refuses INSUFFICIENT_SCOPE with a reason naming the missing scope, and _meta', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, ALICE);
    const result = await call(tc, 'create_resource', { name: 'x' });
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/^Insufficient scope: /);
    expect(text(result)).toContain('request the scopes: write');
    const meta = result._meta?.['authsec/error'] as { code: string; scopes: string[] };
    expect(meta.code).toBe('INSUFFICIENT_SCOPE');
    expect(meta.scopes).toEqual(['write', 'read']);
  });

  it('refuses a hidden tool called directly (hidden is not forbidden): PERMISSION_DENIED', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, ALICE);
    expect(await tc.toolNames()).not.toContain('admin_panel');
    const result = await call(tc, 'admin_panel');
    expect(result.isError).toBe(true);
    expect(text(result)).toBe("Permission denied: Tool 'admin_panel' requires roles any of [admin]");
    expect(result._meta?.['authsec/error']).toEqual({ code: 'PERMISSION_DENIED', failed: ['roles'] });
    const deploy = await call(tc, 'deploy_production');
    expect(deploy.isError).toBe(true);
    expect(deploy._meta?.['authsec/error']).toMatchObject({ code: 'PERMISSION_DENIED' });
  });

  it('answers a protected tool and an unknown name alike before login', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    const hidden = await call(tc, 'admin_panel');
    const unknown = await call(tc, 'no_such_tool');
    expect(hidden.isError).toBe(true);
    expect(text(hidden)).toBe(
      'Authentication required: call oauth_start to log in, then call this tool again.',
    );
    expect(unknown).toEqual(hidden);
    expect(hidden._meta).toEqual({ 'authsec/error': { code: 'TOKEN_MISSING' } });
  });

  it('answers an unknown tool with a protocol error (-32602) once logged in', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, JOHN);
    const error = await tc.client.callTool({ name: 'no_such_tool', arguments: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(McpError);
    expect((error as McpError).code).toBe(-32602);
    expect((error as McpError).message).toContain('Unknown tool: no_such_tool');
  });

  it('injects _user_info from the principal and strips a forged one', async () => {
    let seen: { args: Record<string, unknown>; context: ToolContext } | undefined;
    const whoami = protect('whoami', {}, (args, context) => {
      seen = { args, context };
      return 'ok';
    });
    const a = await app({ tools: [whoami] });
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, JOHN);
    const forged: UserInfo = {
      email: 'mallory@evil.example',
      sub: 'mallory',
      tenant_id: 'other-tenant',
      roles: ['admin', 'superuser'],
      groups: ['security-team'],
      scopes: ['admin'],
      resources: ['production'],
    };
    await call(tc, 'whoami', { _user_info: forged, other: 1 });
    expect(seen?.args).toEqual({
      other: 1,
      _user_info: {
        email: 'john@company.com',
        sub: 'user-john',
        tenant_id: 'acme-corp',
        roles: ['admin', 'developer'],
        groups: ['engineering'],
        scopes: ['read', 'write'],
        resources: ['projects', 'analytics'],
      },
    });
    const info = seen!.args._user_info as UserInfo;
    expect(Object.isFrozen(info)).toBe(true);
    expect(Object.isFrozen(info.roles)).toBe(true);
    expect(seen?.context).toMatchObject({
      user: info,
      tenant: 'acme-corp',
      sessionId: 'login-c1',
      services: noServiceAccess,
    });
    expect(seen?.context.principal.subject).toBe('user-john');
    expect(seen?.context.signal).toBeInstanceOf(AbortSignal);
    // The audit digest is of the stripped arguments, never of the forged identity.
    const call_ = a.sink.events.find((e) => e.target === 'whoami' && e.action === 'tool.call');
    expect(JSON.stringify(a.sink.events)).not.toContain('mallory');
    expect(call_?.decision).toBe('allow');
  });

  it('enforces a zod inputSchema, naming the field', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, JOHN);
    const result = await call(tc, 'create_resource', { name: 42 });
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/^Invalid arguments for tool 'create_resource': name: /);
    expect(result._meta?.['authsec/error']).toEqual({ code: 'BAD_REQUEST', fields: ['name'] });
  });

  it('enforces a JSON Schema inputSchema, naming the field', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, JOHN);
    const missing = await call(tc, 'calculator', { a: 1 });
    expect(missing.isError).toBe(true);
    expect(text(missing)).toBe("Invalid arguments for tool 'calculator': b: required");
    const wrong = await call(tc, 'calculator', { a: 'one', b: 2 });
    expect(text(wrong)).toBe("Invalid arguments for tool 'calculator': a: must be number");
    expect(wrong._meta?.['authsec/error']).toEqual({ code: 'BAD_REQUEST', fields: ['a'] });
  });

  it('authorizes before validating: a refused caller learns nothing about the schema', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, ALICE);
    const result = await call(tc, 'create_resource', { name: 42 });
    expect(result._meta?.['authsec/error']).toMatchObject({ code: 'INSUFFICIENT_SCOPE' });
  });

  it("reports a generic handler failure as 'Tool failed', logging the cause with the tool name", async () => {
    const boom = protect('boom', {}, () => {
      throw new Error('secret database password is hunter2');
    });
    const a = await app({ tools: [boom] });
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, JOHN);
    const result = await call(tc, 'boom');
    expect(result).toEqual({ content: [{ type: 'text', text: 'Tool failed' }], isError: true });
    const line = a.logger.lines.find((l) => l.message === 'Tool failed');
    expect(line?.level).toBe('error');
    expect(line?.fields?.tool).toBe('boom');
    expect(String(line?.fields?.cause)).toContain('hunter2');
  });

  it('reports an exposed AuthSecError from a handler with its message; a 5xx one generically', async () => {
    const missing = protect('missing', {}, () => {
      throw new AuthSecError('NOT_FOUND', "No project named 'x'");
    });
    const internal = protect('internal', {}, () => {
      throw new AuthSecError('INTERNAL', 'stack details');
    });
    const down = protect('down', {}, async (_args, context) => context.services.getServiceToken('GitHub'));
    const a = await app({ tools: [missing, internal, down] });
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, JOHN);
    const notFound = await call(tc, 'missing');
    expect(text(notFound)).toBe("No project named 'x'");
    expect(notFound._meta).toEqual({ 'authsec/error': { code: 'NOT_FOUND' } });
    expect(text(await call(tc, 'internal'))).toBe('Tool failed');
    const unavailable = await call(tc, 'down');
    expect(unavailable.isError).toBe(true);
    expect(text(unavailable)).toBe('The service is temporarily unavailable; try again later.');
  });

  it('reports a handler returning something that is not a result as a failure', async () => {
    const odd = protect('odd', {}, () => 42 as unknown as string);
    const a = await app({ tools: [odd] });
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, JOHN);
    expect(text(await call(tc, 'odd'))).toBe('Tool failed');
  });

  it('normalises a string, a content list and a full result', async () => {
    const tools = [
      protect('as_string', () => 'plain'),
      protect('as_list', () => [
        { type: 'text', text: 'one' },
        { type: 'text', text: 'two' },
      ]),
      protect('as_result', () => ({
        content: [{ type: 'text', text: 'full' }],
        structuredContent: { ok: true },
        isError: false,
      })),
    ];
    const a = await app({ tools });
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, JOHN);
    expect((await call(tc, 'as_string')).content).toEqual([{ type: 'text', text: 'plain' }]);
    expect((await call(tc, 'as_list')).content).toHaveLength(2);
    expect(await call(tc, 'as_result')).toMatchObject({ structuredContent: { ok: true }, isError: false });
  });

  it('passes the configured services for the caller', async () => {
    const services: ServiceAccess = {
      getServiceToken: async (name) => `token-of-${name}`,
      getServiceCredentials: noServiceAccess.getServiceCredentials,
      listServices: async () => [],
    };
    const seen: string[] = [];
    const repos = protect('list_my_repos', { scopes: ['read'] }, async (_args, context) =>
      context.services.getServiceToken('GitHub API Integration'),
    );
    const a = await app({
      tools: [repos],
      services: (principal) => {
        seen.push(principal.subject);
        return services;
      },
    });
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, JOHN);
    expect(text(await call(tc, 'list_my_repos'))).toBe('token-of-GitHub API Integration');
    expect(seen).toEqual(['user-john']);
  });
});

describe('public tools', () => {
  it('are listed and run without a caller, and see the caller once there is one', async () => {
    const contexts: PublicToolContext[] = [];
    const info = publicTool(
      'server_info',
      (args, context) => {
        contexts.push(context);
        return `${args.verbose ? 'verbose' : 'short'}: ${context.user?.email ?? 'anonymous'}`;
      },
      { inputSchema: z.object({ verbose: z.boolean().default(false) }) },
    );
    const a = await app({ tools: [info, ...sampleTools()] });
    const tc = await connectClient(a.mcp, 'c1');
    expect(await tc.toolNames()).toEqual([...LOGIN_TOOLS, 'server_info']);
    expect(text(await call(tc, 'server_info'))).toBe('short: anonymous');
    expect(contexts[0]).toMatchObject({ user: undefined, principal: undefined, connectionId: 'c1' });
    await loginAs(a, tc, JOHN);
    expect(text(await call(tc, 'server_info', { verbose: true, _user_info: { email: 'x' } }))).toBe(
      'verbose: john@company.com',
    );
    expect(await tc.toolNames()).toEqual([...LOGIN_TOOLS, 'server_info', ...JOHN_TOOLS]);
  });
});

describe('protocol and lifecycle', () => {
  it('answers ping', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    await expect(tc.client.ping()).resolves.toEqual({});
  });

  it('reports the server info and the tools listChanged capability', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    expect(tc.client.getServerVersion()).toEqual({ name: 'test-server', version: '1.0.0' });
    expect(tc.client.getServerCapabilities()?.tools).toEqual({ listChanged: true });
  });

  it('records audit events without tokens', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    const token = a.token(ALICE);
    await call(tc, 'oauth_authenticate', { jwt_token: token });
    await call(tc, 'view_reports');
    await call(tc, 'admin_panel');
    const calls = a.sink.events.filter((e) => e.action === 'tool.call');
    expect(calls.map((e) => [e.target, e.decision, e.reason])).toEqual([
      ['oauth_authenticate', 'allow', undefined],
      ['view_reports', 'allow', undefined],
      ['admin_panel', 'deny', 'PERMISSION_DENIED'],
    ]);
    expect(calls[2]).toMatchObject({ subject: 'user-alice', tenantId: 'acme-corp', failed: ['roles'] });
    const serialized = JSON.stringify(a.sink.events);
    expect(serialized).not.toContain(token);
    expect(serialized).not.toContain(token.split('.')[1]!);
  });

  it('fails closed when the login cannot tell who is logged in', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    await loginAs(a, tc, JOHN);
    a.login.failWith = new AuthSecError('SERVICE_UNAVAILABLE', 'store down');
    expect(await tc.toolNames()).toEqual(LOGIN_TOOLS);
    const result = await call(tc, 'hello');
    expect(result.isError).toBe(true);
    expect(text(result)).toBe('The service is temporarily unavailable; try again later.');
    expect(text(await call(tc, 'oauth_status'))).toBe('not authenticated');
  });

  it('forgets a closed connection and tells the login provider', async () => {
    const a = await app();
    const tc = await connectClient(a.mcp, 'c1');
    expect(a.mcp.connectionIds()).toEqual(['c1']);
    await tc.close();
    await eventually(() => expect(a.mcp.connectionIds()).toEqual([]));
    expect(a.login.disconnected).toEqual(['c1']);
    // The id may be used again once closed.
    await connectClient(a.mcp, 'c1');
  });

  it('refuses a live connection id twice', async () => {
    const a = await app();
    a.mcp.createServer('c1');
    expect(() => a.mcp.createServer('c1')).toThrow(TypeError);
  });

  it('closes servers, the login provider and the engine (flushing audit)', async () => {
    const engine = createTestEngine();
    let sinkClosed = false;
    const close = engine.sink.close.bind(engine.sink);
    engine.sink.close = async () => {
      sinkClosed = true;
      await close();
    };
    const { FakeLoginProvider } = await import('./helpers/fake-login-provider.js');
    const login = new FakeLoginProvider(engine.authsec);
    const mcp = createAuthSecServer({
      name: 's',
      version: '1',
      tools: sampleTools(),
      authsec: engine.authsec,
      login,
    });
    const tc = await connectClient(mcp, 'c1');
    let clientClosed = false;
    tc.client.onclose = () => {
      clientClosed = true;
    };
    await mcp.close();
    await mcp.close();
    expect(clientClosed).toBe(true);
    expect(login.closed).toBe(true);
    expect(sinkClosed).toBe(true);
    expect(() => mcp.createServer('again')).toThrow(/closed/);
  });
});

describe('grant changes', () => {
  it('sends list_changed to the connections of the subject whose grants changed', async () => {
    const directory = new FakeDirectory();
    const a = await app({ directory });
    const john = await connectClient(a.mcp, 'john');
    const alice = await connectClient(a.mcp, 'alice');
    await loginAs(a, john, JOHN);
    await loginAs(a, alice, ALICE);
    const changed = alice.nextListChanged();
    directory.announce({ tenantId: 'acme-corp', subject: 'user-alice' });
    await changed;
    expect(alice.listChanged()).toBe(2);
    expect(john.listChanged()).toBe(1);
  });

  it('sends it to every connection of a tenant, or to all when changes may have been missed', async () => {
    const directory = new FakeDirectory();
    const a = await app({ directory });
    const john = await connectClient(a.mcp, 'john');
    const anonymous = await connectClient(a.mcp, 'anonymous');
    await loginAs(a, john, JOHN);
    directory.announce({ tenantId: 'other-tenant', subject: null });
    const tenantWide = john.nextListChanged();
    directory.announce({ tenantId: 'acme-corp', subject: null });
    await tenantWide;
    expect(anonymous.listChanged()).toBe(0);
    const everyone = Promise.all([john.nextListChanged(), anonymous.nextListChanged()]);
    directory.announce({ tenantId: null, subject: null });
    await everyone;
    expect(john.listChanged()).toBe(3);
  });

  it('stops listening on close', async () => {
    const directory = new FakeDirectory();
    const a = await createTestApp({ directory });
    expect(directory.subscribers).toBe(1);
    await a.mcp.close();
    expect(directory.subscribers).toBe(0);
  });
});

describe('configuration errors are TypeErrors at start', () => {
  it('refuses duplicate tool names, and a name another tool holds in the engine', async () => {
    const engine = createTestEngine();
    const tools = sampleTools();
    expect(() =>
      createAuthSecServer({
        name: 's',
        version: '1',
        tools: [...tools, protect('hello', () => 'again')],
        authsec: engine.authsec,
      }),
    ).toThrow(/'hello' is declared twice/);
    createAuthSecServer({ name: 's', version: '1', tools, authsec: engine.authsec });
    // The same tool objects again (a second server on one engine) are fine; another 'hello' is not.
    createAuthSecServer({ name: 's2', version: '1', tools, authsec: engine.authsec });
    expect(() =>
      createAuthSecServer({
        name: 's3',
        version: '1',
        tools: [protect('hello', () => 'other')],
        authsec: engine.authsec,
      }),
    ).toThrow(TypeError);
  });

  it('registers protected tools in the engine with their requirement and the tool as meta', async () => {
    const engine = createTestEngine();
    const tools = sampleTools();
    createAuthSecServer({ name: 's', version: '1', tools, authsec: engine.authsec });
    expect(engine.authsec.tools.list().map((t) => t.name)).toEqual(SAMPLE_TOOL_NAMES);
    expect(engine.authsec.tools.get('admin_panel')?.meta).toBe(tools[2]);
  });

  it('computes scopes_supported from the tools', () => {
    const engine = createTestEngine();
    const mcp = createAuthSecServer({
      name: 's',
      version: '1',
      tools: sampleTools(),
      authsec: engine.authsec,
    });
    expect([...mcp.scopesSupported].sort()).toEqual(['admin', 'read', 'write']);
  });
});
