#!/usr/bin/env node
/**
 * The sample tool set over Streamable HTTP on NestJS (Express platform) through `AuthSecModule` of
 * `@authsec/nestjs`, as an OAuth protected resource (the MCP authorization spec): MCP at `/mcp`, its metadata at
 * `/.well-known/oauth-protected-resource/mcp`, and a REST route guarded by `@RequireAuth()` at `/api/me`. With
 * nothing configured it runs on embedded development defaults (a local OAuth server, PGlite and the demo tenant);
 * the `AUTHSEC_*` variables point it at real ones.
 */
import 'reflect-metadata';
import { runSampleHttpApp } from '@authsec/sample-tools';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module.js';

const APP_NAME = 'AuthSec NestJS demo';

await runSampleHttpApp({
  appName: APP_NAME,
  binName: 'authsec-nestjs-demo',
  async mount({ http, resourceUrl, tools, defaults }) {
    const app = await NestFactory.create<NestExpressApplication>(
      AppModule.register({
        authsec: defaults.authsec,
        services: defaults.services,
        directory: defaults.storage.directory,
        tools,
        name: APP_NAME,
        version: '0.1.0',
        resourceUrl,
        authorizationServers: defaults.issuers,
      }),
      // A DI error is thrown (and reported) instead of aborting the process.
      { abortOnError: false, logger: ['error', 'warn'] },
    );
    app.disable('x-powered-by');
    // Mounts the MCP endpoint ahead of Nest's body parsers (AuthSecMcpService.onModuleInit).
    try {
      await app.init();
    } catch (error) {
      await app.close().catch(() => {});
      throw error;
    }
    // The HTTP server is ours (bound first); Nest's Express instance answers its requests.
    http.on('request', app.getHttpAdapter().getInstance());
    // Closing Nest closes the MCP sessions (onModuleDestroy), then the MCP server and the engine.
    return { close: () => app.close() };
  },
});
