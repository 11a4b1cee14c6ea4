/**
 * The framework cases of the MCP SDK v2 benchmark (`mcp-v2-servers.ts` runs them): the same `hello` tool served by
 * a plain v2 server and by AuthSec on Express 5, Fastify 5 and NestJS 12 on both of its platforms, each mounted
 * the way that framework's users mount it, on the `node:http` server the child already listens on.
 *
 * - plain: the SDK's `createMcpHandler` + `toNodeHandler`, with the framework's own JSON body parser in front
 *   (`express.json()`, Fastify's parser, Nest's): an Express route, a Fastify route whose reply is hijacked, a Nest
 *   controller's `@Post('mcp')` (the baseline: "a plain v2 server mounted inside a Nest app on the same
 *   platform").
 * - ours: `authSecMcpRouter` of `@authsec/express/v2` after `express.json()`, `authSecPlugin` of
 *   `@authsec/fastify/v2`, `AuthSecModule.forRoot` of `@authsec/nestjs/v2`, each on the same protected server as
 *   the `node:http` case.
 *
 * Each returns the request listener it put on the server, so the in-process variant can drive it without a socket.
 */

import 'reflect-metadata';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { AuthSec } from '@authsec/core';
import { authSecMcpRouter } from '@authsec/express/v2';
import { authSecPlugin } from '@authsec/fastify/v2';
import type { ProtectedMcpServer } from '@authsec/mcp/v2';
import { AuthSecModule } from '@authsec/nestjs/v2';
import { Controller, type DynamicModule, Module, Post, Req, Res } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import express from 'express';
import fastify, { type FastifyReply, type FastifyRequest } from 'fastify';

/** The frameworks, and the two cases on each. */
export type Framework = 'express' | 'fastify' | 'nest-express' | 'nest-fastify';
export const FRAMEWORKS: readonly Framework[] = ['express', 'fastify', 'nest-express', 'nest-fastify'];

/** A plain v2 handler on Node (`toNodeHandler(createMcpHandler(...))`), given a parsed body. */
export type PlainNodeHandler = (req: IncomingMessage, res: ServerResponse, body?: unknown) => Promise<void>;

/** What a framework case is built from. */
export interface FrameworkCase {
  readonly http: Server;
  /** The plain server's handler, for the plain cases. */
  readonly plain?: PlainNodeHandler;
  /** AuthSec's protected server and engine, for ours. */
  readonly ours?: {
    readonly server: ProtectedMcpServer;
    readonly authsec: AuthSec;
    readonly url: string;
    readonly issuer: string;
  };
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** Serves `framework` on `c.http` (plain when `c.plain` is given, else ours) and returns its request listener. */
export async function mountFramework(framework: Framework, c: FrameworkCase): Promise<Listener> {
  switch (framework) {
    case 'express':
      return onRequest(c.http, expressApp(c));
    case 'fastify':
      return fastifyApp(c);
    default:
      return nestApp(framework === 'nest-fastify' ? 'fastify' : 'express', c);
  }
}

function onRequest(http: Server, listener: Listener): Listener {
  http.on('request', listener);
  return listener;
}

function oursOptions(c: FrameworkCase) {
  const ours = c.ours!;
  return {
    server: ours.server,
    authsec: ours.authsec,
    resourceUrl: ours.url,
    authorizationServers: [ours.issuer],
  };
}

function expressApp(c: FrameworkCase): Listener {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json());
  if (c.plain) {
    const plain = c.plain;
    app.post('/mcp', (req, res) => void plain(req, res, req.body));
  } else app.use(authSecMcpRouter(oursOptions(c)));
  return app as unknown as Listener;
}

async function fastifyApp(c: FrameworkCase): Promise<Listener> {
  let listener: Listener | undefined;
  const app = fastify({
    serverFactory: (handler: RequestListener) => {
      listener = onRequest(c.http, handler as Listener);
      return c.http;
    },
  });
  if (c.plain) {
    const plain = c.plain;
    app.post('/mcp', async (request, reply) => {
      reply.hijack();
      await plain(request.raw, reply.raw, request.body);
    });
  } else await app.register(authSecPlugin, oursOptions(c));
  await app.ready();
  return listener!;
}

/** The plain handler a Nest controller hands requests to (set before the module is created). */
let nestPlain: PlainNodeHandler | undefined;

/** A plain v2 server in a Nest app: the body parsed by Nest's platform, the raw objects to the SDK. */
@Controller()
class PlainMcpController {
  @Post('mcp')
  async mcp(@Req() req: IncomingMessage | FastifyRequest, @Res() res: ServerResponse | FastifyReply) {
    if ('raw' in req && 'hijack' in res) {
      res.hijack();
      await nestPlain!(req.raw, res.raw, req.body);
    } else await nestPlain!(req as IncomingMessage, res as ServerResponse, (req as { body?: unknown }).body);
  }
}

@Module({ controllers: [PlainMcpController] })
class PlainNestModule {}

@Module({})
class OursNestModule {
  static register(c: FrameworkCase): DynamicModule {
    return { module: OursNestModule, imports: [AuthSecModule.forRoot(oursOptions(c))] };
  }
}

async function nestApp(platform: 'express' | 'fastify', c: FrameworkCase): Promise<Listener> {
  nestPlain = c.plain;
  const module = c.plain ? PlainNestModule : OursNestModule.register(c);
  const options = { abortOnError: false, logger: ['error' as const, 'warn' as const] };
  if (platform === 'fastify') {
    let listener: Listener | undefined;
    const adapter = new FastifyAdapter({
      serverFactory: (handler: RequestListener) => {
        listener = onRequest(c.http, handler as Listener);
        return c.http;
      },
    });
    const app = await NestFactory.create<NestFastifyApplication>(module, adapter, options);
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    return listener!;
  }
  const app = await NestFactory.create<NestExpressApplication>(module, options);
  app.disable('x-powered-by');
  await app.init();
  return onRequest(c.http, app.getHttpAdapter().getInstance() as Listener);
}
