/**
 * A small checker for the extensions.conf syntax pbx_config accepts (pure). It is not Asterisk's
 * parser; it catches what a template mistake or an unsafe value would break:
 *   [context]                                     1-79 of A-Z a-z 0-9 _ -
 *   exten => name,1|n|N[(label)],App(args)        the first line of an extension is priority 1
 *   same => n[(label)],App(args)                  only after an exten line of the same context
 *   include => context   #include file   ; comment
 * Args: parentheses balanced, every ${ closed by }, every $[ closed by ]; a bare label used by
 * Goto()/GotoIf() must exist in the same extension.
 */

const CONTEXT = /^\[([A-Za-z0-9_-]{1,79})\]$/;
const EXTEN_LINE = /^exten\s*=>\s*([^,]+),(\d+|n)(?:\(([A-Za-z0-9_]+)\))?,([A-Za-z][A-Za-z0-9_]*)\((.*)\)$/;
const SAME_LINE = /^same\s*=>\s*n(?:\(([A-Za-z0-9_]+)\))?,([A-Za-z][A-Za-z0-9_]*)\((.*)\)$/;
const INCLUDE_LINE = /^include\s*=>\s*[A-Za-z0-9_-]{1,79}$/;
const HASH_INCLUDE = /^#include\s+\S+$/;

interface Extension {
  readonly context: string;
  readonly name: string;
  readonly line: number;
  readonly labels: Set<string>;
  readonly jumps: Array<{ label: string; line: number }>;
}

/** Problems found, "line N: what" each; empty when the text looks like valid dialplan. */
export function lintExtensionsConf(text: string): string[] {
  const problems: string[] = [];
  const extensions = new Map<string, Extension>();
  let context: string | undefined;
  let current: Extension | undefined;
  const contexts = new Set<string>();

  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const n = i + 1;
    if (/[\r\0]/.test(raw)) problems.push(`line ${n}: carriage return or NUL`);
    const line = stripComment(raw).trim();
    if (line === '') continue;
    if (HASH_INCLUDE.test(line)) continue;
    const header = CONTEXT.exec(line);
    if (header) {
      context = header[1]!;
      if (contexts.has(context)) problems.push(`line ${n}: context [${context}] defined twice`);
      contexts.add(context);
      current = undefined;
      continue;
    }
    if (context === undefined) {
      problems.push(`line ${n}: statement outside a context: ${line}`);
      continue;
    }
    if (INCLUDE_LINE.test(line)) continue;
    const exten = EXTEN_LINE.exec(line);
    const same = exten ? null : SAME_LINE.exec(line);
    if (!exten && !same) {
      problems.push(`line ${n}: not "exten => name,priority,App(args)" or "same => n,App(args)": ${line}`);
      continue;
    }
    let label: string | undefined;
    let app: string;
    let args: string;
    if (exten) {
      const [, name, priority, lab, application, data] = exten as unknown as [string, string, string, string | undefined, string, string];
      const key = `${context}\u0000${name}`;
      const existing = extensions.get(key);
      if (existing === undefined) {
        if (priority !== '1') problems.push(`line ${n}: extension ${name} starts at priority ${priority}, not 1`);
        current = { context, name, line: n, labels: new Set(), jumps: [] };
        extensions.set(key, current);
      } else {
        if (priority === '1') problems.push(`line ${n}: extension ${name} in [${context}] has priority 1 twice`);
        current = existing;
      }
      label = lab;
      app = application;
      args = data;
    } else {
      if (current === undefined || current.context !== context) {
        problems.push(`line ${n}: "same =>" without an exten line before it in [${context}]`);
        continue;
      }
      const [, lab, application, data] = same as unknown as [string, string | undefined, string, string];
      label = lab;
      app = application;
      args = data;
    }
    if (label !== undefined) {
      if (current.labels.has(label)) problems.push(`line ${n}: label ${label} used twice in extension ${current.name}`);
      current.labels.add(label);
    }
    const argProblem = checkArgs(args);
    if (argProblem) problems.push(`line ${n}: ${app}(): ${argProblem}`);
    for (const target of jumpLabels(app, args)) current.jumps.push({ label: target, line: n });
  }
  for (const ext of extensions.values()) {
    for (const jump of ext.jumps) {
      if (!ext.labels.has(jump.label)) problems.push(`line ${jump.line}: label ${jump.label} does not exist in extension ${ext.name} of [${ext.context}]`);
    }
  }
  return problems;
}

/** manager.conf / modules.conf: sections, key = value or key => value, comments, #include. */
export function lintPlainConf(text: string): string[] {
  const problems: string[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = stripComment(raw).trim();
    if (line === '' || HASH_INCLUDE.test(line)) continue;
    if (/^\[[A-Za-z0-9_.@-]{1,64}\]$/.test(line)) continue;
    if (/^[A-Za-z][A-Za-z0-9_]*\s*=>?\s*\S.*$/.test(line) && !/[\r\0]/.test(raw)) continue;
    problems.push(`line ${i + 1}: not a section, "key = value" or "key => value": ${line}`);
  }
  return problems;
}

/** pbx_config drops everything after an unescaped ';'. */
function stripComment(line: string): string {
  for (let i = 0; i < line.length; i++) {
    if (line[i] === ';' && line[i - 1] !== '\\') return line.slice(0, i);
  }
  return line;
}

function checkArgs(args: string): string | undefined {
  let parens = 0;
  const stack: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const ch = args[i]!;
    if (ch === '(') parens++;
    else if (ch === ')') {
      parens--;
      if (parens < 0) return 'unbalanced ")"';
    } else if (ch === '$' && (args[i + 1] === '{' || args[i + 1] === '[')) {
      stack.push(args[i + 1] === '{' ? '}' : ']');
      i++;
    } else if (ch === '{' || ch === '[') stack.push(ch === '{' ? '}' : ']');
    else if (ch === '}' || ch === ']') {
      if (stack.pop() !== ch) return `unbalanced "${ch}"`;
    }
  }
  if (parens !== 0) return 'unbalanced "("';
  if (stack.length > 0) return `unclosed "${stack.join('')}"`;
  return undefined;
}

/** Bare labels (no comma, not a number, no variable) that Goto()/GotoIf() may jump to. */
function jumpLabels(app: string, args: string): string[] {
  const candidates: string[] = [];
  if (app === 'Goto') candidates.push(args);
  else if (app === 'GotoIf') {
    const q = args.lastIndexOf('?');
    if (q >= 0) candidates.push(...args.slice(q + 1).split(':'));
  }
  return candidates.map((c) => c.trim()).filter((c) => c !== '' && !c.includes(',') && !c.includes('$') && !/^\d+$/.test(c));
}
