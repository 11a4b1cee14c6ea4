import { createAuthSec } from '@authsec/core';
import * as z from 'zod';
import { protect } from '../../src/v2/index.js';

const authsec = createAuthSec({
  issuers: ['https://login.example.com'],
  audience: 'http://127.0.0.1:3000/mcp',
});
const server = protect(authsec, { name: 'billing', version: '1.0.0' });

server.registerTool(
  'refund',
  {
    description: 'Refund an order, up to 1,000 EUR',
    inputSchema: z.object({ order: z.string(), amount: z.number(), currency: z.string().default('EUR') }),
    requirement: {
      roles: ['finance'],
      // CEL over the validated arguments (the default above applied), the caller and the time; all must hold.
      when: ['args.amount > 0 && args.amount <= 1000', 'args.currency == "EUR"'],
    },
  },
  async ({ order, amount }) => ({ content: [{ type: 'text', text: `Refunded ${amount} EUR on ${order}` }] }),
);

server.registerTool(
  'open_project',
  {
    description: "Open one of the caller's own projects, in office hours",
    inputSchema: z.object({ project: z.string() }),
    requirement: {
      when: [
        'args.project.startsWith(user.sub + "/")',
        'now.getHours("Europe/Berlin") >= 8 && now.getHours("Europe/Berlin") < 18',
      ],
    },
  },
  async ({ project }) => ({ content: [{ type: 'text', text: `Opened ${project}` }] }),
);
