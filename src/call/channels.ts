import type { AmiMessage } from '../asterisk/ami/parser.js';
import type { Clock } from '../audio/clock.js';

/** What AMI told us about one Asterisk channel. */
export interface ChannelInfo {
  readonly uniqueid: string;
  readonly channel: string;
  /** ChannelState: 0 Down, 4 Ring, 5 Ringing, 6 Up … (protocols.md §3.5) */
  readonly state: number;
  readonly stateDesc: string;
  /** Wall-clock ms when the channel was first seen. */
  readonly seenAt: number;
  readonly hangupCause?: number | undefined;
}

/** Channels tracked at once; the oldest are forgotten first so a busy PBX cannot grow this without bound. */
const MAX_TRACKED = 20_000;

/**
 * Follows Asterisk channels from AMI events (Newchannel, Newstate, Rename, Hangup) so the status
 * endpoint can show each call's channel, state and age next to ai-call's own view.
 */
export class ChannelTracker {
  readonly #clock: Clock;
  readonly #channels = new Map<string, ChannelInfo>();

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Returns the channel the event changed, if it is one we track. */
  onEvent(event: AmiMessage): ChannelInfo | undefined {
    const uniqueid = event.get('Uniqueid');
    if (uniqueid === undefined) return undefined;
    switch (event.event) {
      case 'Newchannel':
      case 'Newstate':
      case 'Rename':
      case 'NewConnectedLine':
      case 'VarSet': {
        if (event.event === 'VarSet' && !this.#channels.has(uniqueid)) return undefined;
        const previous = this.#channels.get(uniqueid);
        const info: ChannelInfo = {
          uniqueid,
          channel: event.get('Channel') ?? event.get('NewName') ?? previous?.channel ?? '',
          state: Number(event.get('ChannelState') ?? previous?.state ?? 0),
          stateDesc: event.get('ChannelStateDesc') ?? previous?.stateDesc ?? '',
          seenAt: previous?.seenAt ?? this.#clock.wallNow(),
        };
        this.#channels.delete(uniqueid);
        this.#channels.set(uniqueid, info);
        if (this.#channels.size > MAX_TRACKED) this.#channels.delete(this.#channels.keys().next().value!);
        return info;
      }
      case 'Hangup': {
        const previous = this.#channels.get(uniqueid);
        this.#channels.delete(uniqueid);
        return {
          uniqueid,
          channel: event.get('Channel') ?? previous?.channel ?? '',
          state: 0,
          stateDesc: 'Hungup',
          seenAt: previous?.seenAt ?? this.#clock.wallNow(),
          hangupCause: Number(event.get('Cause') ?? 0),
        };
      }
      default:
        return undefined;
    }
  }

  get(uniqueid: string | undefined): (ChannelInfo & { durationS: number }) | undefined {
    if (uniqueid === undefined) return undefined;
    const info = this.#channels.get(uniqueid);
    return info && { ...info, durationS: Math.round((this.#clock.wallNow() - info.seenAt) / 1000) };
  }

  get size(): number {
    return this.#channels.size;
  }

  clear(): void {
    this.#channels.clear();
  }
}
