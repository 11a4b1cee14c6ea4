/**
 * Conformance mode: AuthSec with AUTHORIZATION OFF, for the official MCP conformance suite only.
 *
 * The suite (`@modelcontextprotocol/conformance server --url ...`) has no authorization scenarios and no way to
 * send a token, so every request here is treated as one fixed, frozen conformance principal. The mode is loud
 * about itself (a warning on every start) and is the ONLY place the suite's expected tools are registered.
 * Nothing here is exported by any published package.
 */

import { AsyncLocalStorage } from 'node:async_hooks';
import { generateKeyPairSync } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { type AuthSec, createAuthSec, createLogger, type Principal } from '@authsec/core';
import { authSecMcpRouter } from '@authsec/express';
import { authSecPlugin } from '@authsec/fastify';
import {
  type AuthSecMcpServer,
  type AuthSecTool,
  createAuthSecServer,
  publicTool,
  startHttpServer,
} from '@authsec/mcp';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  CreateMessageResultSchema,
  ElicitResultSchema,
  type ServerNotification,
  type ServerRequest,
  SetLevelRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import express from 'express';
import Fastify from 'fastify';

export const CONFORMANCE_WARNING = 'AUTHSEC CONFORMANCE MODE: AUTHORIZATION IS OFF';

const ISSUER = 'https://conformance.invalid';

/** The one caller every request is, in conformance mode. */
export const CONFORMANCE_PRINCIPAL: Principal = Object.freeze({
  subject: 'conformance-suite',
  email: undefined,
  tenantId: 'conformance',
  clientId: 'conformance-suite',
  issuer: ISSUER,
  roles: Object.freeze([]) as readonly string[],
  groups: Object.freeze([]) as readonly string[],
  scopes: Object.freeze([]) as readonly string[],
  resources: Object.freeze([]) as readonly string[],
  permissions: Object.freeze([]) as readonly string[],
  expiresAt: Number.MAX_SAFE_INTEGER,
  claims: Object.freeze({}),
});

/**
 * An engine facade that authenticates every request, with or without a token, as {@link CONFORMANCE_PRINCIPAL}.
 * Everything else (tool registry, authorization, audit) is the real engine's.
 */
export function allowAllEngine(engine: AuthSec): AuthSec {
  engine.logger.warn(CONFORMANCE_WARNING, { mode: 'conformance', authorization: 'off' });
  return Object.freeze({
    ...engine,
    tools: engine.tools,
    logger: engine.logger,
    clock: engine.clock,
    authenticate: async () => CONFORMANCE_PRINCIPAL,
    authenticateHeader: async () => CONFORMANCE_PRINCIPAL,
  }) as AuthSec;
}

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;
const currentCall = new AsyncLocalStorage<Extra>();

function extra(): Extra {
  const value = currentCall.getStore();
  if (value === undefined) throw new Error('conformance tool called outside a tools/call request');
  return value;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// 1x1 red PNG and a tiny silent WAV.
const PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV = 'UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA=';

/** The tools the conformance suite expects. Registered ONLY in conformance mode. */
export function conformanceTools(): AuthSecTool[] {
  return [
    publicTool(
      'test_simple_text',
      () => ({
        content: [{ type: 'text', text: 'This is a simple text response for testing.' }],
      }),
      { description: 'Returns simple text content' },
    ),
    publicTool(
      'test_image_content',
      () => ({
        content: [{ type: 'image', data: PNG, mimeType: 'image/png' }],
      }),
      { description: 'Returns image content' },
    ),
    publicTool(
      'test_audio_content',
      () => ({
        content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }],
      }),
      { description: 'Returns audio content' },
    ),
    publicTool(
      'test_embedded_resource',
      () => ({
        content: [
          {
            type: 'resource',
            resource: {
              uri: 'test://embedded-resource',
              mimeType: 'text/plain',
              text: 'This is an embedded resource content.',
            },
          },
        ],
      }),
      { description: 'Returns an embedded resource' },
    ),
    publicTool(
      'test_multiple_content_types',
      () => ({
        content: [
          { type: 'text', text: 'Multiple content types test:' },
          { type: 'image', data: PNG, mimeType: 'image/png' },
          {
            type: 'resource',
            resource: {
              uri: 'test://mixed-content-resource',
              mimeType: 'application/json',
              text: '{"test":"data","value":123}',
            },
          },
        ],
      }),
      { description: 'Returns text, image and resource content' },
    ),
    publicTool(
      'test_tool_with_logging',
      async () => {
        const { sendNotification } = extra();
        for (const data of ['Tool execution started', 'Tool processing data', 'Tool execution completed']) {
          await sendNotification({ method: 'notifications/message', params: { level: 'info', data } });
          await sleep(50);
        }
        return { content: [{ type: 'text', text: 'Tool with logging executed successfully' }] };
      },
      { description: 'Sends log messages while running' },
    ),
    publicTool(
      'test_tool_with_progress',
      async () => {
        const { sendNotification, _meta } = extra();
        const progressToken = _meta?.progressToken;
        if (progressToken !== undefined) {
          for (const progress of [0, 50, 100]) {
            await sendNotification({
              method: 'notifications/progress',
              params: { progressToken, progress, total: 100, message: `Completed step ${progress}` },
            });
            await sleep(50);
          }
        }
        return { content: [{ type: 'text', text: String(progressToken ?? 'no progress token') }] };
      },
      { description: 'Reports progress while running' },
    ),
    publicTool(
      'test_error_handling',
      () => ({
        isError: true,
        content: [{ type: 'text', text: 'This tool intentionally returns an error for testing' }],
      }),
      { description: 'Always returns an error result' },
    ),
    publicTool(
      'test_sampling',
      async (args) => {
        const prompt = String((args as { prompt?: unknown }).prompt ?? '');
        const result = await extra().sendRequest(
          {
            method: 'sampling/createMessage',
            params: { messages: [{ role: 'user', content: { type: 'text', text: prompt } }], maxTokens: 100 },
          },
          CreateMessageResultSchema,
        );
        const text = result.content.type === 'text' ? result.content.text : 'No text response';
        return { content: [{ type: 'text', text: `LLM response: ${text}` }] };
      },
      {
        description: 'Asks the client to sample',
        inputSchema: { type: 'object', properties: { prompt: { type: 'string' } }, required: ['prompt'] },
      },
    ),
    publicTool(
      'test_elicitation',
      async (args) => {
        const message = String((args as { message?: unknown }).message ?? '');
        const result = await extra().sendRequest(
          {
            method: 'elicitation/create',
            params: {
              message,
              requestedSchema: {
                type: 'object',
                properties: {
                  username: { type: 'string', description: "User's response" },
                  email: { type: 'string', description: "User's email address" },
                },
                required: ['username', 'email'],
              },
            },
          },
          ElicitResultSchema,
        );
        return {
          content: [
            {
              type: 'text',
              text: `User response: action=${result.action}, content=${JSON.stringify(result.content ?? {})}`,
            },
          ],
        };
      },
      {
        description: 'Asks the client for input',
        inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] },
      },
    ),
  ];
}

/**
 * Per-connection servers whose `tools/call` runs inside an async context carrying the request's `extra`, so that
 * the conformance tools can log, report progress, sample and elicit. The AuthSec call path itself is unchanged.
 */
function withRequestContext(server: AuthSecMcpServer): AuthSecMcpServer {
  const facade = Object.create(server) as AuthSecMcpServer & {
    createServer: AuthSecMcpServer['createServer'];
  };
  Object.defineProperty(facade, 'createServer', {
    value: (...args: Parameters<AuthSecMcpServer['createServer']>) => {
      const sdk = server.createServer(...args);
      // The suite's logging tool needs the `logging` capability and `logging/setLevel` (the SDK only installs its
      // own handler when the capability is given at construction, which AuthSec's servers do not do).
      sdk.registerCapabilities({ logging: {} });
      sdk.setRequestHandler(SetLevelRequestSchema, async () => ({}));
      const handlers = (
        sdk as unknown as { _requestHandlers: Map<string, (req: unknown, extra: Extra) => unknown> }
      )._requestHandlers;
      const original = handlers.get('tools/call');
      if (original === undefined)
        throw new Error('conformance: the AuthSec server has no tools/call handler');
      handlers.set('tools/call', (request, callExtra) =>
        currentCall.run(callExtra, () => original(request, callExtra)),
      );
      return sdk;
    },
  });
  return facade;
}

/** A running conformance server. */
export interface ConformanceServer {
  readonly adapter: 'express' | 'fastify' | 'node-http';
  readonly url: string;
  close(): Promise<void>;
}

function build(): { engine: AuthSec; server: AuthSecMcpServer } {
  const logger = createLogger({ level: 'warn' });
  // The engine needs an issuer key; no token is ever verified in this mode, so a throwaway one will do.
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'conformance', alg: 'ES256', use: 'sig' };
  const real = createAuthSec({
    issuers: [{ issuer: ISSUER, keys: [jwk] }],
    audience: 'http://127.0.0.1/mcp',
    logger,
  });
  const engine = allowAllEngine(real);
  const server = createAuthSecServer({
    name: 'authsec-conformance',
    version: '0.0.0',
    tools: conformanceTools(),
    authsec: engine,
  });
  return { engine, server: withRequestContext(server) };
}

async function freePort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Starts the conformance server on 127.0.0.1 with one of the three HTTP adapters. */
export async function startConformanceServer(
  adapter: ConformanceServer['adapter'],
): Promise<ConformanceServer> {
  const { engine, server } = build();
  if (adapter === 'node-http') {
    const running = await startHttpServer({
      server,
      authsec: engine,
      host: '127.0.0.1',
      port: 0,
      authorizationServers: [ISSUER],
    });
    return {
      adapter,
      url: running.url,
      close: async () => {
        await running.close();
        await server.close();
      },
    };
  }
  if (adapter === 'express') {
    const http = createHttpServer();
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const { port } = http.address() as AddressInfo;
    const url = `http://127.0.0.1:${port}/mcp`;
    const app = express();
    const router = authSecMcpRouter({
      server,
      authsec: engine,
      resourceUrl: url,
      authorizationServers: [ISSUER],
    });
    app.use(router);
    http.on('request', app);
    return {
      adapter,
      url,
      close: async () => {
        await router.close();
        http.closeAllConnections();
        await new Promise((resolve) => http.close(resolve));
        await server.close();
      },
    };
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/mcp`;
  const app = Fastify();
  await app.register(authSecPlugin, {
    server,
    authsec: engine,
    resourceUrl: url,
    authorizationServers: [ISSUER],
  });
  await app.listen({ host: '127.0.0.1', port });
  return {
    adapter,
    url,
    close: async () => {
      await app.close();
      await server.close();
    },
  };
}
