import { defineAdapterConformance } from '@authsec/adapter-conformance';
import Fastify from 'fastify';
import { authSecPlugin } from '../src/index.js';

defineAdapterConformance('@authsec/fastify', async ({ host, port, options }) => {
  const app = Fastify();
  await app.register(authSecPlugin, options);
  await app.listen({ host, port });
  return {
    url: options.resourceUrl,
    close: () => app.close(),
  };
});
