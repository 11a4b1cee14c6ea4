/**
 * End to end, the way a real MCP client meets this app: the shared suite of `@authsec/adapter-conformance`
 * (the built server on embedded defaults, and the official SDK client as a real OAuth client: 401, discovery,
 * dynamic registration, code + PKCE + resource, per-user tool lists, step-up after 403 insufficient_scope).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineOAuthClientE2E } from '@authsec/adapter-conformance/oauth-client-e2e';

defineOAuthClientE2E(
  'express-server',
  join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js'),
);
