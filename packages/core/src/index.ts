/**
 * @authsec/core: the transport-agnostic engine behind every AuthSec adapter.
 *
 * Plain values in, plain values out: no framework type crosses this boundary. Postgres and Vault code lives
 * behind subpath exports so that this entry stays free of heavy dependencies.
 *
 * @packageDocumentation
 */

export {
  type AuditAction,
  type AuditEvent,
  type AuditSink,
  createJsonLinesAuditSink,
  digestArguments,
  type JsonLinesAuditSinkOptions,
  MemoryAuditSink,
} from './audit.js';
export { constantTimeEqual, open as openSealed, seal, sealedKeyId } from './crypto.js';
export {
  type AuditInput,
  type AuthSec,
  type ConditionCall,
  createAuthSec,
  type Decision,
  type Readiness,
  type RequirementInput,
  type ToolCallInput,
  type UseAction,
  type UseInput,
} from './engine.js';
export {
  AUTHSEC_ENV_VARIABLES,
  type AuthSecEnvName,
  type AuthSecEnvOptions,
  authSecOptionsFromEnv,
  defaultDataDir,
  editDistance,
  type MasterKeyRing,
  nearestEnvName,
  parseMasterKey,
} from './env.js';
export {
  AuthSecError,
  type AuthSecErrorCode,
  type AuthSecErrorDetails,
  type AuthSecErrorOptions,
  ERROR_CODES,
  type ErrorCodeInfo,
  type ErrorResponse,
  type ErrorResponseOptions,
  isAuthSecError,
  toAuthSecError,
  toErrorResponse,
} from './errors.js';
export { createFileOnce } from './files.js';
export { assertDisplaySafe, hasUnsafeDisplayChars } from './identifiers.js';
export {
  applicationLogger,
  createLogger,
  type LoggerOptions,
  type LogLevel,
  type NestStyleLogger,
  type PinoStyleLogger,
  silentLogger,
  useApplicationLogger,
} from './logger.js';
export { isLoopbackHost } from './loopback.js';
export { type ResolveMasterKeyOptions, resolveMasterKey } from './master-key.js';
export {
  type AuthorizationRequestInput,
  type CodeExchangeInput,
  createOAuthClient,
  type DeviceAuthorization,
  type DevicePollOptions,
  generateCodeVerifier,
  generateNonce,
  type OAuthClient,
  type OAuthClientOptions,
  type TokenSet,
  type TokenTypeHint,
} from './oauth/index.js';
export type {
  AuthSecOptions,
  ClaimMapping,
  ClaimPreset,
  DirectoryChange,
  IntrospectionOptions,
  IssuerOptions,
  PrincipalDirectory,
} from './options.js';
export {
  createRequestPipeline,
  DECISIONS_EXTRA_KEY,
  type Decisions,
  decisionFor,
  type PipelineAuthInfo,
  type PipelineBody,
  type PipelineForward,
  type PipelineHeaders,
  type PipelineRequest,
  type PipelineResponse,
  type PipelineResult,
  type PrimitiveRequirement,
  type PrimitiveRequirements,
  principalKey,
  type RequestPipeline,
  type RequestPipelineOptions,
  type RequestPolicyOptions,
} from './pipeline.js';
export {
  authorize,
  type CategoryExplanation,
  type CompiledRequirement,
  type ConditionOutcome,
  type ConditionUser,
  compileRequirement,
  createToolRegistry,
  type Explanation,
  evaluate,
  explain,
  explainConditions,
  isCompiledRequirement,
  requiredScopes,
  type ToolDefinition,
  type ToolRegistry,
} from './policy/index.js';
export {
  createMemoryRequestStateStore,
  createRequestStateSealer,
  type OpenedRequestState,
  type RequestStateBinding,
  type RequestStateSealer,
  type RequestStateSealerOptions,
  type RequestStateStore,
} from './request-state.js';
export {
  createResourceServer,
  PRINCIPAL_EXTRA_KEY,
  PROTECTED_RESOURCE_METADATA_PATH,
  type ProtectedResourceMetadata,
  type ResourceAuthInfo,
  type ResourceServer,
  type ResourceServerInput,
  type ResourceServerOptions,
  type RouteGuard,
  toResourceServer,
} from './resource-server.js';
export {
  clearServiceCache,
  createServiceAccess,
  createServiceAccessFactory,
  type ServiceAccessEngine,
  type ServiceAccessFactoryOptions,
  type ServiceAccessOptions,
} from './secrets/access.js';
export { serviceSlug } from './secrets/common.js';
export type {
  RotateOptions,
  SecretBackend,
  ServiceSecretInput,
  ServiceSecretSummary,
  StoredServiceSecret,
} from './secrets/types.js';
export { hasVersionProbe, type SecretVersionProbe } from './secrets/version-probe.js';
export {
  noServiceAccess,
  type ServiceAccess,
  type ServiceCredentials,
  type ServiceSummary,
} from './services.js';
export {
  type AuthenticatedSessionInput,
  type CreatedPendingSession,
  createMemorySessionStore,
  type MemorySessionStoreOptions,
  type PendingSession,
  type PendingSessionInput,
  type SessionRecord,
  type SessionStatus,
  type SessionStore,
  type SessionStoreOptions,
  type SessionSummary,
  type SessionTokens,
  type SessionTokensUpdate,
} from './sessions.js';
export {
  ATTR as TELEMETRY_ATTRIBUTES,
  METRIC as TELEMETRY_METRICS,
  type TelemetryAttributes,
  type TelemetryInstrumentOptions,
  type TelemetryMeter,
  type TelemetryObservable,
  type TelemetryObservableResult,
  type TelemetryOptions,
  type TelemetrySpan,
  type TelemetryTracer,
} from './telemetry.js';
export {
  CATEGORIES,
  type Category,
  type CategoryRequirement,
  type Clock,
  isValidTenantId,
  type Logger,
  type Principal,
  type Requirement,
  TENANT_ID_PATTERN,
} from './types.js';
