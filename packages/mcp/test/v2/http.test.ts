import { Client, InsufficientScopeError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod';
import type { RunningHttpServer } from '../../src/http.js';
import {
  type ProtectedMcpServer,
  protect,
  ResourceTemplate,
  startMcpV2HttpServer,
} from '../../src/v2/index.js';
import { ALICE, ALICE_TOOLS, JOHN, JOHN_TOOLS, SAMPLE_TOOLS } from '../fixtures/sample-tools.js';
import { createTestEngine, type TestEngine } from '../helpers/app.js';
import { freePort } from '../helpers/http.js';

type Era = 'modern' | 'legacy';
const ERAS: readonly Era[] = ['modern', 'legacy'];

interface Deployment {
  readonly engine: TestEngine;
  readonly server: ProtectedMcpServer;
  readonly http: RunningHttpServer;
  readonly url: string;
}

function declare(engine: TestEngine): ProtectedMcpServer {
  const server = protect(engine.authsec, { name: 'v2-test', version: '1.0.0' });
  for (const [name, requirement] of Object.entries(SAMPLE_TOOLS)) {
    server.registerTool(
      name,
      {
        description: `The ${name} tool`,
        inputSchema: z.object({ note: z.string().optional() }),
        requirement,
      },
      async (args, context) => ({
        content: [{ type: 'text', text: `${name} by ${args._user_info?.email} in ${context.tenant}` }],
      }),
    );
  }
  server.registerTool('status', { description: 'Public', requirement: 'public' }, async (_args, context) => ({
    content: [
      { type: 'text', text: context.principal ? `signed in as ${context.principal.subject}` : 'anonymous' },
    ],
  }));
  // A multi-round-trip tool: asks the caller to confirm, keeping the amount in a sealed requestState.
  server.registerTool(
    'refund',
    { description: 'Refund an order', inputSchema: z.object({ order: z.number() }), requirement: {} },
    async ({ order }, context) => {
      if (context.state === undefined)
        return context.inputRequired({
          inputRequests: {
            confirm: {
              method: 'elicitation/create',
              params: {
                mode: 'form',
                message: `Refund order ${order}?`,
                requestedSchema: {
                  type: 'object',
                  properties: { ok: { type: 'boolean' } },
                  required: ['ok'],
                },
              },
            },
          },
          state: { order, amount: 42 },
        });
      const { amount } = context.state as { amount: number };
      return { content: [{ type: 'text', text: `Refunded ${amount} for order ${order}` }] };
    },
  );
  server.registerResource(
    'reports',
    'acme://reports/q3',
    { description: 'Quarterly report', mimeType: 'text/plain', requirement: { roles: ['admin'] } },
    async (uri) => ({ contents: [{ uri: uri.href, text: 'Q3: fine' }] }),
  );
  server.registerResource(
    'drafts',
    'acme://drafts',
    { description: 'Drafts', mimeType: 'text/plain', requirement: { scopes: ['write'] } },
    async (uri) => ({ contents: [{ uri: uri.href, text: 'draft' }] }),
  );
  server.registerResource(
    'projects',
    new ResourceTemplate('acme://projects/{id}', { list: undefined }),
    { description: 'A project', requirement: { resources: ['projects'] } },
    async (uri, variables) => ({ contents: [{ uri: uri.href, text: `project ${variables.id}` }] }),
  );
  server.registerPrompt(
    'review',
    {
      description: 'Review a change',
      argsSchema: z.object({ change: z.string() }),
      requirement: { roles: ['admin'] },
    },
    async ({ change }) => ({
      messages: [{ role: 'user', content: { type: 'text', text: `Review ${change}` } }],
    }),
  );
  return server;
}

async function deploy(
  options: {
    stateless?: boolean;
    maxSessions?: number;
    maxSessionsPerSubject?: number;
    maxListenStreams?: number;
  } = {},
): Promise<Deployment> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/mcp`;
  const engine = createTestEngine({ audience: url });
  const server = declare(engine);
  const http = await startMcpV2HttpServer({
    server,
    authsec: engine.authsec,
    port,
    authorizationServers: [engine.issuer.issuer],
    ...options,
  });
  return { engine, server, http, url };
}

const open: Client[] = [];
async function connect(url: string, token: string, era: Era): Promise<Client> {
  const client = new Client(
    { name: 'v2-oracle', version: '1.0.0' },
    era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
  );
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  open.push(client);
  return client;
}
afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((c) => c.close()));
});

const text = (result: unknown) => (result as { content: { text?: string }[] }).content[0]?.text;

describe.each(ERAS)('MCP SDK v2 over Streamable HTTP, %s era', (era) => {
  let d: Deployment;
  beforeAll(async () => {
    d = await deploy();
  });
  afterAll(async () => {
    await d.http.close();
  });

  it('negotiates the era the client asks for', async () => {
    const client = await connect(d.url, d.engine.token(JOHN), era);
    expect(client.getProtocolEra()).toBe(era);
    const version = client.getNegotiatedProtocolVersion();
    if (era === 'modern') expect(version).toBe('2026-07-28');
    else expect(version).toMatch(/^2025-/);
    // The legacy era keeps a session (bound to its subject); 2026-07-28 has none.
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId;
    if (era === 'modern') expect(sessionId).toBeUndefined();
    else expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('lists exactly the tools each caller may use (and the public ones)', async () => {
    const john = await connect(d.url, d.engine.token(JOHN), era);
    const alice = await connect(d.url, d.engine.token(ALICE), era);
    const names = async (client: Client) => (await client.listTools()).tools.map((t) => t.name).sort();
    expect(await names(john)).toEqual([...JOHN_TOOLS, 'refund', 'status'].sort());
    expect(await names(alice)).toEqual([...ALICE_TOOLS, 'refund', 'status'].sort());
  });

  it('runs an allowed call with _user_info and the context, audited once', async () => {
    const john = await connect(d.url, d.engine.token(JOHN), era);
    const before = d.engine.sink.events.length;
    expect(text(await john.callTool({ name: 'admin_panel', arguments: { note: 'x' } }))).toBe(
      'admin_panel by john@company.com in acme-corp',
    );
    const calls = d.engine.sink.events.slice(before).filter((e) => e.action === 'tool.call');
    expect(calls.map((e) => [e.target, e.decision])).toEqual([['admin_panel', 'allow']]);
    // A tool without an input schema (the SDK then calls it with the context alone).
    expect(text(await john.callTool({ name: 'status', arguments: {} }))).toBe('signed in as user-john');
  });

  it('answers a hidden tool exactly like one that does not exist, and audits the denial', async () => {
    const alice = await connect(d.url, d.engine.token(ALICE), era);
    const attempt = async (name: string) => {
      try {
        const result = await alice.callTool({ name, arguments: {} });
        return JSON.stringify(result).replaceAll(name, '<name>');
      } catch (error) {
        return String((error as Error).message).replaceAll(name, '<name>');
      }
    };
    const hidden = await attempt('admin_panel');
    const unknown = await attempt('no_such_tool');
    expect(hidden).toBe(unknown);
    expect(hidden).toMatch(/not found/i);
    expect(d.engine.sink.events).toContainEqual(
      expect.objectContaining({
        action: 'tool.call',
        target: 'admin_panel',
        decision: 'deny',
        reason: 'PERMISSION_DENIED',
      }),
    );
  });

  it('steps up with 403 insufficient_scope before the handler runs', async () => {
    const readOnly = await connect(d.url, d.engine.token({ ...JOHN, sub: 'ro', scope: 'read' }), era);
    const before = d.engine.sink.events.length;
    const error = await readOnly.callTool({ name: 'create_resource', arguments: {} }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InsufficientScopeError);
    expect(String((error as Error).message)).toContain('write');
    const calls = d.engine.sink.events.slice(before).filter((e) => e.action === 'tool.call');
    expect(calls.map((e) => [e.target, e.decision, e.reason])).toEqual([
      ['create_resource', 'deny', 'INSUFFICIENT_SCOPE'],
    ]);
  });

  it('hides and refuses resources and prompts like tools', async () => {
    const john = await connect(d.url, d.engine.token(JOHN), era);
    const alice = await connect(d.url, d.engine.token(ALICE), era);
    expect((await john.listResources()).resources.map((r) => r.uri)).toEqual([
      'acme://reports/q3',
      'acme://drafts',
    ]);
    const before = d.engine.sink.events.length;
    expect((await john.readResource({ uri: 'acme://reports/q3' })).contents[0]).toMatchObject({
      text: 'Q3: fine',
    });
    // Decided once, by the pipeline: one record, not a second one from the server.
    expect(
      d.engine.sink.events
        .slice(before)
        .filter((e) => e.action === 'resource.read')
        .map((e) => [e.target, e.decision]),
    ).toEqual([['reports', 'allow']]);
    expect((await john.readResource({ uri: 'acme://projects/7' })).contents[0]).toMatchObject({
      text: 'project 7',
    });
    expect((await john.listPrompts()).prompts.map((p) => p.name)).toEqual(['review']);
    expect((await john.getPrompt({ name: 'review', arguments: { change: 'PR 1' } })).messages).toHaveLength(
      1,
    );
    // Alice holds neither the admin role nor the projects resource: her server never heard of them.
    const failure = (promise: Promise<unknown>, name: string) =>
      promise.then(
        (value) => `resolved ${JSON.stringify(value)}`,
        // The request id differs from one request to the next; nothing else may.
        (e: unknown) =>
          String((e as Error).message)
            .replaceAll(name, '<name>')
            .replace(/"id":\d+/, '"id":_'),
      );
    expect((await alice.listResources()).resources).toEqual([]);
    expect((await alice.listPrompts()).prompts).toEqual([]);
    const hiddenRead = await failure(alice.readResource({ uri: 'acme://reports/q3' }), 'acme://reports/q3');
    expect(hiddenRead).toBe(
      await failure(alice.readResource({ uri: 'acme://nothing/here' }), 'acme://nothing/here'),
    );
    expect(hiddenRead).toMatch(/not found/i);
    const hiddenPrompt = await failure(
      alice.getPrompt({ name: 'review', arguments: { change: 'x' } }),
      'review',
    );
    expect(hiddenPrompt).toBe(
      await failure(alice.getPrompt({ name: 'nope', arguments: { change: 'x' } }), 'nope'),
    );
    expect(hiddenPrompt).toMatch(/not found/i);
    // Hidden is unknown to the caller, and a denial in the audit log.
    expect(d.engine.sink.events).toContainEqual(
      expect.objectContaining({
        action: 'resource.read',
        target: 'reports',
        decision: 'deny',
        reason: 'PERMISSION_DENIED',
      }),
    );
    expect(d.engine.sink.events).toContainEqual(
      expect.objectContaining({ action: 'prompt.get', target: 'review', decision: 'deny' }),
    );
  });

  it('steps up a resource read with 403 insufficient_scope, whether or not it is listed', async () => {
    const readOnly = await connect(d.url, d.engine.token({ ...JOHN, sub: 'ro-reader', scope: 'read' }), era);
    expect((await readOnly.listResources()).resources.map((r) => r.uri)).not.toContain('acme://drafts');
    const before = d.engine.sink.events.length;
    const error = await readOnly.readResource({ uri: 'acme://drafts' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InsufficientScopeError);
    expect(String((error as Error).message)).toContain('write');
    expect(
      d.engine.sink.events
        .slice(before)
        .filter((e) => e.action === 'resource.read')
        .map((e) => [e.target, e.decision, e.reason]),
    ).toEqual([['drafts', 'deny', 'INSUFFICIENT_SCOPE']]);
  });
});

describe('MCP SDK v2 endpoint, both eras', () => {
  let d: Deployment;
  beforeAll(async () => {
    d = await deploy();
  });
  afterAll(async () => {
    await d.http.close();
  });

  it('refuses a request without a token with 401 and the challenge, in either era', async () => {
    const modern = await fetch(d.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'server/discover', params: {} }),
    });
    expect(modern.status).toBe(401);
    expect(modern.headers.get('www-authenticate')).toContain('resource_metadata=');
    expect(await modern.json()).toMatchObject({ code: 'TOKEN_MISSING' });
  });

  it('serves 2026-07-28 without sessions: no Mcp-Session-Id, and private cache scope on per-caller lists', async () => {
    const response = await fetch(d.url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${d.engine.token(ALICE)}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/list',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/list',
        params: {
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('mcp-session-id')).toBeNull();
    const body = (await response.json()) as { result: { tools: { name: string }[]; cacheScope?: string } };
    expect(body.result.tools.map((t) => t.name).sort()).toEqual([...ALICE_TOOLS, 'refund', 'status'].sort());
    expect(body.result.cacheScope).toBe('private');
  });

  it('binds a legacy session to its subject: another subject gets 404', async () => {
    const john = await connect(d.url, d.engine.token(JOHN), 'legacy');
    const sessionId = (john.transport as StreamableHTTPClientTransport).sessionId;
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const stolen = await fetch(d.url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${d.engine.token(ALICE)}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': sessionId!,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
    });
    expect(stolen.status).toBe(404);
    expect(d.http.handler.sessionCount).toBeGreaterThan(0);
  });

  it('with stateless, serves the legacy era without sessions', async () => {
    const s = await deploy({ stateless: true });
    try {
      const alice = await connect(s.url, s.engine.token(ALICE), 'legacy');
      expect((await alice.listTools()).tools.map((t) => t.name).sort()).toEqual(
        [...ALICE_TOOLS, 'refund', 'status'].sort(),
      );
      expect(s.http.handler.sessionCount).toBe(0);
    } finally {
      await s.http.close();
    }
  });

  it('completes an input_required round trip with a sealed requestState, in either era', async () => {
    for (const era of ERAS) {
      const client = new Client(
        { name: 'v2-oracle', version: '1.0.0' },
        {
          capabilities: { elicitation: { form: {} } },
          ...(era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {}),
        },
      );
      client.setRequestHandler('elicitation/create', async () => ({
        action: 'accept',
        content: { ok: true },
      }));
      await client.connect(
        new StreamableHTTPClientTransport(new URL(d.url), {
          requestInit: { headers: { authorization: `Bearer ${d.engine.token(JOHN)}` } },
        }),
      );
      open.push(client);
      expect(text(await client.callTool({ name: 'refund', arguments: { order: 7 } }))).toBe(
        'Refunded 42 for order 7',
      );
    }
  });

  it('refuses a tampered, replayed or foreign requestState with -32602 before the handler runs', async () => {
    const call = async (token: string, args: Record<string, unknown>, requestState?: string) => {
      const response = await fetch(d.url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2026-07-28',
          'mcp-method': 'tools/call',
          'mcp-name': 'refund',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: {
            name: 'refund',
            arguments: args,
            ...(requestState
              ? { requestState, inputResponses: { confirm: { action: 'accept', content: { ok: true } } } }
              : {}),
            _meta: {
              'io.modelcontextprotocol/protocolVersion': '2026-07-28',
              'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
              'io.modelcontextprotocol/clientCapabilities': { elicitation: { form: {} } },
            },
          },
        }),
      });
      return (await response.json()) as {
        result?: { requestState?: string; content?: { text: string }[] };
        error?: { code: number };
      };
    };
    const john = d.engine.token(JOHN);
    const first = await call(john, { order: 7 });
    const state = first.result?.requestState;
    expect(state).toMatch(/^as1\./);
    // Nothing of the state is readable: not the amount, the order, the tool or the caller.
    expect(Buffer.from(state!.slice(4), 'base64url').toString('latin1')).not.toMatch(/42|refund|user-john/);
    const tampered = `${state!.slice(0, -2)}${state!.endsWith('AA') ? 'BB' : 'AA'}`;
    expect((await call(john, { order: 7 }, tampered)).error?.code).toBe(-32602);
    expect((await call(d.engine.token(ALICE), { order: 7 }, state)).error?.code).toBe(-32602);
    // Sealed for order 7: the same state with other arguments is refused, and the refusal uses it up.
    expect((await call(john, { order: 8 }, state)).result?.content?.[0]?.text).toMatch(/requestState/);
    const fresh = (await call(john, { order: 7 })).result?.requestState;
    expect((await call(john, { order: 7 }, fresh)).result?.content?.[0]?.text).toBe(
      'Refunded 42 for order 7',
    );
    expect((await call(john, { order: 7 }, fresh)).error?.code).toBe(-32602);
  });

  it('takes raw zod shapes, and passes title, annotations and outputSchema through', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/mcp`;
    const engine = createTestEngine({ audience: url });
    const server = protect(engine.authsec, { name: 'shapes', version: '1.0.0' });
    server.registerTool(
      'add',
      {
        title: 'Add two numbers',
        annotations: { readOnlyHint: true },
        inputSchema: { a: z.number(), b: z.number() },
        outputSchema: { sum: z.number() },
        requirement: {},
      },
      async (args) => {
        const sum: number = args.a + args.b;
        return { content: [{ type: 'text', text: String(sum) }], structuredContent: { sum } };
      },
    );
    const http = await startMcpV2HttpServer({
      server,
      authsec: engine.authsec,
      port,
      authorizationServers: [engine.issuer.issuer],
    });
    try {
      for (const era of ERAS) {
        const client = await connect(url, engine.token(ALICE), era);
        const [tool] = (await client.listTools()).tools;
        expect(tool).toMatchObject({
          name: 'add',
          title: 'Add two numbers',
          annotations: { readOnlyHint: true },
        });
        expect(tool?.outputSchema).toMatchObject({ properties: { sum: { type: 'number' } } });
        const result = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
        expect(result.structuredContent).toEqual({ sum: 5 });
        const bad = await client.callTool({ name: 'add', arguments: { a: 'two', b: 3 } });
        expect(bad.isError).toBe(true);
      }
    } finally {
      await http.close();
    }
  });

  it('refuses misconfiguration with TypeErrors', async () => {
    const engine = createTestEngine();
    const server = protect(engine.authsec, { name: 'x', version: '1' });
    expect(() =>
      server.registerTool('a', { requirement: undefined as never }, async () => ({ content: [] })),
    ).toThrow(TypeError);
    server.registerTool('a', { requirement: {} }, async () => ({ content: [] }));
    expect(() => server.registerTool('a', { requirement: {} }, async () => ({ content: [] }))).toThrow(
      /twice/,
    );
    expect(() => protect(undefined as never, { name: 'x', version: '1' })).toThrow(TypeError);
  });
});

describe('resource subscriptions (2025 era) and updates', () => {
  let d: Deployment;
  beforeAll(async () => {
    d = await deploy();
  });
  afterAll(async () => {
    await d.http.close();
  });

  it('a subscriber that may read the resource hears its update; one that may not hears nothing', async () => {
    const john = await connect(d.url, d.engine.token(JOHN), 'legacy');
    // May read the projects, not the report.
    const alice = await connect(
      d.url,
      d.engine.token({ ...ALICE, resources: ['projects', 'analytics'] }),
      'legacy',
    );
    const nobody = await connect(d.url, d.engine.token({ ...ALICE, sub: 'nobody', resources: [] }), 'legacy');
    expect(john.getServerCapabilities()?.resources?.subscribe).toBe(true);
    expect(alice.getServerCapabilities()?.resources?.subscribe).toBe(true);
    // A caller with no resource to read is offered no resources capability at all.
    expect(nobody.getServerCapabilities()?.resources).toBeUndefined();
    const heard = { john: [] as string[], alice: [] as string[] };
    john.setNotificationHandler('notifications/resources/updated', (n) => {
      heard.john.push(n.params.uri);
    });
    alice.setNotificationHandler('notifications/resources/updated', (n) => {
      heard.alice.push(n.params.uri);
    });
    // Alice may not read the report: her subscription is accepted like one to an unknown URI, and stays silent.
    expect(await john.subscribeResource({ uri: 'acme://reports/q3' })).toEqual({});
    expect(await alice.subscribeResource({ uri: 'acme://reports/q3' })).toEqual({});
    expect(await john.subscribeResource({ uri: 'acme://nothing' })).toEqual({});
    d.server.resourceUpdated('acme://reports/q3');
    d.server.resourceUpdated('acme://nothing');
    const deadline = Date.now() + 5000;
    while (heard.john.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, 200));
    expect(heard.john).toEqual(['acme://reports/q3']);
    expect(heard.alice).toEqual([]);
    // Unsubscribed: no more updates.
    await john.unsubscribeResource({ uri: 'acme://reports/q3' });
    d.server.resourceUpdated('acme://reports/q3');
    await new Promise((r) => setTimeout(r, 200));
    expect(heard.john).toEqual(['acme://reports/q3']);
  });

  it('the 2026-07-28 era has no resources/subscribe: 404 with -32601', async () => {
    const response = await fetch(d.url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${d.engine.token(JOHN)}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-method': 'resources/subscribe',
        'mcp-protocol-version': '2026-07-28',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'resources/subscribe',
        params: {
          uri: 'acme://reports/q3',
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      }),
    });
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ id: 7, error: { code: -32601 } });
  });
});

describe('legacy session limits', () => {
  let d: Deployment;
  beforeAll(async () => {
    d = await deploy({ maxSessions: 3, maxSessionsPerSubject: 2 });
  });
  afterAll(async () => {
    await d.http.close();
  });

  const headers = (token: string, sessionId?: string) => ({
    authorization: `Bearer ${token}`,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    ...(sessionId ? { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' } : {}),
  });
  const initialize = (token: string) =>
    fetch(d.url, {
      method: 'POST',
      headers: headers(token),
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 'raw', version: '1' },
        },
      }),
    });
  const ping = async (token: string, sessionId: string) =>
    (
      await fetch(d.url, {
        method: 'POST',
        headers: headers(token, sessionId),
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' }),
      })
    ).status;

  it('caps sessions per subject (the least recently used closes) and in total (503 with Retry-After)', async () => {
    const john = d.engine.token(JOHN);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await initialize(john);
      expect(response.status).toBe(200);
      await response.body?.cancel();
      ids.push(response.headers.get('mcp-session-id')!);
      await new Promise((r) => setTimeout(r, 5));
    }
    // The third closed John's least recently used session, the first.
    expect(await ping(john, ids[0]!)).toBe(404);
    expect(await ping(john, ids[1]!)).toBe(200);
    expect(await ping(john, ids[2]!)).toBe(200);
    expect(d.http.handler.sessionCount).toBe(2);

    const alice = await initialize(d.engine.token(ALICE));
    expect(alice.status).toBe(200);
    await alice.body?.cancel();
    // Three live sessions: a fourth subject is refused, and told when to retry.
    const refused = await initialize(d.engine.token({ ...ALICE, sub: 'someone-else' }));
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(d.http.handler.sessionCount).toBe(3);
  });
});

describe('subscriptions/listen streams', () => {
  let d: Deployment;
  beforeAll(async () => {
    d = await deploy({ maxListenStreams: 1 });
  });
  afterAll(async () => {
    await d.http.close();
  });

  const listen = (signal: AbortSignal) =>
    fetch(d.url, {
      method: 'POST',
      signal,
      headers: {
        authorization: `Bearer ${d.engine.token(JOHN)}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-method': 'subscriptions/listen',
        'mcp-protocol-version': '2026-07-28',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'subscriptions/listen',
        params: {
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientCapabilities': {},
          },
          notifications: { toolsListChanged: true },
        },
      }),
    });

  it('caps the open streams: past maxListenStreams a new one is 503 with Retry-After; a closed one frees its place', async () => {
    const first = new AbortController();
    const open = await listen(first.signal);
    expect(open.status).toBe(200);
    const reader = open.body!.getReader();
    await reader.read();
    const deadline = Date.now() + 5000;
    while (d.server.bus.listenerCount < 1 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(d.server.bus.listenerCount).toBe(1);
    const refused = await listen(new AbortController().signal);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(await refused.json()).toMatchObject({ error: { code: -32000 } });
    first.abort();
    await reader.cancel().catch(() => {});
    const freed = Date.now() + 5000;
    while (d.server.bus.listenerCount > 0 && Date.now() < freed) await new Promise((r) => setTimeout(r, 20));
    expect(d.server.bus.listenerCount).toBe(0);
    const again = new AbortController();
    const reopened = await listen(again.signal);
    expect(reopened.status).toBe(200);
    again.abort();
  });
});
