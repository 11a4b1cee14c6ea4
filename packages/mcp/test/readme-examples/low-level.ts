import { createAuthSec } from '@authsec/core';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createAuthSecServer, type LoginProvider, protect } from '../../src/index.js';

declare const login: LoginProvider; // the tool-based login (oauth_* tools)

const authsec = createAuthSec({ issuers: ['https://login.example.com'], audience: 'urn:example:my-mcp' });
const server = createAuthSecServer({
  name: 'my-server',
  version: '1.0.0',
  authsec,
  login,
  tools: [protect('hello', (args) => `Hello, ${args._user_info.email}!`)],
});

// One SDK Server per connection; stdio has exactly one.
await server.createServer('stdio').connect(new StdioServerTransport());
process.on('SIGTERM', () => void server.close());
