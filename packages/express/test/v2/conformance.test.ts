import { once } from 'node:events';
import {
  APP_HOOK_HEADER,
  defineAdapterConformanceV2,
  REST_ROUTES,
  restAnswer,
} from '@authsec/adapter-conformance/v2';
import express from 'express';
import { type AuthSecRequest, authSecMcpRouter } from '../../src/v2.js';

defineAdapterConformanceV2(
  '@authsec/express/v2',
  async ({ host, port, options }) => {
    const app = express();
    // The application's own middleware, mounted first, as helmet or a CORS package is.
    app.use((_req, res, next) => {
      res.setHeader(APP_HOOK_HEADER, '1');
      next();
    });
    const router = authSecMcpRouter(options);
    app.use(router);
    for (const { method, path, requirement } of Object.values(REST_ROUTES))
      app[method === 'GET' ? 'get' : 'post'](path, router.requireAuthSec(requirement), (req, res) => {
        res.json(restAnswer((req as AuthSecRequest).auth as never));
      });
    const server = app.listen(port, host);
    await once(server, 'listening');
    return {
      url: options.resourceUrl,
      async close() {
        await router.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  },
  { rest: true },
);
