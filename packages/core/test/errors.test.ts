import { describe, expect, it } from 'vitest';
import { AuthSecError, ERROR_CODES, isAuthSecError, toAuthSecError, toErrorResponse } from '../src/index.js';

describe('AuthSecError', () => {
  it('carries the status and exposure of its code', () => {
    for (const [code, info] of Object.entries(ERROR_CODES)) {
      const err = new AuthSecError(code as keyof typeof ERROR_CODES, 'm');
      expect(err.code).toBe(code);
      expect(err.status).toBe(info.status);
      expect(err.expose).toBe(info.status < 500);
    }
  });

  it('is recognised by brand across copies, not only instanceof', () => {
    const foreign = Object.create(null) as Record<symbol, unknown>;
    foreign[Symbol.for('@authsec/core/AuthSecError')] = true;
    expect(isAuthSecError(foreign)).toBe(true);
    expect(isAuthSecError(new Error('x'))).toBe(false);
    expect(isAuthSecError(null)).toBe(false);
  });

  it('wraps unknown failures as INTERNAL and keeps the cause server-side', () => {
    const cause = new Error('db password is hunter2');
    const err = toAuthSecError(cause);
    expect(err.code).toBe('INTERNAL');
    expect(err.cause).toBe(cause);
    const res = toErrorResponse(err);
    expect(res.status).toBe(500);
    expect(JSON.stringify(res)).not.toContain('hunter2');
  });
});

describe('toErrorResponse', () => {
  const opts = {
    resourceMetadataUrl: 'https://mcp.example/.well-known/oauth-protected-resource/mcp',
    scopes: ['read'],
  };

  it('answers a missing token with a bare challenge naming metadata and scope (RFC 6750 §3.1)', () => {
    const res = toErrorResponse(new AuthSecError('TOKEN_MISSING', 'no token'), opts);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe(
      'Bearer scope="read", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp"',
    );
  });

  it('answers a bad token with error="invalid_token"', () => {
    const res = toErrorResponse(new AuthSecError('TOKEN_EXPIRED', 'expired'), opts);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(
      /^Bearer error="invalid_token", error_description="expired"/,
    );
    expect(res.body.code).toBe('TOKEN_EXPIRED');
  });

  it('answers insufficient scope with 403 and every needed scope', () => {
    const err = new AuthSecError('INSUFFICIENT_SCOPE', 'needs write', {
      details: { scopes: ['write', 'read'] },
    });
    const res = toErrorResponse(err, opts);
    expect(res.status).toBe(403);
    expect(res.headers['www-authenticate']).toContain('error="insufficient_scope"');
    expect(res.headers['www-authenticate']).toContain('scope="write read"');
    expect(res.headers['www-authenticate']).toContain('resource_metadata=');
  });

  it('answers a plain denial with 403 and no challenge', () => {
    const res = toErrorResponse(new AuthSecError('PERMISSION_DENIED', 'no'), opts);
    expect(res.status).toBe(403);
    expect(res.headers['www-authenticate']).toBeUndefined();
  });

  it('never exposes 5xx details and asks to retry on 503', () => {
    const res = toErrorResponse(new AuthSecError('SERVICE_UNAVAILABLE', 'postgres at 10.0.0.3 refused'));
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(JSON.stringify(res.body)).not.toContain('10.0.0.3');
  });

  it('strips quotes and line breaks from header values', () => {
    const res = toErrorResponse(new AuthSecError('TOKEN_INVALID', 'bad "x"\r\nSet-Cookie: a=b'));
    expect(res.headers['www-authenticate']).not.toMatch(/[\r\n]/);
    expect(res.headers['www-authenticate']).toContain('error_description="bad xSet-Cookie: a=b"');
  });
});
