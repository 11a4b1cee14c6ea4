import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { AUTHSEC_ENGINE, AUTHSEC_RESOURCE_SERVER } from '../authsec.constants.js';
import { engineProviders } from '../authsec.providers.js';
import { AuthSecGuard } from '../authsec.route.js';
import { AUTHSEC_V2_OPTIONS, AuthSecConfigurableModule } from './module-options.js';
import { AuthSecMcpService } from './service.js';

/**
 * AuthSec in a Nest application on the MCP SDK v2: the engine, the resource server, {@link AuthSecGuard}, and
 * (unless `mcp: false`) the MCP endpoint serving both protocol eras at the resource URL's path with every
 * `@AuthSecTool`, `@AuthSecResource` and `@AuthSecPrompt` method, its RFC 9728 metadata and health. The
 * routes are mounted when the module starts, after the application's own middleware, hooks and plugins, which
 * therefore run on them. Global unless `isGlobal: false`.
 */
@Module({
  imports: [DiscoveryModule],
  providers: [...engineProviders(AUTHSEC_V2_OPTIONS), AuthSecGuard, AuthSecMcpService],
  exports: [AUTHSEC_ENGINE, AUTHSEC_RESOURCE_SERVER, AuthSecGuard, AuthSecMcpService],
})
export class AuthSecModule extends AuthSecConfigurableModule {}
