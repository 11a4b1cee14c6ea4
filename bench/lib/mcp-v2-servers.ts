/**
 * The servers of the MCP SDK v2 throughput benchmark (protocol 2026-07-28, stateless), each in a child process of
 * its own: `node dist/lib/mcp-v2-servers.js <kind>`. Every kind serves the same `hello` tool at
 * `http://127.0.0.1:<port>/mcp` on `node:http` through the SDK's `createMcpHandler` (one server per request, as
 * the SDK's own idiom is) and `toNodeHandler`:
 *
 * - `v2-plain`: `createMcpHandler` with a factory registering `hello` on an `McpServer`, no authentication.
 * - `v2-bearer`: the SDK's own web-standard `requireBearerAuth` with a verifier running jose `jwtVerify` against
 *   the local ES256 key on every request, in front of the same handler (the tool greets from `authInfo`).
 * - `v2-authsec`: `protect()` + `createMcpV2HttpHandler` of `@authsec/mcp/v2` with the verified-token cache on
 *   and an audit sink that counts events (the cost of one audit event per call, no I/O).
 * - `v2-plain-<framework>` and `v2-authsec-<framework>` (`express`, `fastify`, `nest-express`, `nest-fastify`):
 *   the plain handler and the same protected server on that framework, as `mcp-v2-frameworks.ts` mounts them.
 *
 * IPC with the parent: `{ type: 'ready', url, hello, token? }` once listening; on `{ type: 'stats' }` it answers
 * `{ type: 'stats', calls, audit, cpuMicros }` (tool runs, audit events by action and decision, and the process's
 * CPU time since start, so the parent can take CPU per call free of the load generator's noise). On
 * `{ type: 'inproc', calls, concurrency, headers, body }` it runs that many requests through the same request
 * listener with no socket at all (an `IncomingMessage` fed the body, a `ServerResponse` whose output is only
 * collected) and answers `{ type: 'inproc', micros, cpuMicros, bad, sample }` (`sample`: a bad answer, if any):
 * the in-process variant, free of the loopback TCP and the load generator that make the HTTP figures vary
 * between rounds on a small machine.
 */

import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { type AddressInfo, Socket } from 'node:net';
import { type AuditEvent, type AuditSink, createAuthSec, silentLogger } from '@authsec/core';
import { createMcpV2HttpHandler, protect } from '@authsec/mcp/v2';
import { toNodeHandler } from '@modelcontextprotocol/node';
import {
  type AuthInfo,
  createMcpHandler,
  McpServer,
  OAuthError,
  OAuthErrorCode,
  requireBearerAuth,
} from '@modelcontextprotocol/server';
import { exportJWK, generateKeyPair, type JWTPayload, jwtVerify, SignJWT } from 'jose';
import { FRAMEWORKS, type Framework, mountFramework } from './mcp-v2-frameworks.js';

/** The kinds of server this script runs: the three on `node:http`, then plain and ours on each framework. */
export type BenchV2ServerKind =
  | 'v2-plain'
  | 'v2-bearer'
  | 'v2-authsec'
  | `v2-plain-${Framework}`
  | `v2-authsec-${Framework}`;
export const KINDS: readonly BenchV2ServerKind[] = [
  'v2-plain',
  'v2-bearer',
  'v2-authsec',
  ...FRAMEWORKS.flatMap((f) => [`v2-plain-${f}`, `v2-authsec-${f}`] as const),
];

const BENCH_EMAIL = 'ada@acme.example';
const HELLO_TEXT = `Hello, ${BENCH_EMAIL}!`;
const ISSUER = 'https://issuer.bench.example';
const INFO = { name: 'bench-server', version: '1.0.0' };
const DESCRIPTION = 'Greets the caller.';

/** Messages from the child (the parent imports this type only). */
export type V2ChildMessage =
  | { type: 'ready'; url: string; hello: string; token?: string }
  | { type: 'stats'; calls: number; audit: Record<string, number>; cpuMicros: number }
  | { type: 'inproc'; micros: number; cpuMicros: number; bad: number; sample: string };

/** What the parent asks for an in-process round. */
export interface InProcessRequest {
  readonly type: 'inproc';
  readonly calls: number;
  readonly concurrency: number;
  readonly headers: Record<string, string>;
  /** The JSON-RPC body of each call (ids need not differ: nothing is kept between stateless calls). */
  readonly body: string;
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * One request through `listener` with no socket: the body is pushed into the request stream and the response's
 * body chunks are collected from `write`/`end`; it resolves with the status and body once `end` is called.
 */
function callInProcess(
  listener: Listener,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; body: string }> {
  const req = new IncomingMessage(new Socket());
  req.method = 'POST';
  req.url = '/mcp';
  req.headers = { ...headers, 'content-length': String(Buffer.byteLength(body)) };
  req.rawHeaders = Object.entries(req.headers).flatMap(([k, v]) => [k, String(v)]);
  req.push(body);
  req.push(null);
  const res = new ServerResponse(req);
  const chunks: string[] = [];
  const take = (chunk: unknown) => {
    if (typeof chunk === 'string') chunks.push(chunk);
    else if (chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk).toString('utf8'));
  };
  return new Promise((resolve) => {
    const write = res.write.bind(res) as (...a: unknown[]) => boolean;
    const end = res.end.bind(res) as (...a: unknown[]) => ServerResponse;
    (res as { write: unknown }).write = (chunk: unknown, ...rest: unknown[]) => {
      take(chunk);
      return write(chunk, ...rest);
    };
    (res as { end: unknown }).end = (chunk?: unknown, ...rest: unknown[]) => {
      if (typeof chunk !== 'function') take(chunk);
      const out = end(chunk, ...rest);
      resolve({ status: res.statusCode, body: chunks.join('') });
      return out;
    };
    listener(req, res);
  });
}

/** `calls` requests, `concurrency` at a time, through `listener` in this process. */
async function inProcessRound(
  listener: Listener,
  ask: InProcessRequest,
  hello: string,
): Promise<V2ChildMessage> {
  let left = ask.calls;
  let bad = 0;
  let sample = '';
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: ask.concurrency }, async () => {
      while (left-- > 0) {
        const answer = await callInProcess(listener, ask.headers, ask.body);
        if (answer.status !== 200 || !answer.body.includes(hello)) {
          bad++;
          sample = `${answer.status} ${answer.body.slice(0, 200)}`;
        }
      }
    }),
  );
  const micros = Number(process.hrtime.bigint() - started) / 1000;
  const { user, system } = process.cpuUsage(cpu);
  return { type: 'inproc', micros, cpuMicros: user + system, bad, sample };
}

let calls = 0;
const helloResult = (text: string) => {
  calls++;
  return { content: [{ type: 'text' as const, text }] };
};

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

function notFound(res: ServerResponse): void {
  res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found"}');
}

async function main(): Promise<void> {
  const kind = process.argv[2] as BenchV2ServerKind;
  if (!KINDS.includes(kind))
    throw new TypeError(`usage: mcp-v2-servers.js ${KINDS.join('|')} (got ${String(kind)})`);
  const http = createServer();
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
  const audit: Record<string, number> = {};
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'ES256', use: 'sig' };
  const token = await new SignJWT({
    email: BENCH_EMAIL,
    tenant_id: 'acme-corp',
    roles: ['admin'],
    scope: 'read write',
  })
    .setProtectedHeader({ alg: 'ES256', kid: 'bench-1', typ: 'at+jwt' })
    .setSubject('user-42')
    .setIssuer(ISSUER)
    .setAudience(url)
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(privateKey);

  const framework = FRAMEWORKS.find((f) => kind.endsWith(`-${f}`));
  let listener: Listener;
  if (kind.startsWith('v2-authsec')) {
    const authsec = createAuthSec({
      issuers: [{ issuer: ISSUER, keys: [publicJwk] }],
      audience: url,
      logger: silentLogger,
      cache: { enabled: true, maxEntries: 10_000 },
      audit: { sinks: [countingSink(audit)] },
    });
    const server = protect(authsec, INFO);
    server.registerTool('hello', { description: DESCRIPTION, requirement: {} }, async (args) =>
      helloResult(`Hello, ${args._user_info?.email}!`),
    );
    if (framework)
      listener = await mountFramework(framework, { http, ours: { server, authsec, url, issuer: ISSUER } });
    else {
      listener = createMcpV2HttpHandler({
        server,
        authsec,
        resourceUrl: url,
        authorizationServers: [ISSUER],
      });
      http.on('request', listener);
    }
  } else {
    const handler = createMcpHandler((ctx) => {
      const server = new McpServer(INFO);
      server.registerTool('hello', { description: DESCRIPTION }, async () => {
        const email = ctx.authInfo?.extra?.email;
        return helloResult(kind === 'v2-bearer' ? `Hello, ${String(email)}!` : HELLO_TEXT);
      });
      return server;
    });
    let node: ReturnType<typeof toNodeHandler>;
    if (kind === 'v2-bearer') {
      const resource = new URL(url);
      const guard = requireBearerAuth({
        verifier: {
          async verifyAccessToken(raw: string): Promise<AuthInfo> {
            let payload: JWTPayload;
            try {
              ({ payload } = await jwtVerify(raw, publicKey, {
                issuer: ISSUER,
                audience: url,
                algorithms: ['ES256'],
              }));
            } catch (error) {
              throw new OAuthError(OAuthErrorCode.InvalidToken, `invalid token: ${(error as Error).message}`);
            }
            const scope = typeof payload.scope === 'string' ? payload.scope : '';
            return {
              token: raw,
              clientId: String(payload.sub),
              scopes: scope === '' ? [] : scope.split(' '),
              ...(payload.exp === undefined ? {} : { expiresAt: payload.exp }),
              resource,
              extra: { sub: payload.sub, email: payload.email },
            };
          },
        },
      });
      node = toNodeHandler({
        fetch: async (request, options) => {
          const auth = await guard(request);
          return auth instanceof Response ? auth : handler.fetch(request, { ...options, authInfo: auth });
        },
      });
    } else {
      node = toNodeHandler(handler);
    }
    if (framework) listener = await mountFramework(framework, { http, plain: node });
    else {
      listener = (req, res) => {
        if (!req.url?.startsWith('/mcp')) return notFound(res);
        void node(req, res);
      };
      http.on('request', listener);
    }
  }

  process.on('message', (message: { type?: string }) => {
    if (message?.type === 'inproc') {
      const ask = message as InProcessRequest;
      const headers = { ...ask.headers, host: new URL(url).host };
      void inProcessRound(listener, { ...ask, headers }, HELLO_TEXT).then((answer) => process.send?.(answer));
      return;
    }
    if (message?.type === 'stats') {
      const { user, system } = process.cpuUsage();
      process.send?.({
        type: 'stats',
        calls,
        audit: { ...audit },
        cpuMicros: user + system,
      } satisfies V2ChildMessage);
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({
    type: 'ready',
    url,
    hello: HELLO_TEXT,
    ...(kind.startsWith('v2-plain') ? {} : { token }),
  } satisfies V2ChildMessage);
}

main().catch((error: unknown) => {
  process.stderr.write(`mcp-v2-servers: ${String((error as Error)?.stack ?? error)}\n`);
  process.exit(1);
});
