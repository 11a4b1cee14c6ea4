import { once } from 'node:events';
import { defineAdapterConformance } from '@authsec/adapter-conformance';
import express from 'express';
import { authSecMcpRouter } from '../src/index.js';

defineAdapterConformance('@authsec/express', async ({ host, port, options }) => {
  const app = express();
  const router = authSecMcpRouter(options);
  app.use(router);
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
});
