import type { AuthSec, ErrorResponse, Requirement, ResourceServer } from '@authsec/core';
import { type CanActivate, type ExecutionContext, HttpException, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  AUTHSEC_ENGINE,
  AUTHSEC_REQUIREMENT_METADATA,
  AUTHSEC_RESOURCE_SERVER,
} from './authsec.constants.js';

interface HeaderWriter {
  header?: (name: string, value: string) => unknown;
  setHeader?: (name: string, value: string) => unknown;
}

/**
 * Authenticates REST requests with the module's resource server and checks the route's
 * {@link RequireAuth} requirement. On success the request carries `auth` (the MCP SDK's `AuthInfo` shape,
 * `auth.extra.principal` is what {@link CurrentUser} returns). A refusal is core's challenge: 401 with
 * `WWW-Authenticate`, 403, or 503 when a dependency is unreachable; a bad token is never a 500.
 *
 * Extend it and override the protected hooks to change where the requirement or the credentials come from, or
 * how a refusal is answered (as with `AuthGuard` of `@nestjs/passport`).
 */
@Injectable()
export class AuthSecGuard implements CanActivate {
  constructor(
    @Inject(AUTHSEC_RESOURCE_SERVER) protected readonly resourceServer: ResourceServer,
    @Inject(AUTHSEC_ENGINE) protected readonly authsec: AuthSec,
    @Inject(Reflector) protected readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<{ headers: Record<string, unknown>; auth?: unknown }>();
    const headers = { authorization: this.getAuthorization(context) };
    try {
      const principal = await this.resourceServer.authenticate(headers);
      const requirement = this.getRequirement(context);
      if (requirement !== undefined && Object.keys(requirement).length > 0) {
        this.authsec.authorize(principal, requirement, this.getTarget(context));
      }
      request.auth = this.resourceServer.authInfo(principal, headers);
      return true;
    } catch (error) {
      return this.handleRefusal(this.resourceServer.challenge(error), context);
    }
  }

  /** The requirement of the route: the handler's {@link RequireAuth}, else its controller's. */
  protected getRequirement(context: ExecutionContext): Requirement | undefined {
    return this.reflector.getAllAndOverride<Requirement | undefined>(AUTHSEC_REQUIREMENT_METADATA, [
      context.getHandler(),
      context.getClass(),
    ]);
  }

  /** The `Authorization` header to verify. */
  protected getAuthorization(context: ExecutionContext): string | undefined {
    const value = context.switchToHttp().getRequest<{ headers: Record<string, unknown> }>()
      .headers.authorization;
    return typeof value === 'string' ? value : undefined;
  }

  /** The audit target of the authorization: `Controller.method`. */
  protected getTarget(context: ExecutionContext): string {
    return `${context.getClass().name}.${context.getHandler().name}`;
  }

  /**
   * Answers a refusal: sets the challenge's headers (`WWW-Authenticate`...) on the response, then throws an
   * `HttpException` with its status and body, so exception filters still see it.
   */
  protected handleRefusal(refusal: ErrorResponse, context: ExecutionContext): never {
    const response = context.switchToHttp().getResponse<HeaderWriter>();
    const headers: Record<string, string> = { 'cache-control': 'no-store', ...refusal.headers };
    for (const [name, value] of Object.entries(headers)) {
      // Fastify's reply has `header()`; Express's response (a node:http one) has `setHeader()`.
      if (typeof response.header === 'function') response.header(name, value);
      else response.setHeader?.(name, value);
    }
    throw new HttpException(refusal.body as Record<string, unknown>, refusal.status);
  }
}
