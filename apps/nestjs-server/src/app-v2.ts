/**
 * The NestJS mount of this app on the MCP SDK v2 (both protocol eras at `/mcp`), on either Nest platform,
 * importable on its own (no side effects): `main.ts` runs it on the `AUTHSEC_*` configuration (the platform from
 * `AUTHSEC_NEST_PLATFORM`), and the conformance runs run the official MCP suite against it on both platforms.
 * `app.ts` is the same app on the v1 SDK line.
 */
import 'reflect-metadata';
import type { Principal } from '@authsec/core';
import { AuthSecModule, type AuthSecV2ModuleOptions, CurrentUser, RequireAuth } from '@authsec/nestjs/v2';
import type { SampleHttpContext, SampleHttpMount } from '@authsec/sample-tools';
import { protectSampleServer, type SampleV2Options } from '@authsec/sample-tools/v2';
import { Controller, type DynamicModule, Get, Module } from '@nestjs/common';
import { APP_NAME, type NestPlatform, startNestApp } from './app.js';

export { APP_NAME, type NestPlatform };

/** An ordinary REST route, guarded by the same engine as the MCP tools. */
@Controller('api')
export class MeV2Controller {
  @Get('me')
  @RequireAuth() // any valid token for this resource
  me(@CurrentUser() user: Principal): Record<string, unknown> {
    return { subject: user.subject, tenant: user.tenantId, email: user.email ?? null };
  }
}

/** The application: `AuthSecModule` of `@authsec/nestjs/v2` with the protected sample server, and the REST route. */
@Module({})
export class AppV2Module {
  static register(options: AuthSecV2ModuleOptions): DynamicModule {
    return { module: AppV2Module, imports: [AuthSecModule.forRoot(options)], controllers: [MeV2Controller] };
  }
}

/** The platforms `AUTHSEC_NEST_PLATFORM` names. */
export const NEST_PLATFORMS: readonly NestPlatform[] = ['express', 'fastify'];

/**
 * Serves `context.tools` through `AuthSecModule` of `@authsec/nestjs/v2` on a Nest application on `platform`:
 * MCP (both eras) at the resource URL's path, its metadata at `/.well-known/oauth-protected-resource/mcp`, and
 * `GET /api/me` guarded by `@RequireAuth()`. Closing it closes Nest, which closes the MCP sessions and the engine.
 */
export async function mountNestV2App(
  context: SampleHttpContext,
  platform: NestPlatform = 'express',
  options: SampleV2Options = {},
): Promise<SampleHttpMount> {
  const { http, resourceUrl, issuers, authsec } = context;
  const module = AppV2Module.register({
    authsec,
    server: protectSampleServer(context, APP_NAME, options),
    resourceUrl,
    authorizationServers: issuers,
  });
  return startNestApp(module, http, platform);
}
