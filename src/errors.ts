/**
 * One error type for the whole bridge. Codes are stable strings grouped by the edge they
 * belong to; admins grep logs for them and tests compare them against docs/errors.md.
 */
export const ERROR_CODES = {
  // config
  CONFIG_INVALID: 'the configuration file or an environment value is invalid',
  CONFIG_NOT_FOUND: 'the configuration file does not exist or cannot be read',
  // FastAGI
  AGI_BAD_LINE: 'a FastAGI line could not be parsed or was too long',
  AGI_CLIENT_REFUSED: 'a FastAGI client address is not in agi.allow',
  AGI_COMMAND_TIMEOUT: 'Asterisk did not answer a FastAGI command in time',
  AGI_COMMAND_FAILED: 'Asterisk answered a FastAGI command with 510 or 520',
  AGI_DEAD_CHANNEL: 'the channel hung up: Asterisk answered 511',
  AGI_CLOSED: 'the FastAGI connection closed before the command was answered',
  AGI_BAD_VALUE: 'a value for a FastAGI command contains CR or LF or is otherwise unsendable',
  // AudioSocket
  AUDIOSOCKET_BAD_FRAME: 'an AudioSocket message was malformed or too large',
  AUDIOSOCKET_UNKNOWN_UUID: 'an AudioSocket connection presented a UUID that was not issued, expired or already used',
  AUDIOSOCKET_NO_UUID: 'an AudioSocket connection did not send its UUID in time',
  AUDIOSOCKET_POOL_EXHAUSTED: 'every port of the AudioSocket pool is in use',
  // AMI
  AMI_AUTH_FAILED: 'Asterisk refused the AMI login',
  AMI_ACTION_TIMEOUT: 'an AMI action got no response in time',
  AMI_ACTION_FAILED: 'an AMI action was answered with Response: Error',
  AMI_DISCONNECTED: 'the AMI connection closed while actions were pending',
  AMI_BAD_VALUE: 'a value for an AMI header contains CR or LF or is otherwise unsafe',
  AMI_BAD_MESSAGE: 'an AMI message could not be parsed or was too long',
  AMI_NOT_CONFIGURED: 'the action needs AMI but no ami: section is configured',
  // agents
  AGENT_UNKNOWN: 'no agent with that name is configured',
  AGENT_CONNECT_FAILED: 'the agent connection could not be opened',
  AGENT_CONNECT_TIMEOUT: 'the agent did not become ready in time',
  AGENT_AUTH_FAILED: 'ElevenLabs refused the API key or the signed URL',
  AGENT_OVERRIDE_REJECTED: 'ElevenLabs refused an override (it is not enabled on the agent)',
  AGENT_MISSING_VARIABLE: 'ElevenLabs needs a dynamic variable the call did not supply',
  AGENT_QUOTA_EXCEEDED: 'the ElevenLabs quota is used up',
  AGENT_PROTOCOL: 'the agent sent a message that breaks its protocol',
  AGENT_UNSUPPORTED_FORMAT: 'the agent uses an audio format ai-call cannot carry',
  AGENT_CLOSED: 'the agent connection closed unexpectedly',
  AGENT_SILENT: 'the agent connection sent nothing for too long',
  // calls
  CALL_BUSY: 'a concurrency limit was reached',
  CALL_DRAINING: 'the server is shutting down and takes no new calls',
  CALL_NOT_FOUND: 'no call with that id is known',
  CALL_TIMEOUT: 'the call exceeded a time limit',
  // dialplan
  DIALPLAN_UNSAFE_VALUE: 'a value would produce broken or unsafe dialplan',
  // CLI / status API
  INPUT_INVALID: 'a request or command-line argument is invalid',
  UNAUTHORIZED: 'a status API request lacks a valid bearer token',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class BridgeError extends Error {
  override readonly name = 'BridgeError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export function isBridgeError(err: unknown, code?: ErrorCode): err is BridgeError {
  return err instanceof BridgeError && (code === undefined || err.code === code);
}

/** A short, log-safe description of anything thrown. */
export function describeError(err: unknown): string {
  if (err instanceof BridgeError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
