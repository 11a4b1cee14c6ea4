import 'reflect-metadata';
import { ADMIN, ANALYST } from '@authsec/adapter-conformance';
import { createAuthSec, type Principal, silentLogger } from '@authsec/core';
import {
  Controller,
  type DynamicModule,
  Get,
  type INestApplication,
  Injectable,
  Module,
} from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthSecModule, CurrentUser, RequireAuth } from '../src/index.js';
import { createTestEngine, ISSUER, RESOURCE_URL } from './helpers.js';

@Controller('api')
class ApiController {
  @Get('me')
  @RequireAuth()
  me(@CurrentUser() user: Principal) {
    return { subject: user.subject, tenant: user.tenantId };
  }

  @Get('admin')
  @RequireAuth({ roles: ['admin'] })
  admin() {
    return { ok: true };
  }

  @Get('open')
  open(@CurrentUser() user: Principal | undefined) {
    return { user: user?.subject ?? null };
  }
}

/** Options from a provider, for forRootAsync. */
@Injectable()
class ConfigService {
  readonly authorizationServers = [ISSUER];
}

@Module({ providers: [ConfigService], exports: [ConfigService] })
class ConfigModule {}

/** The API controller with `authSecModule`, listening on 127.0.0.1 on the given Nest platform. */
async function startApi(
  platform: 'express' | 'fastify',
  authSecModule: DynamicModule,
): Promise<{ app: INestApplication; base: string }> {
  const moduleRef = await Test.createTestingModule({
    imports: [authSecModule],
    controllers: [ApiController],
  }).compile();
  const app =
    platform === 'fastify'
      ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: false })
      : moduleRef.createNestApplication({ logger: false });
  await app.listen(0, '127.0.0.1');
  return { app, base: (await app.getUrl()).replace('[::1]', '127.0.0.1') };
}

for (const platform of ['express', 'fastify'] as const) {
  describe(`AuthSecGuard on ${platform}`, () => {
    const { authsec, token } = createTestEngine();
    let app: INestApplication;
    let base: string;

    beforeAll(async () => {
      ({ app, base } = await startApi(
        platform,
        AuthSecModule.forRootAsync({
          imports: [ConfigModule],
          inject: [ConfigService],
          useFactory: (config: ConfigService) => ({
            authsec,
            resourceUrl: RESOURCE_URL,
            authorizationServers: config.authorizationServers,
            mcp: false,
          }),
        }),
      ));
    });
    afterAll(() => app?.close());

    it('401 with a WWW-Authenticate challenge without a token', async () => {
      const response = await fetch(`${base}/api/me`);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(
        /^Bearer .*resource_metadata="http:\/\/127\.0\.0\.1:4999\/\.well-known\/oauth-protected-resource\/mcp"/,
      );
      expect(await response.json()).toMatchObject({ code: 'TOKEN_MISSING' });
    });

    it('401 invalid_token (never a 500) for a bad token', async () => {
      const response = await fetch(`${base}/api/me`, { headers: { authorization: 'Bearer not-a-jwt' } });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(await response.json()).toMatchObject({ code: 'TOKEN_INVALID' });
    });

    it('200 with @CurrentUser for a valid token', async () => {
      const response = await fetch(`${base}/api/me`, {
        headers: { authorization: `Bearer ${token(ANALYST)}` },
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ subject: 'user-alice', tenant: 'acme-corp' });
    });

    it('403 for a missing role, 200 with it', async () => {
      const denied = await fetch(`${base}/api/admin`, {
        headers: { authorization: `Bearer ${token(ANALYST)}` },
      });
      expect(denied.status).toBe(403);
      expect(await denied.json()).toMatchObject({ code: 'PERMISSION_DENIED' });
      const allowed = await fetch(`${base}/api/admin`, {
        headers: { authorization: `Bearer ${token(ADMIN)}` },
      });
      expect(allowed.status).toBe(200);
      expect(await allowed.json()).toEqual({ ok: true });
    });

    it('leaves routes without @RequireAuth alone', async () => {
      const response = await fetch(`${base}/api/open`);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ user: null });
    });

    it('serves no MCP endpoint with mcp: false', async () => {
      const response = await fetch(`${base}/mcp`, { method: 'POST' });
      expect(response.status).toBe(404);
    });
  });
}

for (const platform of ['express', 'fastify'] as const) {
  describe(`AuthSecGuard on ${platform}, when the key set is unreachable`, () => {
    // Tokens of this issuer name a key only its JWKS could provide, and nothing listens there: fail closed.
    const DOWN_ISSUER = 'http://127.0.0.1:9/down';
    const { token } = createTestEngine();
    const authsec = createAuthSec({
      issuers: [{ issuer: DOWN_ISSUER, jwksUrl: 'http://127.0.0.1:9/down/jwks' }],
      audience: RESOURCE_URL,
      logger: silentLogger,
    });
    let app: INestApplication;
    let base: string;

    beforeAll(async () => {
      ({ app, base } = await startApi(
        platform,
        AuthSecModule.forRoot({
          authsec,
          resourceUrl: RESOURCE_URL,
          authorizationServers: [DOWN_ISSUER],
          mcp: false,
        }),
      ));
    });
    afterAll(() => app?.close());

    it('503 SERVICE_UNAVAILABLE (never a 200, never a 500), and no token in the answer', async () => {
      const presented = token({ iss: DOWN_ISSUER, sub: 'u1', tenant_id: 'acme' });
      const response = await fetch(`${base}/api/me`, { headers: { authorization: `Bearer ${presented}` } });
      expect(response.status).toBe(503);
      const text = await response.text();
      expect(JSON.parse(text)).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
      expect(text).not.toContain(presented);
      expect(response.headers.get('cache-control')).toBe('no-store');
    });
  });
}
