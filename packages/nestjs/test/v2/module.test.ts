/**
 * `@authsec/nestjs/v2` on both Nest platforms: the module from `ConfigurableModuleBuilder` (`forRootAsync` with
 * `useFactory`, `useClass`, `useExisting`), the `@AuthSecTool`, `@AuthSecResource` and `@AuthSecPrompt` methods
 * per caller through the official v2 client in both eras, the global guard with `@Public()`, `req.user`, and the
 * application's real security middleware (helmet and express-rate-limit; @fastify/helmet and
 * @fastify/rate-limit) running on the MCP routes, mounted before AuthSec without anything being reordered.
 */
import 'reflect-metadata';
import { ADMIN, ANALYST, post } from '@authsec/adapter-conformance';
import {
  closeAll,
  connect,
  ERAS,
  type Fixture,
  fixture,
  ISSUER,
  text,
} from '@authsec/adapter-conformance/v2';
import { MemoryAuditSink, type Principal } from '@authsec/core';
import type { AuthSecContext } from '@authsec/mcp/v2';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import { Controller, Get, type INestApplication, Injectable, Module, Req } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { rateLimit } from 'express-rate-limit';
import helmet from 'helmet';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AuthSecHttpRequest,
  AuthSecModule,
  AuthSecPrompt,
  AuthSecResource,
  AuthSecTool,
  type AuthSecV2ModuleOptions,
  CurrentUser,
  Public,
  RequireAuth,
} from '../../src/v2/index.js';

/** A provider whose methods are the MCP primitives. */
@Injectable()
class NotesProvider {
  @AuthSecTool('nest_hello', { description: 'Greets the caller', requirement: {} })
  hello(_args: unknown, context: AuthSecContext) {
    return { content: [{ type: 'text' as const, text: `hello ${context.principal?.subject}` }] };
  }

  @AuthSecTool('nest_admin', { description: 'Administers', requirement: { roles: ['admin'] } })
  admin(_args: unknown, context: AuthSecContext) {
    return { content: [{ type: 'text' as const, text: `admin ${context.principal?.subject}` }] };
  }

  @AuthSecResource('team_notes', 'notes://team', {
    mimeType: 'text/plain',
    requirement: { roles: ['admin'] },
  })
  notes(uri: URL, _variables: unknown, context: AuthSecContext) {
    return { contents: [{ uri: uri.href, text: `notes for ${context.principal?.subject}` }] };
  }

  @AuthSecPrompt('review', { description: 'A review', requirement: {} })
  review(_args: unknown, context: AuthSecContext) {
    return {
      messages: [
        {
          role: 'user' as const,
          content: { type: 'text' as const, text: `review by ${context.principal?.subject}` },
        },
      ],
    };
  }
}

/** REST routes under the global guard. */
@Controller('api')
class ApiController {
  @Get('me')
  me(@CurrentUser() user: Principal | undefined, @Req() request: AuthSecHttpRequest) {
    return { subject: user?.subject, tenant: user?.tenantId, sameAsReqUser: request.user === user };
  }

  @Public()
  @Get('open')
  open(@Req() request: AuthSecHttpRequest) {
    return { open: true, user: request.user ?? null };
  }

  @Get('admin')
  @RequireAuth({ roles: ['admin'] })
  admin() {
    return { ok: true };
  }
}

let current: { f: Fixture; sink: MemoryAuditSink };
const optionsNow = (): AuthSecV2ModuleOptions => ({
  authsec: current.f.authsec,
  resourceUrl: current.f.url,
  authorizationServers: [ISSUER],
  name: 'nest-v2-test',
});

/** The options as a class (`useClass`) and as an existing provider (`useExisting`). */
@Injectable()
class AuthSecConfig {
  create(): AuthSecV2ModuleOptions {
    return optionsNow();
  }
}
@Module({ providers: [AuthSecConfig], exports: [AuthSecConfig] })
class ConfigModule {}

type How = 'useFactory' | 'useClass' | 'useExisting';
const registrations = {
  useFactory: () => AuthSecModule.forRootAsync({ useFactory: async () => optionsNow(), globalGuard: true }),
  useClass: () => AuthSecModule.forRootAsync({ useClass: AuthSecConfig, globalGuard: true }),
  useExisting: () =>
    AuthSecModule.forRootAsync({ imports: [ConfigModule], useExisting: AuthSecConfig, globalGuard: true }),
} satisfies Record<How, unknown>;

const apps: INestApplication[] = [];
afterEach(async () => {
  await closeAll();
  await Promise.allSettled(apps.splice(0).map((app) => app.close()));
});

type Platform = 'express' | 'fastify';

/** The application: its security middleware first (before Nest starts), then AuthSec's routes at init. */
async function start(platform: Platform, how: How, limit = 1000): Promise<string> {
  const sink = new MemoryAuditSink();
  current = { f: await fixture({ audit: { sinks: [sink] } }), sink };
  const moduleRef = await Test.createTestingModule({
    imports: [registrations[how]()],
    providers: [NotesProvider],
    controllers: [ApiController],
  }).compile();
  let app: INestApplication;
  if (platform === 'fastify') {
    const fastify = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), {
      logger: false,
    });
    await fastify.register(fastifyHelmet);
    await fastify.register(fastifyRateLimit, { max: limit, timeWindow: 60_000 });
    app = fastify;
  } else {
    const express = moduleRef.createNestApplication<NestExpressApplication>({ logger: false });
    express.use(helmet());
    express.use(rateLimit({ windowMs: 60_000, limit, standardHeaders: 'draft-7', legacyHeaders: false }));
    app = express;
  }
  apps.push(app);
  await app.listen(current.f.port, '127.0.0.1');
  return `http://127.0.0.1:${current.f.port}`;
}

const expectMiddlewareHeaders = (headers: Headers) => {
  // helmet's defaults and the rate limiter's counters (draft-7 `RateLimit` on Express, `x-ratelimit-*` on Fastify).
  expect(headers.get('x-content-type-options')).toBe('nosniff');
  expect(headers.get('content-security-policy')).toContain("default-src 'self'");
  expect(headers.get('ratelimit') ?? headers.get('x-ratelimit-limit')).toBeTruthy();
};

for (const platform of ['express', 'fastify'] as const) {
  describe.each(ERAS)(`AuthSecModule (v2) on ${platform}, %s era`, (era) => {
    it('serves the discovered tools, resources and prompts per caller, under helmet and the rate limiter', async () => {
      await start(platform, 'useClass');
      const { f } = current;
      const seen: Headers[] = [];
      const admin = await connect(f.url, f.token(ADMIN), era, seen);
      const analyst = await connect(f.url, f.token(ANALYST), era, seen);
      expect((await admin.listTools()).tools.map((t) => t.name).sort()).toEqual(['nest_admin', 'nest_hello']);
      expect((await analyst.listTools()).tools.map((t) => t.name)).toEqual(['nest_hello']);
      expect(text(await analyst.callTool({ name: 'nest_hello', arguments: {} }))).toBe('hello user-alice');
      expect(text(await admin.callTool({ name: 'nest_admin', arguments: {} }))).toBe('admin user-john');
      expect((await admin.listResources()).resources.map((r) => r.uri)).toEqual(['notes://team']);
      const read = await admin.readResource({ uri: 'notes://team' });
      expect(read.contents[0]).toMatchObject({ uri: 'notes://team', text: 'notes for user-john' });
      await expect(analyst.readResource({ uri: 'notes://team' })).rejects.toThrow();
      const prompt = await analyst.getPrompt({ name: 'review', arguments: {} });
      expect(prompt.messages[0]?.content).toMatchObject({ text: 'review by user-alice' });
      expect(seen.length).toBeGreaterThan(4);
      for (const headers of seen) expectMiddlewareHeaders(headers);
    });
  });

  describe(`AuthSecModule (v2) on ${platform} over HTTP`, () => {
    it('the global guard (useExisting): 401 on an undecorated route, @Public passes, req.user is @CurrentUser', async () => {
      const base = await start(platform, 'useExisting');
      const none = await fetch(`${base}/api/me`);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toContain('resource_metadata=');
      expect(await none.json()).toMatchObject({ code: 'TOKEN_MISSING' });
      const open = await fetch(`${base}/api/open`);
      expect(open.status).toBe(200);
      expect(await open.json()).toEqual({ open: true, user: null });
      const me = await fetch(`${base}/api/me`, {
        headers: { authorization: `Bearer ${current.f.token(ANALYST)}` },
      });
      expect(me.status).toBe(200);
      expect(await me.json()).toEqual({ subject: 'user-alice', tenant: 'acme-corp', sameAsReqUser: true });
    });

    it('@RequireAuth under the global guard (useFactory): 403 then 200, each decision audited once', async () => {
      const base = await start(platform, 'useFactory');
      const denied = await fetch(`${base}/api/admin`, {
        headers: { authorization: `Bearer ${current.f.token(ANALYST)}` },
      });
      expect(denied.status).toBe(403);
      expect(await denied.json()).toMatchObject({ code: 'PERMISSION_DENIED' });
      const allowed = await fetch(`${base}/api/admin`, {
        headers: { authorization: `Bearer ${current.f.token(ADMIN)}` },
      });
      expect(allowed.status).toBe(200);
      const routeEvents = current.sink.events.filter((e) => e.action === 'route.access');
      expect(routeEvents.map((e) => [e.target, e.decision])).toEqual([
        ['GET /api/admin', 'deny'],
        ['GET /api/admin', 'allow'],
      ]);
    });

    it('the rate limiter refuses MCP past its limit (429) before AuthSec runs', async () => {
      const base = await start(platform, 'useFactory', 2);
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const response = await fetch(`${base}/.well-known/oauth-protected-resource/mcp`);
        statuses.push(response.status);
        await response.body?.cancel();
      }
      expect(statuses).toEqual([200, 200, 429]);
      const mcp = await post(`${base}/mcp`, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
      expect(mcp.status).toBe(429);
      await mcp.body?.cancel();
      expect(current.sink.events).toEqual([]);
    });

    it('a name declared twice fails the start', async () => {
      await expect(
        Test.createTestingModule({
          imports: [AuthSecModule.forRoot({ ...optionsNow(), isGlobal: false })],
          providers: [NotesProvider, { provide: 'again', useClass: NotesProvider }],
        })
          .compile()
          .then((ref) => {
            const app = ref.createNestApplication({ logger: false });
            apps.push(app);
            return app.init();
          }),
      ).rejects.toThrow(/nest_hello/);
    });
  });
}
