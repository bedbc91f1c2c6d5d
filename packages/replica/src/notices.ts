import type { Configuration, LeaderRole, MessageOf, ReplicaId, StateMachine } from '@decree/protocol';
import type { ConfigurationInfo } from './types.ts';
import { topState } from './stats.ts';

/**
 * What the user's state machine hears about its replica (RSL's notifications: role changes, leader
 * recovered, configuration changed or aborted), and the replica's view that goes with them: its
 * role and the configuration as of the executed slot.
 */
export class Notices {
  role: LeaderRole = 'follower';
  config: Configuration;
  members: ReplicaId[];
  private proposerState = 'follower';

  constructor(
    private readonly sm: StateMachine,
    private readonly self: ReplicaId,
    config: Configuration,
    /** the learner's configuration (it has the start slot of a change it executed) */
    private readonly learnerConfig: () => Configuration,
  ) {
    this.config = config;
    this.members = [...config.members];
  }

  /** RSL GetConfiguration: the members as of the executed slot and the configuration number. */
  info(): ConfigurationInfo {
    return { epoch: this.config.epoch, members: [...this.members], startSlot: this.config.startSlot };
  }

  /** Every proposer state: a change of role (leader, candidate, follower) reaches onRoleChange. */
  onProposerState(value: unknown, hint: ReplicaId | undefined): void {
    const state = topState(value);
    if (state === this.proposerState) return;
    this.proposerState = state;
    const role: LeaderRole = state === 'leading' ? 'leader' : state === 'preparing' ? 'candidate' : 'follower';
    if (role === this.role || state === 'stopped') return;
    const was = this.role;
    this.role = role;
    if (role === 'leader' || was === 'leader')
      this.sm.onRoleChange?.(role, role === 'leader' ? this.self : hint !== this.self ? hint : undefined);
  }

  onRecovered(): void {
    this.sm.onLeaderRecovered?.();
  }

  onConfigNotice(m: MessageOf<'config-notice'>): void {
    if (m.kind !== 'changed') {
      this.sm.onConfigurationAborted?.(m.members, m.cookie, m.reason ?? 'the configuration change failed');
      return;
    }
    if (m.epoch > this.config.epoch) {
      const l = this.learnerConfig();
      this.config =
        l.epoch === m.epoch
          ? { ...l, members: [...l.members] }
          : { epoch: m.epoch, members: [...m.members], startSlot: this.config.startSlot };
      this.members = [...m.members];
    }
    this.sm.onConfigurationChange?.(m.members, m.cookie, m.epoch);
  }
}
