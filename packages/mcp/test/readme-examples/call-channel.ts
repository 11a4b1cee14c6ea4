import { ElicitResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { protect } from '../../src/index.js';

export const deploy = protect('deploy', { roles: ['deployer'] }, async (args, context) => {
  // Ask the user, through their client, before doing anything (the client must support elicitation).
  const answer = await context.sendRequest(
    {
      method: 'elicitation/create',
      params: {
        message: `Deploy to production as ${args._user_info.email}?`,
        requestedSchema: {
          type: 'object',
          properties: { confirm: { type: 'boolean' } },
          required: ['confirm'],
        },
      },
    },
    ElicitResultSchema,
  );
  if (answer.action !== 'accept' || answer.content?.confirm !== true) return 'Deployment cancelled.';
  for (const step of [1, 2, 3]) {
    await context.log('info', `deploy step ${step} of 3`);
    if (context.progressToken !== undefined) {
      await context.sendNotification({
        method: 'notifications/progress',
        params: { progressToken: context.progressToken, progress: step, total: 3 },
      });
    }
  }
  return 'Deployed.';
});
