import * as z from 'zod';
import { publicTool } from '../../src/index.js';

export const serverStatus = publicTool(
  'server_status',
  (args, context) =>
    `up; ${context.user ? `logged in as ${context.user.email}` : 'not logged in'}${args.verbose ? ' (verbose)' : ''}`,
  { inputSchema: z.object({ verbose: z.boolean().default(false) }), annotations: { readOnlyHint: true } },
);
