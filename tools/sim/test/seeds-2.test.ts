import { describe, it } from 'vitest';
import { expectSeedsPass } from './seed-range.ts';

// Part 2 of the 1,000 seeds that npm test simulates (250 per file, so the files run in parallel).
describe('deterministic simulation, seeds 251..500', () => {
  it(
    'no violation of agreement, validity, durability, equal states or linearizability',
    () => expectSeedsPass(251, 500),
    600_000,
  );
});
