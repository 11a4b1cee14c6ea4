import { AuthSecError } from '@authsec/core';
import type { ToolArguments, ToolContext } from '@authsec/mcp';
import { createSampleTools, SAMPLE_REQUIREMENTS as r } from '@authsec/sample-tools';
import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { AuthSecTool } from '../src/index.js';

const text = (value: string) => [{ type: 'text', text: value }];
type Args<A = Record<string, unknown>> = ToolArguments<A>;

const calculatorSchema = z.object({
  operation: z.enum(['add', 'subtract', 'multiply', 'divide']),
  a: z.number(),
  b: z.number(),
});

// The GitHub call of `list_my_repos` is the sample set's own (it needs service credentials and fetch).
const listMyRepos = createSampleTools().find((tool) => tool.name === 'list_my_repos')!;

/** The sample tool set of @authsec/sample-tools, declared as `@AuthSecTool` methods of one provider. */
@Injectable()
export class SampleToolsProvider {
  @AuthSecTool('hello', r.hello, { description: 'Greets the signed-in user.' })
  hello(args: Args) {
    return text(`Hello, ${args._user_info.email ?? args._user_info.sub}!`);
  }

  @AuthSecTool('calculator', r.calculator, {
    description: 'Adds, subtracts, multiplies or divides two numbers.',
    inputSchema: calculatorSchema,
  })
  calculator(args: Args<z.output<typeof calculatorSchema>>) {
    const { operation, a, b } = args;
    if (operation === 'divide' && b === 0) throw new AuthSecError('BAD_REQUEST', 'Cannot divide by zero');
    const ops = { add: a + b, subtract: a - b, multiply: a * b, divide: a / b };
    return text(`${a} ${operation} ${b} = ${ops[operation]}`);
  }

  @AuthSecTool('admin_panel', r.admin_panel, { description: 'The admin panel (role admin).' })
  adminPanel() {
    return text('Admin panel accessed');
  }

  @AuthSecTool('admin_dashboard', r.admin_dashboard, { description: 'The admin dashboard (role admin).' })
  adminDashboard(args: Args) {
    return text(`Welcome to admin dashboard, ${args._user_info.email ?? args._user_info.sub}!`);
  }

  @AuthSecTool('create_resource', r.create_resource, {
    description: 'Creates a resource (scope write).',
    inputSchema: z.object({ name: z.string().min(1).max(200).optional() }),
  })
  createResource(args: Args<{ name?: string }>) {
    return text(`Resource '${args.name ?? 'Unnamed'}' created successfully!`);
  }

  @AuthSecTool('view_analytics', r.view_analytics, {
    description: 'Analytics (scope read and resource analytics).',
  })
  viewAnalytics(_args: Args, context: ToolContext) {
    return text(`Analytics of tenant ${context.tenant}: 42 active projects`);
  }

  @AuthSecTool('view_reports', r.view_reports, {
    description: 'Business reports (role admin, manager or analyst).',
  })
  viewReports() {
    return text('Business reports');
  }

  @AuthSecTool('deploy_production', r.deploy_production, { description: 'Deploys to production.' })
  deployProduction() {
    return text('Deployment initiated');
  }

  @AuthSecTool('engineering_tools', r.engineering_tools, { description: 'Engineering dashboard.' })
  engineeringTools() {
    return text('Engineering dashboard');
  }

  @AuthSecTool('sensitive_operations', r.sensitive_operations, { description: 'Sensitive operations.' })
  sensitiveOperations() {
    return text('Sensitive operation completed');
  }

  @AuthSecTool('list_my_repos', r.list_my_repos, {
    description: 'Lists your GitHub repositories (scope read).',
  })
  listMyRepos(args: Args, context: ToolContext) {
    return listMyRepos.run(args, context);
  }
}
