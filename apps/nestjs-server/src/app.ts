/**
 * The NestJS mount of this app, importable on its own (no side effects): `main.ts` runs it on the `AUTHSEC_*`
 * configuration, and the conformance runs (`packages/conformance-runs`) run the official MCP suite against it on
 * both Nest platforms.
 */
import 'reflect-metadata';
import type { RequestListener, Server } from 'node:http';
import type { SampleHttpContext, SampleHttpMount } from '@authsec/sample-tools';
import type { DynamicModule, INestApplication, NestApplicationOptions } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppModule } from './app.module.js';

/** The server name clients see. */
export const APP_NAME = 'AuthSec NestJS demo';

/** The Nest HTTP platform the app runs on. */
export type NestPlatform = 'express' | 'fastify';

/**
 * Serves `context.tools` through `AuthSecModule` on a Nest application (Express platform by default): MCP at
 * the resource URL's path, its metadata at `/.well-known/oauth-protected-resource/mcp`, and the REST route
 * `/api/me` guarded by `@RequireAuth()`. Closing it closes Nest, which closes the MCP sessions, the MCP server
 * and the engine.
 */
export async function mountNestApp(
  context: SampleHttpContext,
  platform: NestPlatform = 'express',
): Promise<SampleHttpMount> {
  // The rest of the context (tools, engine, services, directory) goes to AuthSecModule as it is.
  const { http, resourceUrl, issuers, ...served } = context;
  const module = AppModule.register({
    ...served,
    name: APP_NAME,
    version: '0.1.0',
    resourceUrl,
    authorizationServers: issuers,
  });
  // Closing Nest closes the MCP sessions (onModuleDestroy), then the MCP server and the engine.
  return startNestApp(module, http, platform);
}

/**
 * Creates the Nest application of `module` on `platform`, serving the already-listening `http` server, and
 * starts it (the module mounts its routes in `app.init()`). Closing the mount closes Nest.
 */
export async function startNestApp(
  module: DynamicModule,
  http: Server,
  platform: NestPlatform,
): Promise<SampleHttpMount> {
  // A DI error is thrown (and reported) instead of aborting the process.
  const options: NestApplicationOptions = { abortOnError: false, logger: ['error', 'warn'] };
  let app: INestApplication;
  if (platform === 'fastify') {
    // Fastify serves on the server that is already listening (its port is in the resource URL).
    const adapter = new FastifyAdapter({
      serverFactory: (handler: RequestListener) => {
        http.on('request', handler);
        return http;
      },
    });
    app = await NestFactory.create<NestFastifyApplication>(module, adapter, options);
  } else {
    const express = await NestFactory.create<NestExpressApplication>(module, options);
    express.disable('x-powered-by');
    app = express;
  }
  try {
    await app.init();
    // Nest's init registers the routes and hooks; Fastify compiles them when ready (listen() is never called).
    if (platform === 'fastify') await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  } catch (error) {
    await app.close().catch(() => {});
    throw error;
  }
  // On Express, the HTTP server is ours (bound first) and Nest's Express instance answers its requests.
  if (platform === 'express') http.on('request', app.getHttpAdapter().getInstance());
  return { close: () => app.close() };
}
