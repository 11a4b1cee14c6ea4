/**
 * `when` conditions and `approval: 'confirm'` on tools, end to end: the official v2 client over Streamable HTTP in both eras, and the v1
 * SDK line (`createAuthSecServer` with an in-memory v1 client). Conditions run on the arguments after the tool's
 * schema (defaults and transforms applied), after the requirement's own decision.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod';
import type { RunningHttpServer } from '../src/http.js';
import { protect as protectV1 } from '../src/index.js';
import { type ProtectedMcpServer, protect, startMcpV2HttpServer } from '../src/v2/index.js';
import { connectClient, createTestApp, createTestEngine, type TestEngine } from './helpers/app.js';
import { freePort } from './helpers/http.js';

type Era = 'modern' | 'legacy';
const ERAS: readonly Era[] = ['modern', 'legacy'];

const FINANCE = {
  sub: 'user-fin',
  email: 'fin@acme-corp.example',
  tenant_id: 'acme-corp',
  roles: ['finance'],
};
const INTERN = { sub: 'user-int', email: 'int@acme-corp.example', tenant_id: 'acme-corp', roles: ['intern'] };

const REFUND = {
  roles: ['finance'],
  when: ['args.amount > 0 && args.amount <= 1000', 'args.currency == "EUR"'],
};
const OWN_PROJECT = { when: 'args.project.startsWith(user.sub + "/")' };

interface Meta {
  readonly code?: string;
  readonly failed?: readonly string[];
}
const metaOf = (result: unknown) => (result as { _meta?: Record<string, Meta> })._meta?.['authsec/error'];
const text = (result: unknown) => (result as { content: { text?: string }[] }).content[0]?.text ?? '';

/** A protected v2 server on 127.0.0.1 with what `declare` registers, and its clients closed after each test. */
function deployment(name: string, declare: (server: ProtectedMcpServer) => void) {
  const d = { engine: undefined as unknown as TestEngine, url: '', open: [] as Client[] };
  let http: RunningHttpServer;
  beforeAll(async () => {
    const port = await freePort();
    d.url = `http://127.0.0.1:${port}/mcp`;
    d.engine = createTestEngine({ audience: d.url });
    const server = protect(d.engine.authsec, { name, version: '1.0.0' });
    declare(server);
    http = await startMcpV2HttpServer({
      server,
      authsec: d.engine.authsec,
      port,
      authorizationServers: [d.engine.issuer.issuer],
    });
  });
  afterEach(async () => {
    await Promise.allSettled(d.open.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await http.close();
  });
  return d;
}

describe.each(ERAS)('conditions through the v2 server, %s era', (era) => {
  let runs = 0;
  const d = deployment('conditions', (server) => {
    server.registerTool(
      'refund',
      {
        description: 'Refunds up to 1,000 EUR',
        // The default applies before the conditions see the arguments.
        inputSchema: z.object({ amount: z.number(), currency: z.string().default('EUR') }),
        requirement: REFUND,
      },
      async ({ amount, currency }) => {
        runs++;
        return { content: [{ type: 'text', text: `refunded ${amount} ${currency}` }] };
      },
    );
    server.registerTool(
      'open_project',
      {
        description: "Opens one of the caller's own projects",
        // The transform applies before the conditions: 'USER-FIN/Site' is checked as 'user-fin/site'.
        inputSchema: z.object({ project: z.string().transform((s) => s.toLowerCase()) }),
        requirement: OWN_PROJECT,
      },
      async ({ project }) => {
        runs++;
        return { content: [{ type: 'text', text: `opened ${project}` }] };
      },
    );
  });

  async function connect(claims: Record<string, unknown>): Promise<Client> {
    const client = new Client(
      { name: 'conditions', version: '1.0.0' },
      era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {},
    );
    await client.connect(
      new StreamableHTTPClientTransport(new URL(d.url), {
        requestInit: { headers: { authorization: `Bearer ${d.engine.token(claims)}` } },
      }),
    );
    d.open.push(client);
    return client;
  }

  it('runs a call whose conditions hold (schema default applied), audited tool.call then tool.condition', async () => {
    const client = await connect(FINANCE);
    const before = d.engine.sink.events.length;
    const result = await client.callTool({ name: 'refund', arguments: { amount: 250 } });
    expect(result.isError).toBeFalsy();
    expect(text(result)).toBe('refunded 250 EUR');
    expect(d.engine.sink.events.slice(before).map((e) => [e.action, e.decision, e.target])).toEqual([
      ['tool.call', 'allow', 'refund'],
      ['tool.condition', 'allow', 'refund'],
    ]);
  });

  it('refuses a call over the limit with CONDITION_FAILED naming the condition, not the amount; the tool never runs', async () => {
    const client = await connect(FINANCE);
    const before = d.engine.sink.events.length;
    const ran = runs;
    const result = await client.callTool({ name: 'refund', arguments: { amount: 73_519 } });
    expect(result.isError).toBe(true);
    expect(metaOf(result)).toEqual({
      code: 'CONDITION_FAILED',
      failed: ['args.amount > 0 && args.amount <= 1000'],
    });
    expect(text(result)).toContain('args.amount > 0 && args.amount <= 1000');
    expect(JSON.stringify(result)).not.toContain('73519');
    expect(runs).toBe(ran);
    const events = d.engine.sink.events.slice(before);
    expect(events.map((e) => [e.action, e.decision, e.reason])).toEqual([
      ['tool.call', 'allow', undefined],
      ['tool.condition', 'deny', 'CONDITION_FAILED'],
    ]);
    expect(JSON.stringify(events)).not.toContain('73519');
    // The second condition: another currency.
    const usd = await client.callTool({ name: 'refund', arguments: { amount: 10, currency: 'USD' } });
    expect(metaOf(usd)?.failed).toEqual(['args.currency == "EUR"']);
  });

  it('decides the requirement first: a caller without the role is refused before any condition', async () => {
    const client = await connect(INTERN);
    const before = d.engine.sink.events.length;
    // Hidden from the intern, so answered as unknown; no condition was evaluated.
    const attempt = await client
      .callTool({ name: 'refund', arguments: { amount: 1 } })
      .catch((e: Error) => e);
    expect(String(attempt instanceof Error ? attempt.message : JSON.stringify(attempt))).toMatch(
      /not found/i,
    );
    expect(d.engine.sink.events.slice(before).some((e) => e.action === 'tool.condition')).toBe(false);
  });

  it("conditions on the caller: only the caller's own projects, after the schema's transform", async () => {
    const fin = await connect(FINANCE);
    expect(text(await fin.callTool({ name: 'open_project', arguments: { project: 'USER-FIN/Site' } }))).toBe(
      'opened user-fin/site',
    );
    const other = await fin.callTool({ name: 'open_project', arguments: { project: 'user-int/site' } });
    expect(metaOf(other)?.code).toBe('CONDITION_FAILED');
    const intern = await connect(INTERN);
    expect(
      text(await intern.callTool({ name: 'open_project', arguments: { project: 'user-int/notes' } })),
    ).toBe('opened user-int/notes');
  });
});

describe.each(ERAS)("approval: 'confirm' through the v2 server, %s era", (era) => {
  const ran: string[] = [];
  const d = deployment('confirm', (server) => {
    server.registerTool(
      'deploy_production',
      {
        description: 'Deploys to production, once its caller confirms',
        inputSchema: z.object({
          service: z.string(),
          replicas: z.number(),
          api_token: z.string().optional(),
        }),
        requirement: { roles: ['finance'], when: 'args.replicas <= 10' },
        approval: 'confirm',
      },
      async ({ service, replicas }, context) => {
        // The handler's own round trip after the confirmation: it is not asked again.
        if (context.state === undefined)
          return context.inputRequired({
            inputRequests: {
              note: {
                method: 'elicitation/create',
                params: {
                  mode: 'form',
                  message: 'A note for the change log?',
                  requestedSchema: {
                    type: 'object',
                    properties: { note: { type: 'string' } },
                    required: ['note'],
                  },
                },
              },
            },
            state: { service },
          });
        const note = (context.inputResponses?.note as { content?: { note?: string } } | undefined)?.content
          ?.note;
        ran.push(`${service}x${replicas}`);
        return { content: [{ type: 'text', text: `deployed ${service} x${replicas} (${note})` }] };
      },
    );
    server.registerTool(
      'restart',
      {
        description: 'Restarts a service, once its caller confirms',
        inputSchema: z.object({ service: z.string() }),
        requirement: {},
        approval: 'confirm',
      },
      async ({ service }) => {
        ran.push(`restart ${service}`);
        return { content: [{ type: 'text', text: `restarted ${service}` }] };
      },
    );
  });

  async function connect(answer: 'accept' | 'decline' | 'none', asked: string[] = []): Promise<Client> {
    const client = new Client(
      { name: 'confirm', version: '1.0.0' },
      {
        ...(answer === 'none' ? {} : { capabilities: { elicitation: { form: {} } } }),
        ...(era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {}),
      },
    );
    if (answer !== 'none')
      client.setRequestHandler('elicitation/create', async (request) => {
        const message = String((request.params as { message?: string }).message);
        asked.push(message);
        const reply: { action: 'accept' | 'decline'; content?: Record<string, string | boolean> } =
          !message.startsWith('Confirm:')
            ? { action: 'accept', content: { note: 'weekly' } }
            : answer === 'accept'
              ? { action: 'accept', content: { confirm: true } }
              : { action: 'decline' };
        return reply;
      });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(d.url), {
        requestInit: { headers: { authorization: `Bearer ${d.engine.token(FINANCE)}` } },
      }),
    );
    d.open.push(client);
    return client;
  }

  it('asks the caller, with the tool and a redacted summary, then runs once; audited tool.confirm allow', async () => {
    const asked: string[] = [];
    const client = await connect('accept', asked);
    const before = d.engine.sink.events.length;
    const result = await client.callTool({
      name: 'deploy_production',
      arguments: { service: 'billing', replicas: 3, api_token: 'tok-SECRET-123' },
    });
    expect(text(result)).toBe('deployed billing x3 (weekly)');
    expect(asked).toEqual([
      'Confirm: run \'deploy_production\' with service: "billing", replicas: 3, api_token: [redacted]?',
      'A note for the change log?',
    ]);
    expect(JSON.stringify(asked)).not.toContain('SECRET');
    const confirms = d.engine.sink.events.slice(before).filter((e) => e.action === 'tool.confirm');
    expect(confirms.map((e) => [e.decision, e.target])).toEqual([['allow', 'deploy_production']]);
    expect(ran.filter((r) => r === 'billingx3')).toHaveLength(1);
  });

  it('a declined confirmation is NOT_CONFIRMED and the tool never runs; audited as a deny', async () => {
    const client = await connect('decline');
    const runs = ran.length;
    const before = d.engine.sink.events.length;
    const result = await client.callTool({
      name: 'deploy_production',
      arguments: { service: 'search', replicas: 2 },
    });
    expect(result.isError).toBe(true);
    expect(metaOf(result)?.code).toBe('NOT_CONFIRMED');
    expect(ran.length).toBe(runs);
    expect(d.engine.sink.events.slice(before).filter((e) => e.action === 'tool.confirm')).toEqual([
      expect.objectContaining({ decision: 'deny', reason: 'NOT_CONFIRMED' }),
    ]);
  });

  it('a client without form elicitation is refused, never run unconfirmed', async () => {
    const client = await connect('none');
    const runs = ran.length;
    const outcome = await client.callTool({ name: 'restart', arguments: { service: 'search' } }).then(
      (r) => JSON.stringify(r),
      (e: Error) => e.message,
    );
    expect(outcome).toMatch(/elicitation|capabilit/i);
    expect(ran.length).toBe(runs);
    // With one, the same call runs after the confirmation.
    const willing = await connect('accept');
    expect(text(await willing.callTool({ name: 'restart', arguments: { service: 'search' } }))).toBe(
      'restarted search',
    );
  });

  // The requestState is the 2026-07-28 round trip's (the 2025 era asks on the session): registered there only.
  if (era === 'modern')
    it('the sealed confirmation is bound to the exact arguments, and used once', async () => {
      const call = async (args: Record<string, unknown>, requestState?: string) => {
        const response = await fetch(d.url, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${d.engine.token(FINANCE)}`,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'mcp-protocol-version': '2026-07-28',
            'mcp-method': 'tools/call',
            'mcp-name': 'restart',
          },
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'tools/call',
            params: {
              name: 'restart',
              arguments: args,
              ...(requestState
                ? {
                    requestState,
                    inputResponses: { 'authsec/confirm': { action: 'accept', content: { confirm: true } } },
                  }
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
      const runs = ran.length;
      const state = (await call({ service: 'search' })).result?.requestState;
      expect(state).toMatch(/^as1\./);
      // Confirmed for 'search', replayed for 'billing': refused, and nothing ran.
      expect(JSON.stringify(await call({ service: 'billing' }, state))).toMatch(/requestState/);
      expect(ran.length).toBe(runs);
      // A state is used once: the confirmation of 'search' cannot be replayed either.
      const fresh = (await call({ service: 'search' })).result?.requestState;
      expect((await call({ service: 'search' }, fresh)).result?.content?.[0]?.text).toBe('restarted search');
      expect((await call({ service: 'search' }, fresh)).error?.code).toBe(-32602);
      expect(ran.length).toBe(runs + 1);
    });

  it('conditions come first: a call breaking one is refused before anyone is asked', async () => {
    const asked: string[] = [];
    const client = await connect('accept', asked);
    const result = await client.callTool({
      name: 'deploy_production',
      arguments: { service: 'x', replicas: 50 },
    });
    expect(metaOf(result)?.code).toBe('CONDITION_FAILED');
    expect(asked).toEqual([]);
  });
});

describe('conditions at declaration', () => {
  it('a bad expression fails the declaration with a TypeError naming the tool', () => {
    const engine = createTestEngine();
    const server = protect(engine.authsec, { name: 'bad', version: '1.0.0' });
    expect(() =>
      server.registerTool('refund', { requirement: { when: 'args.amount <=' } }, async () => ({
        content: [],
      })),
    ).toThrow(/requirement of tool 'refund': condition "args.amount <=" is not valid CEL/);
  });

  it('resources and prompts refuse conditions (they have no validated arguments to check)', () => {
    const engine = createTestEngine();
    const server = protect(engine.authsec, { name: 'bad', version: '1.0.0' });
    expect(() =>
      server.registerResource('r', 'acme://r', { requirement: { when: 'user.tenant == "x"' } }, async () => ({
        contents: [],
      })),
    ).toThrow(/resource 'r' has `when` conditions, which apply to tools only/);
    expect(() =>
      server.registerPrompt('p', { requirement: { when: 'true' } }, async () => ({ messages: [] })),
    ).toThrow(/prompt 'p' has `when` conditions/);
  });
});

describe('conditions on the v1 SDK line (createAuthSecServer)', () => {
  it('checks them after the schema, with the same code and audit', async () => {
    let runs = 0;
    const app = await createTestApp({
      tools: [
        protectV1(
          'refund',
          REFUND,
          (args) => {
            runs++;
            return `refunded ${String(args.amount)} ${String(args.currency)}`;
          },
          { inputSchema: z.object({ amount: z.number(), currency: z.string().default('EUR') }) },
        ),
      ],
    });
    const principal = await app.principal(FINANCE);
    app.login.login('c1', principal);
    const client = await connectClient(app.mcp, 'c1');
    try {
      const ok = await client.client.callTool({ name: 'refund', arguments: { amount: 999 } });
      expect(text(ok)).toBe('refunded 999 EUR');
      const over = await client.client.callTool({ name: 'refund', arguments: { amount: 1001 } });
      expect(over.isError).toBe(true);
      expect(metaOf(over)).toEqual({
        code: 'CONDITION_FAILED',
        failed: ['args.amount > 0 && args.amount <= 1000'],
      });
      expect(runs).toBe(1);
      expect(
        app.sink.events.filter((e) => e.action === 'tool.condition').map((e) => [e.decision, e.reason]),
      ).toEqual([
        ['allow', undefined],
        ['deny', 'CONDITION_FAILED'],
      ]);
    } finally {
      await client.close();
    }
  });
});
