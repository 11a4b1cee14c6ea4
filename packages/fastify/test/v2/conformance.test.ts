import {
  APP_HOOK_HEADER,
  defineAdapterConformanceV2,
  REST_ROUTES,
  restAnswer,
} from '@authsec/adapter-conformance/v2';
import Fastify from 'fastify';
import { authSecPlugin } from '../../src/v2.js';

defineAdapterConformanceV2(
  '@authsec/fastify/v2',
  async ({ host, port, options }) => {
    const app = Fastify();
    // The application's own hook, on the reply as @fastify/cors sets its headers: it must reach MCP answers too.
    app.addHook('onRequest', async (_request, reply) => {
      reply.header(APP_HOOK_HEADER, '1');
    });
    await app.register(authSecPlugin, options);
    for (const { method, path, requirement } of Object.values(REST_ROUTES))
      app.route({
        method,
        url: path,
        preHandler: app.authsec.require(requirement),
        handler: async (request) => restAnswer(request.auth as never),
      });
    await app.listen({ host, port });
    return { url: options.resourceUrl, close: () => app.close() };
  },
  { rest: true },
);
