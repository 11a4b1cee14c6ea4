/**
 * The module's engine logs through Nest's `Logger` (and so through the application's logger), and no token or
 * argument value of a request reaches it. Real Nest application on 127.0.0.1, the official MCP SDK client.
 */
import 'reflect-metadata';
import { createSigner, post } from '@authsec/adapter-conformance';
import type { AuditSink, Principal } from '@authsec/core';
import { protect } from '@authsec/mcp';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthSecModule } from '../src/index.js';

const ISSUER = 'https://idp.nestjs-logger.test';
const RESOURCE_URL = 'http://127.0.0.1:4998/mcp';
const SECRET_ARGUMENT = 'argument-value-91cd-never-logged';
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** The application's logger: records what Nest's `Logger` hands it, message and context. */
function captureLogger(): LoggerService & { readonly lines: { level: string; args: unknown[] }[] } {
  const lines: { level: string; args: unknown[] }[] = [];
  const at =
    (level: string) =>
    (...args: unknown[]) =>
      void lines.push({ level, args });
  return {
    lines,
    log: at('log'),
    error: at('error'),
    warn: at('warn'),
    debug: at('debug'),
    verbose: at('verbose'),
  };
}

const failingSink: AuditSink = {
  write() {
    throw new Error('audit sink is down');
  },
  flush: async () => {},
  close: async () => {},
};

describe('AuthSecModule and the application logger', () => {
  it("logs the engine's messages through Nest's Logger, never a token or an argument value", async () => {
    const signer = createSigner(ISSUER, { audience: RESOURCE_URL, expiresIn: 600 });
    const logger = captureLogger();
    const echo = protect(
      'echo',
      { scopes: ['read'] },
      (args: Record<string, unknown>) => `got ${args.text}`,
      {
        inputSchema: { type: 'object', properties: { text: { type: 'string' } } },
      },
    );
    const moduleRef = await Test.createTestingModule({
      imports: [
        AuthSecModule.forRoot({
          // Options, not an engine: the module creates it, with Nest's Logger.
          authsec: {
            issuers: [{ issuer: ISSUER, keys: [signer.jwk] }],
            audience: RESOURCE_URL,
            audit: { sinks: [failingSink] },
            directory: {
              resolve: async (principal: Principal) => {
                if (principal.subject === 'broken') throw new Error('directory exploded');
                return principal;
              },
            },
          },
          resourceUrl: RESOURCE_URL,
          authorizationServers: [ISSUER],
          tools: [echo],
        }),
      ],
    })
      .setLogger(logger)
      .compile();
    const app = moduleRef.createNestApplication();
    closers.push(() => app.close());
    await app.listen(0, '127.0.0.1');
    const url = new URL(`${(await app.getUrl()).replace('[::1]', '127.0.0.1')}/mcp`);

    const token = signer.sign({ sub: 'u1', tenant_id: 'acme-corp', scope: 'read' });
    const client = new Client({ name: 'logger-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(url, {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    closers.push(() => client.close());
    const result = (await client.callTool({ name: 'echo', arguments: { text: SECRET_ARGUMENT } })) as {
      content: { text: string }[];
    };
    expect(result.content[0]!.text).toBe(`got ${SECRET_ARGUMENT}`);
    const broken = signer.sign({ sub: 'broken', tenant_id: 'acme-corp', scope: 'read' });
    const refused = await post(
      url,
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} },
      { authorization: `Bearer ${broken}` },
    );
    // A directory failing with a plain Error cannot answer: 503 (fail closed), logged with its cause.
    expect(refused.status).toBe(503);

    const ours = logger.lines.filter((line) => line.args.at(-1) === 'AuthSec');
    // Nest's Logger passes `error(message, stack, context)`: the message and the context are ours.
    const errors = ours.filter((line) => line.level === 'error').map((line) => line.args[0]);
    expect(errors).toContain('Audit sink failed to accept an event {"cause":"Error: audit sink is down"}');
    expect(errors).toContain(
      'The directory failed to resolve a caller {"cause":"Error: directory exploded"}',
    );
    const text = JSON.stringify(logger.lines);
    for (const secret of [token, broken, token.split('.')[2]!, broken.split('.')[1]!, SECRET_ARGUMENT]) {
      expect(text).not.toContain(secret);
    }
  });
});
