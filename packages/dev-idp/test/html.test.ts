import { describe, expect, it } from 'vitest';
import { loginPage } from '../src/html.js';
import { escapeHtml } from '../src/index.js';

describe('HTML', () => {
  it('escapes the five significant characters', () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe(
      '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;',
    );
  });

  it('renders a login form with exactly login and password, escaping every value', () => {
    const html = loginPage({
      action: '/interaction/abc',
      client: '<b>client</b>',
      scope: 'read "write"',
      resources: ['http://x/<mcp>'],
      login: "o'neil",
      error: '<i>bad</i>',
    });
    expect(html).not.toMatch(/<b>|<i>|<mcp>/);
    expect([...html.matchAll(/<input\b[^>]*name="([^"]+)"/g)].map((match) => match[1])).toEqual([
      'login',
      'password',
    ]);
    expect(html).toContain('value="o&#39;neil"');
    expect(html).not.toContain('<script');
  });
});
