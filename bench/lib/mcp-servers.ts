/**
 * The servers of the MCP throughput benchmark, each run in a child process of its own (so that the load
 * generator and the server under test do not share an event loop): `node dist/lib/mcp-servers.js <kind>`.
 *
 * Every kind serves the same `hello` tool over stateful Streamable HTTP at `http://127.0.0.1:<port>/mcp` on
 * `node:http` (directly, or through Express or Fastify), with the SDK's `StreamableHTTPServerTransport`, one SDK server per MCP session, JSON bodies
 * parsed before the transport sees them:
 *
 * - `plain`: `McpServer` + `registerTool`, no authentication: what one writes with the SDK alone.
 * - `plain-lowlevel`: the SDK's low-level `Server` with its own `tools/list` and `tools/call` handlers, no
 *   authentication: the same base `@authsec/mcp` builds on.
 * - `authsec`: `createAuthSecServer` + `createMcpHttpHandler` with an engine on a local ES256 key and the
 *   verified-token cache on, the tool wrapped by `protect('hello', {}, ...)`; no audit sink (the engine's
 *   default, which skips building audit events).
 * - `authsec-audit`: the same with an audit sink that counts events and drops them: the cost of building one
 *   audit event per call (argument digest included), without any I/O.
 * - `sdk-bearer`: the SDK's own auth: Express, `express.json()`, `requireBearerAuth` with a verifier that runs
 *   jose `jwtVerify` against the local ES256 public key on every request, then the `plain` session handler (the
 *   tool greets the caller from `authInfo`).
 * - `authsec-express`, `authsec-fastify`: the `authsec` server and engine behind `authSecMcpRouter` of
 *   `@authsec/express` on Express 5 and `authSecPlugin` of `@authsec/fastify` on Fastify 5; with `-nocache`, the
 *   engine's verified-token cache off (`cache: { enabled: false }`).
 *
 * Protocol with the parent (IPC): the child sends `{ type: 'ready', url, hello, token? }` once listening (`hello`
 * is the answer every server gives); on
 * `{ type: 'stats' }` it answers `{ type: 'stats', calls, audit }` (tool handler runs, and for `authsec` the
 * audit events by action and decision); it exits when the parent disconnects.
 */

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type AuditEvent, type AuditSink, createAuthSec, silentLogger } from '@authsec/core';
import { authSecMcpRouter } from '@authsec/express';
import { authSecPlugin } from '@authsec/fastify';
import { createAuthSecServer, createMcpHttpHandler, protect } from '@authsec/mcp';
import { InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  isInitializeRequest,
  ListToolsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';
import express from 'express';
import Fastify from 'fastify';
import { exportJWK, generateKeyPair, type JWTPayload, jwtVerify, SignJWT } from 'jose';

/** The kinds of server this script runs. */
export type BenchServerKind =
  | 'plain'
  | 'plain-lowlevel'
  | 'plain-express'
  | 'plain-fastify'
  | 'sdk-bearer'
  | 'authsec'
  | 'authsec-audit'
  | 'authsec-express'
  | 'authsec-express-listener'
  | 'authsec-express-nocache'
  | 'authsec-fastify'
  | 'authsec-fastify-nocache';

const KINDS: readonly BenchServerKind[] = [
  'plain',
  'plain-lowlevel',
  'plain-express',
  'plain-fastify',
  'sdk-bearer',
  'authsec',
  'authsec-audit',
  'authsec-express',
  'authsec-express-listener',
  'authsec-express-nocache',
  'authsec-fastify',
  'authsec-fastify-nocache',
];

/** The caller's email: in the token for `authsec`, fixed in the plain servers' answer. */
const BENCH_EMAIL = 'ada@acme.example';
/** What `hello` answers, on every server. */
const HELLO_TEXT = `Hello, ${BENCH_EMAIL}!`;

const ISSUER = 'https://issuer.bench.example';
const NAME = 'bench-server';
const VERSION = '1.0.0';
const DESCRIPTION = 'Greets the caller.';

/** Messages from the child (the parent imports this type only: importing the module would run it). */
export type ChildMessage =
  | { type: 'ready'; url: string; hello: string; token?: string }
  | { type: 'stats'; calls: number; audit: Record<string, number>; cpuMicros: number };

let calls = 0;
const helloResult = (text: string) => {
  calls++;
  return { content: [{ type: 'text' as const, text }] };
};

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      try {
        resolve(chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (error) {
        reject(error);
      }
    });
    req.on('error', reject);
  });
}

function rpcError(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

/** A plain SDK server for one session: `McpServer` or the low-level `Server`. */
function plainServer(kind: 'plain' | 'plain-lowlevel' | 'sdk-bearer'): {
  connect(t: StreamableHTTPServerTransport): Promise<void>;
} {
  if (kind === 'sdk-bearer') {
    // The caller's identity comes from the verified token, as in ours: `req.auth` reaches the tool as `authInfo`.
    const server = new McpServer({ name: NAME, version: VERSION });
    server.registerTool('hello', { description: DESCRIPTION }, async (extra) => {
      const email = extra.authInfo?.extra?.['email'];
      return helloResult(`Hello, ${typeof email === 'string' ? email : String(extra.authInfo?.clientId)}!`);
    });
    return server;
  }
  if (kind === 'plain') {
    const server = new McpServer({ name: NAME, version: VERSION });
    server.registerTool('hello', { description: DESCRIPTION }, async () => helloResult(HELLO_TEXT));
    return server;
  }
  const server = new Server({ name: NAME, version: VERSION }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: [{ name: 'hello', description: DESCRIPTION, inputSchema: { type: 'object' } }],
  }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    if (request.params.name !== 'hello') throw new Error(`Unknown tool: ${request.params.name}`);
    return helloResult(HELLO_TEXT);
  });
  return server;
}

/**
 * The plain servers' request listener: one transport and one SDK server per MCP session. `parsed`: the body an
 * Express JSON parser already read (`sdk-bearer`); otherwise the listener reads it.
 */
function plainHandler(kind: 'plain' | 'plain-lowlevel' | 'sdk-bearer') {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  return async (req: IncomingMessage, res: ServerResponse, parsed?: { body: unknown }): Promise<void> => {
    if (new URL(req.url ?? '/', 'http://localhost').pathname !== '/mcp')
      return rpcError(res, 404, 'Not found');
    let body: unknown;
    try {
      body = parsed !== undefined ? parsed.body : req.method === 'POST' ? await readJson(req) : undefined;
    } catch {
      return rpcError(res, 400, 'Parse error');
    }
    const header = req.headers['mcp-session-id'];
    const sessionId = Array.isArray(header) ? header[0] : header;
    let transport = sessionId === undefined ? undefined : sessions.get(sessionId);
    if (transport === undefined) {
      if (sessionId !== undefined) return rpcError(res, 404, 'Session not found');
      if (req.method !== 'POST' || !isInitializeRequest(body)) return rpcError(res, 400, 'Bad Request');
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          sessions.set(id, created);
        },
      });
      created.onclose = () => {
        if (created.sessionId !== undefined) sessions.delete(created.sessionId);
      };
      await plainServer(kind).connect(created);
      transport = created;
    }
    await transport.handleRequest(req, res, body);
  };
}

/** Counts audit events by `action:decision`, and drops them. */
function countingSink(counts: Record<string, number>): AuditSink {
  return {
    write(event: AuditEvent) {
      const key = `${event.action}:${event.decision}`;
      counts[key] = (counts[key] ?? 0) + 1;
    },
    flush: async () => {},
    close: async () => {},
  };
}

/** An ES256 key pair and a token for `url` signed with it: the same claims for every authenticated kind. */
async function signingSetup(url: string) {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'ES256', use: 'sig' };
  const token = await new SignJWT({
    email: BENCH_EMAIL,
    tenant_id: 'acme-corp',
    roles: ['admin'],
    groups: ['engineering'],
    scope: 'read write',
    resources: ['projects'],
  })
    .setProtectedHeader({ alg: 'ES256', kid: 'bench-1', typ: 'at+jwt' })
    .setSubject('user-42')
    .setIssuer(ISSUER)
    .setAudience(url)
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(privateKey);
  return { publicKey, publicJwk, token };
}

/**
 * The SDK's own bearer middleware as its documentation shows it: Express, `express.json()`, `requireBearerAuth`
 * with an `OAuthTokenVerifier` that checks the token with jose `jwtVerify` against the local public key (issuer,
 * audience, ES256 only), then the plain `McpServer` session handler.
 */
function sdkBearerApp(
  url: string,
  publicKey: Awaited<ReturnType<typeof generateKeyPair>>['publicKey'],
): express.Express {
  const resource = new URL(url);
  const verifier = {
    async verifyAccessToken(token: string): Promise<AuthInfo> {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, publicKey, {
          issuer: ISSUER,
          audience: url,
          algorithms: ['ES256'],
        }));
      } catch (error) {
        throw new InvalidTokenError(`invalid token: ${(error as Error).message}`);
      }
      const scope = typeof payload['scope'] === 'string' ? payload['scope'] : '';
      return {
        token,
        clientId: typeof payload['client_id'] === 'string' ? payload['client_id'] : String(payload.sub),
        scopes: scope === '' ? [] : scope.split(' '),
        // requireBearerAuth refuses a token without `expiresAt`.
        ...(payload.exp === undefined ? {} : { expiresAt: payload.exp }),
        resource,
        extra: { sub: payload.sub, email: payload['email'] },
      };
    },
  };
  const handle = plainHandler('sdk-bearer');
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json());
  app.all(
    '/mcp',
    requireBearerAuth({ verifier, expectedResource: resource }),
    (req: express.Request, res: express.Response) => {
      handle(req, res, { body: req.body }).catch(() => {
        if (!res.headersSent) rpcError(res, 500, 'Internal error');
        else res.end();
      });
    },
  );
  return app;
}

/**
 * The plain `McpServer` on Express 5 as the SDK's documentation shows it (`express.json()`, then the session
 * handler on `/mcp`), no authentication: what Express itself costs in front of the SDK.
 */
function plainExpressApp(): express.Express {
  const handle = plainHandler('plain');
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json());
  app.all('/mcp', (req: express.Request, res: express.Response) => {
    handle(req, res, { body: req.body }).catch(() => {
      if (!res.headersSent) rpcError(res, 500, 'Internal error');
      else res.end();
    });
  });
  return app;
}

/**
 * The plain `McpServer` on Fastify 5 as one writes it without AuthSec: Fastify parses the JSON body, the route
 * hands the raw request and response to the session handler (`reply.hijack()`), no authentication.
 */
async function plainFastifyApp(http: ReturnType<typeof createServer>): Promise<void> {
  const handle = plainHandler('plain');
  const app = Fastify({
    logger: false,
    serverFactory: (handler) => {
      http.on('request', handler);
      return http;
    },
  });
  app.all('/mcp', async (request, reply) => {
    reply.hijack();
    await handle(request.raw, reply.raw, { body: request.body }).catch(() => {
      if (!reply.raw.headersSent) rpcError(reply.raw, 500, 'Internal error');
      else reply.raw.end();
    });
  });
  await app.ready();
}

async function main(): Promise<void> {
  const kind = process.argv[2] as BenchServerKind;
  if (!KINDS.includes(kind)) {
    throw new TypeError(`usage: mcp-servers.js ${KINDS.join('|')} (got ${String(kind)})`);
  }
  const http = createServer();
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
  const audit: Record<string, number> = {};
  let token: string | undefined;

  if (kind === 'sdk-bearer') {
    const setup = await signingSetup(url);
    token = setup.token;
    http.on('request', sdkBearerApp(url, setup.publicKey));
  } else if (kind.startsWith('authsec')) {
    const setup = await signingSetup(url);
    token = setup.token;
    const cacheOn = !kind.endsWith('-nocache');
    const authsec = createAuthSec({
      issuers: [{ issuer: ISSUER, keys: [setup.publicJwk] }],
      audience: url,
      logger: silentLogger,
      cache: cacheOn ? { enabled: true, maxEntries: 10_000 } : { enabled: false },
      // No sink: the engine's default, audit off. `authsec-audit` adds a sink that only counts.
      ...(kind === 'authsec-audit' ? { audit: { sinks: [countingSink(audit)] } } : {}),
    });
    const mcp = createAuthSecServer({
      name: NAME,
      version: VERSION,
      authsec,
      tools: [
        protect(
          'hello',
          {},
          (args) => helloResult(`Hello, ${args._user_info.email ?? args._user_info.sub}!`).content,
          {
            description: DESCRIPTION,
          },
        ),
      ],
    });
    const adapter = { server: mcp, authsec, resourceUrl: url, authorizationServers: [ISSUER] };
    if (kind === 'authsec-express-listener') {
      const app = express();
      app.disable('x-powered-by');
      const mcp = authSecMcpRouter(adapter);
      app.use(mcp);
      http.on('request', mcp.listener(app));
    } else if (kind.startsWith('authsec-express')) {
      const app = express();
      app.disable('x-powered-by');
      app.use(authSecMcpRouter(adapter));
      http.on('request', app);
    } else if (kind.startsWith('authsec-fastify')) {
      // Fastify on the server already listening (its port is the audience): the factory hands it the server.
      const app = Fastify({
        logger: false,
        serverFactory: (handler) => {
          http.on('request', handler);
          return http;
        },
      });
      await app.register(authSecPlugin, adapter);
      await app.ready();
    } else {
      http.on('request', createMcpHttpHandler(adapter));
    }
  } else if (kind === 'plain-express') {
    http.on('request', plainExpressApp());
  } else if (kind === 'plain-fastify') {
    await plainFastifyApp(http);
  } else {
    const handle = plainHandler(kind as 'plain' | 'plain-lowlevel');
    http.on('request', (req: IncomingMessage, res: ServerResponse) => {
      handle(req, res).catch(() => {
        if (!res.headersSent) rpcError(res, 500, 'Internal error');
        else res.end();
      });
    });
  }

  process.on('message', (message: { type?: string }) => {
    if (message?.type === 'stats') {
      const { user, system } = process.cpuUsage();
      process.send?.({
        type: 'stats',
        calls,
        audit: { ...audit },
        cpuMicros: user + system,
      } satisfies ChildMessage);
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({
    type: 'ready',
    url,
    hello: HELLO_TEXT,
    ...(token ? { token } : {}),
  } satisfies ChildMessage);
}

main().catch((error: unknown) => {
  process.stderr.write(`mcp-servers: ${String((error as Error)?.stack ?? error)}\n`);
  process.exit(1);
});
