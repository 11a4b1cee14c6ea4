import 'reflect-metadata';
import {
  APP_HOOK_HEADER,
  defineAdapterConformanceV2,
  REST_ROUTES,
  restAnswer,
} from '@authsec/adapter-conformance/v2';
import { Controller, Get, HttpCode, type INestApplication, Post, Req } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { type AuthSecHttpRequest, AuthSecModule, RequireAuth } from '../../src/v2/index.js';

/** The suite's REST routes, each behind `@RequireAuth` with the suite's requirement. */
@Controller('api')
class RestController {
  @Get('me')
  @RequireAuth()
  me(@Req() request: AuthSecHttpRequest) {
    return restAnswer(request.auth);
  }

  @Post('resources')
  @HttpCode(200)
  @RequireAuth(REST_ROUTES.write.requirement)
  write(@Req() request: AuthSecHttpRequest) {
    return restAnswer(request.auth);
  }

  @Get('admin')
  @RequireAuth(REST_ROUTES.admin.requirement)
  admin(@Req() request: AuthSecHttpRequest) {
    return restAnswer(request.auth);
  }
}

for (const platform of ['express', 'fastify'] as const) {
  defineAdapterConformanceV2(
    `@authsec/nestjs/v2 on ${platform}`,
    async ({ host, port, options }) => {
      const moduleRef = await Test.createTestingModule({
        imports: [AuthSecModule.forRoot(options)],
        controllers: [RestController],
      }).compile();
      let app: INestApplication;
      if (platform === 'fastify') {
        const fastify = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), {
          logger: false,
        });
        // The application's own hook, the way @fastify/helmet and @fastify/cors set their headers.
        fastify
          .getHttpAdapter()
          .getInstance()
          .addHook('onRequest', async (_request, reply) => {
            reply.header(APP_HOOK_HEADER, '1');
          });
        app = fastify;
      } else {
        const express = moduleRef.createNestApplication<NestExpressApplication>({ logger: false });
        // The application's own middleware, the way helmet sets its headers.
        express.use((_req: unknown, res: { setHeader(n: string, v: string): void }, next: () => void) => {
          res.setHeader(APP_HOOK_HEADER, '1');
          next();
        });
        app = express;
      }
      await app.listen(port, host);
      return { url: options.resourceUrl, close: () => app.close() };
    },
    { rest: true },
  );
}
