import { createAuthSec } from '@authsec/core';
import * as z from 'zod';
import { protect, startMcpV2HttpServer } from '../../src/v2/index.js';

const issuer = 'https://login.example.com';
const resourceUrl = 'http://127.0.0.1:3000/mcp'; // the audience tokens must carry
const authsec = createAuthSec({ issuers: [issuer], audience: resourceUrl });

// Was: const server = new McpServer({ name: 'deployments', version: '1.0.0' });
const server = protect(authsec, { name: 'deployments', version: '1.0.0' });

server.registerTool(
  'deploy',
  {
    description: 'Deploy a service',
    inputSchema: z.object({ service: z.string() }),
    requirement: { roles: ['deployer'], scopes: ['write'], requireAll: true }, // the one new line
  },
  async ({ service, _user_info }) => ({
    content: [{ type: 'text', text: `${service} deployed by ${_user_info?.email}` }],
  }),
);

// Both protocol eras at /mcp: 2026-07-28 (stateless) and 2025 (sessions bound to their subject).
await startMcpV2HttpServer({ server, authsec, port: 3000, authorizationServers: [issuer] });
