import { editDistance } from '@authsec/core';

/**
 * The candidate nearest to `word` (edit distance), or `undefined` when none is close enough to be a typo of
 * it (more than half of the word, and more than two edits, away).
 */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const score =
      candidate.startsWith(word) || word.startsWith(candidate) ? 1 : editDistance(word, candidate);
    if (score < bestScore) {
      best = candidate;
      bestScore = score;
    }
  }
  return bestScore <= Math.max(2, Math.floor(word.length / 2)) ? best : undefined;
}

/** `; did you mean 'x'?` when a candidate is near, else `; expected one of a, b, c`. */
export function didYouMean(word: string, candidates: readonly string[], quote = (s: string) => `'${s}'`) {
  const near = nearest(word, candidates);
  return near === undefined
    ? `; expected one of ${candidates.map(quote).join(', ')}`
    : `; did you mean ${quote(near)}?`;
}
