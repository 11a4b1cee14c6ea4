/**
 * End to end, the way a real MCP client meets this app: the shared suite of `@authsec/adapter-conformance`
 * (the built server on embedded defaults, and the official SDK client as a real OAuth client: 401, discovery,
 * dynamic registration, code + PKCE + resource, per-user tool lists, step-up after 403 insufficient_scope).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineOAuthClientE2E } from '@authsec/adapter-conformance/oauth-client-e2e';
import { expect, it } from 'vitest';

defineOAuthClientE2E(
  'nestjs-server',
  join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js'),
  (app) => {
    it('guards the REST route with @RequireAuth(): 401 with the challenge without a token, the caller with one', async () => {
      const url = new URL('/api/me', app.mcpUrl()).href;
      const refused = await fetch(url);
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate') ?? '').toContain(
        `resource_metadata="${new URL(app.mcpUrl()).origin}/.well-known/oauth-protected-resource/mcp"`,
      );
      await refused.body?.cancel();

      const provider = await app.newProvider(app.users.analyst);
      await app.authorize(provider);
      const me = await fetch(url, {
        headers: { authorization: `Bearer ${provider.tokens()!.access_token}` },
      });
      expect(me.status).toBe(200);
      const body = (await me.json()) as Record<string, unknown>;
      expect(body.email).toBe(app.users.analyst.email);
      expect(body.tenant).toBe('acme-corp');
    });
  },
);
