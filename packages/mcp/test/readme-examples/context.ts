import { AuthSecError } from '@authsec/core';
import { protect } from '../../src/index.js';

export const listMyRepos = protect('list_my_repos', { scopes: ['read'] }, async (args, context) => {
  // The credential is read for the caller's tenant; it never reaches the caller.
  const token = await context.services.getServiceToken('GitHub API Integration');
  const response = await fetch('https://api.github.com/user/repos', {
    headers: { Authorization: `Bearer ${token}` },
    signal: context.signal,
  });
  if (!response.ok) throw new AuthSecError('SERVICE_UNAVAILABLE', `GitHub answered ${response.status}`);
  const repos = (await response.json()) as { full_name: string; stargazers_count: number }[];
  const list = repos
    .slice(0, 10)
    .map((repo) => `- ${repo.full_name} (${repo.stargazers_count} ⭐)`)
    .join('\n');
  return `Your GitHub Repositories (${args._user_info.email}, ${context.tenant}):\n${list}`;
});
