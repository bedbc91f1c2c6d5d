import { assertEvent } from 'xstate';
import { acceptorMachine, recordPromise } from '@decree/acceptor';

/**
 * A DELIBERATELY BROKEN acceptor, for the self-tests that show the safety checks have teeth: its
 * promise step records every ballot it hears as its promise, forgetting any higher one it made
 * before, so it promises and accepts lower ballots (the acceptor's standard `keepPromise` raises
 * the promise only). Inject it with `CreateReplicaConfig.machines` (`SimCluster`'s `machines`,
 * `runChaos`'s and the simulator's `machines`); never in a service.
 */
export const forgetfulAcceptorMachine: typeof acceptorMachine = acceptorMachine.provide({
  actions: {
    keepPromise: ({ context, event }) => {
      assertEvent(event, ['prepare', 'accept']);
      recordPromise(context, event.ballot);
    },
  },
});
