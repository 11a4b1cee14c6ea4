/**
 * The plugin routes the logs of an engine created without a `logger` to `fastify.log` (pino), and no token or
 * argument value of a request reaches it. Real Fastify on 127.0.0.1, the official MCP SDK client.
 */
import { createSigner, post } from '@authsec/adapter-conformance';
import { type AuditSink, createAuthSec, type Principal, silentLogger } from '@authsec/core';
import { createAuthSecServer, protect } from '@authsec/mcp';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { authSecPlugin } from '../src/index.js';

const ISSUER = 'https://idp.fastify-logger.example';
const SECRET_ARGUMENT = 'argument-value-2b8e-never-logged';
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

// A sink that cannot take events: every decision logs an error through the engine's logger.
const failingSink: AuditSink = {
  write() {
    throw new Error('audit sink is down');
  },
  flush: async () => {},
  close: async () => {},
};

async function start(explicitLogger: boolean) {
  const lines: string[] = [];
  const app = Fastify({ logger: { level: 'trace', stream: { write: (line: string) => lines.push(line) } } });
  closers.push(() => app.close());
  const resourceUrl = 'http://127.0.0.1/mcp';
  const signer = createSigner(ISSUER, { audience: resourceUrl, expiresIn: 600 });
  const authsec = createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [signer.jwk] }],
    audience: resourceUrl,
    audit: { sinks: [failingSink] },
    // A directory that fails for one caller with an unexpected error, which the engine logs.
    directory: {
      resolve: async (principal: Principal) => {
        if (principal.subject === 'broken') throw new Error('directory exploded');
        return principal;
      },
    },
    ...(explicitLogger ? { logger: silentLogger } : {}),
  });
  const echo = protect('echo', { scopes: ['read'] }, (args: Record<string, unknown>) => `got ${args.text}`, {
    inputSchema: { type: 'object', properties: { text: { type: 'string' } } },
  });
  const server = createAuthSecServer({ name: 'logger', version: '1.0.0', tools: [echo], authsec });
  await app.register(authSecPlugin, { server, authsec, resourceUrl, authorizationServers: [ISSUER] });
  const url = new URL(`${await app.listen({ host: '127.0.0.1', port: 0 })}/mcp`);
  return { lines, url, signer };
}

async function callEcho(url: URL, token: string): Promise<unknown> {
  const client = new Client({ name: 'logger-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(url, {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  closers.push(() => client.close());
  return client.callTool({ name: 'echo', arguments: { text: SECRET_ARGUMENT } });
}

describe('authSecPlugin and the application logger', () => {
  it("logs the engine's messages through fastify.log (pino), never a token or an argument value", async () => {
    const { lines, url, signer } = await start(false);
    const token = signer.sign({ sub: 'u1', tenant_id: 'acme-corp', scope: 'read' });
    const result = (await callEcho(url, token)) as { content: { text: string }[] };
    expect(result.content[0]!.text).toBe(`got ${SECRET_ARGUMENT}`);
    const broken = signer.sign({ sub: 'broken', tenant_id: 'acme-corp', scope: 'read' });
    const refused = await post(
      url,
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} },
      { authorization: `Bearer ${broken}` },
    );
    // A directory failing with a plain Error cannot answer: 503 (fail closed), logged with its cause.
    expect(refused.status).toBe(503);

    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    // pino's shape: numeric level, `msg`, the fields beside it.
    expect(records).toContainEqual(
      expect.objectContaining({
        level: 50,
        msg: 'Audit sink failed to accept an event',
        cause: 'Error: audit sink is down',
      }),
    );
    expect(records).toContainEqual(
      expect.objectContaining({
        level: 50,
        msg: 'The directory failed to resolve a caller',
        cause: 'Error: directory exploded',
      }),
    );
    const text = lines.join('');
    for (const secret of [token, broken, token.split('.')[2]!, broken.split('.')[1]!, SECRET_ARGUMENT]) {
      expect(text).not.toContain(secret);
    }
  });

  it('keeps an explicit logger given to createAuthSec', async () => {
    const { lines, url, signer } = await start(true);
    await callEcho(url, signer.sign({ sub: 'u1', tenant_id: 'acme-corp', scope: 'read' }));
    expect(lines.join('')).not.toContain('Audit sink failed');
  });
});
