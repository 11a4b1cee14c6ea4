import 'reflect-metadata';
import { type AdapterContext, defineAdapterConformance } from '@authsec/adapter-conformance';
import { type AuthSec, createToolRegistry } from '@authsec/core';
import type { INestApplication } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { AuthSecModule } from '../src/index.js';
import { SampleToolsProvider } from './sample-tools.provider.js';

/**
 * The suite's engine with a tool registry of its own. The suite registers its `createSampleTools()` objects in
 * its engine (for `options.server`); the module registers the `@AuthSecTool` methods, other objects under the
 * same names, which the engine refuses. Everything else (token verification, `authorizeTool` with the same
 * sample requirements, audit to the suite's sink) is the suite's engine.
 */
function withOwnRegistry(authsec: AuthSec): AuthSec {
  return Object.create(authsec, {
    tools: { value: createToolRegistry({ logger: authsec.logger }) },
  }) as AuthSec;
}

/** The suite's options, with the tools coming from `@AuthSecTool` methods instead of `options.server`. */
async function createApp({ options }: AdapterContext, fastify: boolean): Promise<INestApplication> {
  const { server, authsec, ...rest } = options;
  const moduleRef = await Test.createTestingModule({
    imports: [
      AuthSecModule.forRoot({
        ...rest,
        authsec: withOwnRegistry(authsec),
        name: server.name,
        version: '1.0.0',
      }),
    ],
    providers: [SampleToolsProvider],
  }).compile();
  return fastify
    ? moduleRef.createNestApplication(new FastifyAdapter(), { logger: false })
    : moduleRef.createNestApplication({ logger: false });
}

for (const [name, fastify] of [
  ['nestjs-express', false],
  ['nestjs-fastify', true],
] as const) {
  defineAdapterConformance(name, async (ctx) => {
    const app = await createApp(ctx, fastify);
    await app.listen(ctx.port, ctx.host);
    return { url: ctx.options.resourceUrl, close: () => app.close() };
  });
}
