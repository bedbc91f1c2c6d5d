import { describe, it } from 'vitest';
import { expectSeedsPass } from './seed-range.ts';

// Part 3 of the 1,000 seeds that npm test simulates (250 per file, so the files run in parallel).
describe('deterministic simulation, seeds 501..750', () => {
  it(
    'no violation of agreement, validity, durability, equal states or linearizability',
    () => expectSeedsPass(501, 750),
    600_000,
  );
});
