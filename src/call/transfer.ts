import type { TransferTarget } from '../config/schema.js';

/** The "context,exten,priority" string handed to the dialplan as AI_TRANSFER_TO (ready for Goto()). */
export function formatTransferTarget(target: TransferTarget): string {
  return typeof target === 'string' ? target : `${target.context},${target.exten},${target.priority}`;
}
