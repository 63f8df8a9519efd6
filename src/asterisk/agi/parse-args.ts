/**
 * A line-for-line TypeScript port of Asterisk's `parse_args` (res/res_agi.c, protocols.md §2.4):
 * how Asterisk splits a FastAGI command line into argv. The simulator (playing Asterisk) reads our
 * commands with it, and tests use it as the oracle for our quoting.
 */

/** res_agi.c MAX_ARGS: argv holds at most MAX_ARGS - 1 words; further words are dropped. */
export const AGI_MAX_ARGS = 128;

export function parseAgiArgs(line: string): string[] {
  const argv: string[] = [];
  let quoted = false;
  let escaped = false;
  let whitespace = true;

  const appendNormal = (char: string): void => {
    if (whitespace) {
      // C: `if (x >= MAX_ARGS - 1) { warn; break; }` leaves the switch without storing the char.
      if (argv.length >= AGI_MAX_ARGS - 1) return;
      argv.push('');
      whitespace = false;
    }
    argv[argv.length - 1] += char;
    escaped = false;
  };

  for (const char of line) {
    switch (char) {
      case '"':
        if (escaped) {
          appendNormal(char);
          break;
        }
        quoted = !quoted;
        if (quoted && whitespace) {
          // Opening a quote off whitespace starts a word, so `""` is an empty argument.
          argv.push('');
          whitespace = false;
        }
        escaped = false;
        break;
      case ' ':
      case '\t':
        if (!quoted && !escaped) whitespace = true;
        else appendNormal(char);
        break;
      case '\\':
        if (escaped) appendNormal(char);
        else escaped = true;
        break;
      default:
        appendNormal(char);
    }
  }
  return argv;
}
