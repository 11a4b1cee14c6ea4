import { createServer } from 'node:http';
import { createAuthSec } from '@authsec/core';
import { createAuthSecServer, createMcpHttpHandler, protect } from '../../src/index.js';

const issuer = 'https://login.example.com';
const resourceUrl = 'https://mcp.example.com/mcp'; // the audience tokens must carry

const authsec = createAuthSec({ issuers: [issuer], audience: resourceUrl });
const server = createAuthSecServer({
  name: 'reports',
  version: '1.0.0',
  authsec,
  tools: [protect('view_reports', { roles: ['admin', 'manager', 'analyst'] }, () => 'Business reports')],
});
const handler = createMcpHttpHandler({ server, authsec, resourceUrl, authorizationServers: [issuer] });

// Behind your TLS-terminating proxy; bound to loopback.
createServer(handler).listen(3000, '127.0.0.1');
