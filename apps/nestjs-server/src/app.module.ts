import type { Principal } from '@authsec/core';
import { AuthSecModule, type AuthSecModuleOptions, CurrentUser, RequireAuth } from '@authsec/nestjs';
import { Controller, type DynamicModule, Get, Module } from '@nestjs/common';

/** An ordinary REST route, guarded by the same engine as the MCP tools. */
@Controller('api')
export class MeController {
  @Get('me')
  @RequireAuth() // any valid token for this resource
  me(@CurrentUser() user: Principal): Record<string, unknown> {
    return { subject: user.subject, tenant: user.tenantId, email: user.email ?? null };
  }
}

/**
 * The application: `AuthSecModule` serves the sample tool set (its `tools` option) at the resource URL's path,
 * with the RFC 9728 metadata and the health routes, and provides the guard of {@link MeController}.
 */
@Module({})
export class AppModule {
  static register(options: AuthSecModuleOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [AuthSecModule.forRoot(options)],
      controllers: [MeController],
    };
  }
}
