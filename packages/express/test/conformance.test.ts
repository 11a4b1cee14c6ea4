import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { defineAdapterConformance } from '@authsec/adapter-conformance';
import express from 'express';
import { type AuthSecMcpRouter, authSecMcpRouter } from '../src/index.js';

async function started(router: AuthSecMcpRouter, server: Server, url: string) {
  await once(server, 'listening');
  return {
    url,
    async close() {
      await router.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

defineAdapterConformance('@authsec/express', async ({ host, port, options }) => {
  const app = express();
  const router = authSecMcpRouter(options);
  app.use(router);
  return started(router, app.listen(port, host), options.resourceUrl);
});

// The fast path: the same routes answered ahead of Express, every other request handed to the app.
defineAdapterConformance('@authsec/express (listener)', async ({ host, port, options }) => {
  const router = authSecMcpRouter(options);
  const server = createServer(router.listener(express())).listen(port, host);
  return started(router, server, options.resourceUrl);
});
