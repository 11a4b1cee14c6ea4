/**
 * What REST routes get on both entries of `@authsec/nestjs` (the v1 SDK line and `./v2`): the guard and its
 * decorators. It names no MCP SDK and no `@authsec/mcp` entry.
 */
import type {
  ErrorResponse,
  Principal,
  Requirement,
  ResourceAuthInfo,
  ResourceServer,
  RouteGuard,
} from '@authsec/core';
import {
  applyDecorators,
  type CanActivate,
  createParamDecorator,
  type ExecutionContext,
  HttpException,
  Inject,
  Injectable,
  SetMetadata,
  UseGuards,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  AUTHSEC_PUBLIC_METADATA,
  AUTHSEC_REQUIREMENT_METADATA,
  AUTHSEC_RESOURCE_SERVER,
} from './authsec.constants.js';

/** A request behind {@link AuthSecGuard}, on Express or Fastify. */
export interface AuthSecHttpRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The verified caller in the MCP SDK's `AuthInfo` shape; `auth.extra.principal` is the principal. */
  auth?: ResourceAuthInfo;
  /** The verified caller (as Passport strategies set `req.user`). */
  user?: Principal;
  /** Express: the matched route. */
  readonly route?: { readonly path?: string };
  /** Fastify: the matched route. */
  readonly routeOptions?: { readonly url?: string };
}

/** Marks a request this guard let through. */
const CHECKED = Symbol('authsec.checked');

interface HeaderWriter {
  header?: (name: string, value: string) => unknown;
  setHeader?: (name: string, value: string) => unknown;
}

/**
 * Authenticates REST requests with the module's resource server and checks the route's {@link RequireAuth}
 * requirement, audited as `route.access` under `METHOD /route/template` (never the query). On success the
 * request carries `user` (the principal, what {@link CurrentUser} returns) and `auth` (the MCP SDK's
 * `AuthInfo` shape). A route or controller marked {@link Public} passes without a token (for the global
 * guard, `globalGuard: true` of the v2 module). A refusal is core's challenge: 401 with `WWW-Authenticate`,
 * 403 (`insufficient_scope` naming the scopes to get), or 503 when a dependency is unreachable; a bad token
 * is never a 500.
 *
 * Extend it and override the protected hooks to change where the requirement or the credentials come from, or
 * how a refusal is answered (as with `AuthGuard` of `@nestjs/passport`).
 */
@Injectable()
export class AuthSecGuard implements CanActivate {
  /** One compiled guard per requirement object (decorator metadata is created once per route). */
  private readonly guards = new WeakMap<Requirement, RouteGuard>();
  private bare: RouteGuard | undefined;

  constructor(
    @Inject(AUTHSEC_RESOURCE_SERVER) protected readonly resourceServer: ResourceServer,
    @Inject(Reflector) protected readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (this.isPublic(context)) return true;
    const request = context.switchToHttp().getRequest<AuthSecHttpRequest & { [CHECKED]?: true }>();
    // The global guard and a route's @RequireAuth read the same requirement: decided (and audited) once.
    if (request[CHECKED] === true) return true;
    try {
      const auth = await this.guardFor(this.getRequirement(context))(
        { authorization: this.getAuthorization(context) },
        this.getTarget(context),
      );
      request.auth = auth;
      request.user = auth.extra.principal;
      request[CHECKED] = true;
      return true;
    } catch (error) {
      return this.handleRefusal(this.resourceServer.challenge(error), context);
    }
  }

  /** Whether the route (or its controller) is {@link Public}. */
  protected isPublic(context: ExecutionContext): boolean {
    return (
      this.reflector.getAllAndOverride<boolean | undefined>(AUTHSEC_PUBLIC_METADATA, [
        context.getHandler(),
        context.getClass(),
      ]) === true
    );
  }

  /** The requirement of the route: the handler's {@link RequireAuth}, else its controller's, else none. */
  protected getRequirement(context: ExecutionContext): Requirement | undefined {
    return this.reflector.getAllAndOverride<Requirement | undefined>(AUTHSEC_REQUIREMENT_METADATA, [
      context.getHandler(),
      context.getClass(),
    ]);
  }

  /** The `Authorization` header to verify. */
  protected getAuthorization(context: ExecutionContext): string | undefined {
    const value = context.switchToHttp().getRequest<AuthSecHttpRequest>().headers.authorization;
    return typeof value === 'string' ? value : undefined;
  }

  /** The audit target: the HTTP method and the route's template (`GET /api/items/:id`), never the query. */
  protected getTarget(context: ExecutionContext): string {
    const request = context.switchToHttp().getRequest<AuthSecHttpRequest>();
    const template = request.route?.path ?? request.routeOptions?.url;
    return template === undefined
      ? `${context.getClass().name}.${context.getHandler().name}`
      : `${request.method} ${template}`;
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

  private guardFor(requirement: Requirement | undefined): RouteGuard {
    // `{}` is any authenticated caller, as no requirement: nothing to compile or audit.
    if (requirement === undefined || Object.keys(requirement).length === 0) {
      this.bare ??= this.resourceServer.guard();
      return this.bare;
    }
    let guard = this.guards.get(requirement);
    if (guard === undefined) {
      guard = this.resourceServer.guard(requirement);
      this.guards.set(requirement, guard);
    }
    return guard;
  }
}

/**
 * Guards a REST controller or route with {@link AuthSecGuard}: a valid bearer token is required and, when given,
 * `requirement` (roles, groups, scopes, resources, permissions) must hold. A method's requirement replaces its
 * controller's.
 */
export function RequireAuth(requirement: Requirement = {}): MethodDecorator & ClassDecorator {
  return applyDecorators(SetMetadata(AUTHSEC_REQUIREMENT_METADATA, requirement), UseGuards(AuthSecGuard));
}

/** Lets a route or controller through {@link AuthSecGuard} without a token (under the global guard). */
export function Public(): MethodDecorator & ClassDecorator {
  return SetMetadata(AUTHSEC_PUBLIC_METADATA, true);
}

/** Reads the principal {@link AuthSecGuard} verified (on Express and Fastify requests alike). */
export function principalOf(request: unknown): Principal | undefined {
  return (request as { auth?: { extra?: { principal?: Principal } } } | undefined)?.auth?.extra?.principal;
}

/** The verified caller (`Principal` of `@authsec/core`) of a route guarded by {@link AuthSecGuard}. */
export const CurrentUser = createParamDecorator(
  (_data: unknown, context: ExecutionContext): Principal | undefined =>
    principalOf(context.switchToHttp().getRequest()),
);
