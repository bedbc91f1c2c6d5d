import type { AnyActorRef } from 'xstate';

/** Resolves when the actor reaches a final state (or stops, or fails). */
export function untilDone(a: AnyActorRef): Promise<void> {
  return new Promise((resolve) => {
    if (a.getSnapshot().status !== 'active') return resolve();
    const sub = a.subscribe({
      next: (snap: { status: string }) => {
        if (snap.status !== 'active') {
          sub.unsubscribe();
          resolve();
        }
      },
      error: () => resolve(),
      complete: () => resolve(),
    });
  });
}
