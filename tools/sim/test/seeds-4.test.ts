import { describe, it } from 'vitest';
import { expectSeedsPass } from './seed-range.ts';

// Part 4 of the 1,000 seeds that npm test simulates (250 per file, so the files run in parallel).
describe('deterministic simulation, seeds 751..1000', () => {
  it(
    'no violation of agreement, validity, durability, equal states or linearizability',
    () => expectSeedsPass(751, 1000),
    600_000,
  );
});
