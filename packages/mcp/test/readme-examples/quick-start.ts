import * as z from 'zod';
import { protect, runMcpServerWithOAuth } from '../../src/index.js';

// Tool 1: any authenticated caller.
const hello = protect('hello', (args) => `Hello, ${args._user_info.email}!`);

// Tool 2: admin only.
const adminPanel = protect('admin_panel', { roles: ['admin'] }, () => [
  { type: 'text', text: 'Admin panel accessed' },
]);

// Tool 3: requires the write scope; the arguments are validated by zod.
const createResource = protect(
  'create_resource',
  { scopes: ['write'] },
  (args) => `Resource '${args.name ?? 'Unnamed'}' created successfully!`,
  { description: 'Creates a resource', inputSchema: z.object({ name: z.string().optional() }) },
);

await runMcpServerWithOAuth({
  clientId: 'your-client-id-here',
  appName: 'My Secure MCP Server',
  tools: [hello, adminPanel, createResource],
});
