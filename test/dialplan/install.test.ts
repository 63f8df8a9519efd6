import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { registerDialplanCommands } from '../../src/dialplan/commands.js';
import { checkDialplan, installDialplan, renderDialplan, writeDialplan, type CommandRunner } from '../../src/dialplan/render.js';
import { fixtureConfig, mutable } from './helpers.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ai-call-dialplan-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function fakeRunner(code = 0): { run: CommandRunner; calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    run: async (cmd) => {
      calls.push(cmd);
      return { code, stdout: code === 0 ? 'Dialplan reloaded.\n' : '', stderr: code === 0 ? '' : 'Unable to connect to remote asterisk\n' };
    },
  };
}

describe('writeDialplan / checkDialplan', () => {
  it('writes the three files and --check then passes', async () => {
    const dir = join(tempDir(), 'nested', 'out');
    const written = await writeDialplan(fixtureConfig(), dir);
    expect(written.map((p) => p.slice(dir.length + 1)).sort()).toEqual(['ai-call-extensions.conf', 'ai-call-manager.conf', 'ai-call-modules.conf']);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(checkDialplan(fixtureConfig(), dir)).toEqual({ ok: true, differences: [] });
  });

  it('detects a hand edit, a missing file and a config change', async () => {
    const dir = tempDir();
    await writeDialplan(fixtureConfig(), dir);
    const path = join(dir, 'ai-call-extensions.conf');
    writeFileSync(path, readFileSync(path, 'utf8').replace('agent=sales', 'agent=hacked'));
    rmSync(join(dir, 'ai-call-modules.conf'));
    const result = checkDialplan(fixtureConfig(), dir);
    expect(result.ok).toBe(false);
    expect(result.differences).toHaveLength(2);
    expect(result.differences[0]).toMatch(/ai-call-extensions\.conf: differs at line \d+: expected ".*agent=sales.*", found ".*agent=hacked.*"/);
    expect(result.differences[1]).toMatch(/ai-call-modules\.conf: missing$/);

    await writeDialplan(fixtureConfig(), dir);
    const changed = mutable(fixtureConfig());
    changed['routes'][0]['extension'] = '7100';
    expect(checkDialplan(changed as Config, dir).ok).toBe(false);
  });
});

describe('installDialplan', () => {
  it('keeps an installed ai-call-manager.conf: it holds the secret the admin typed in', async () => {
    const dir = tempDir();
    const first = await installDialplan(fixtureConfig(), dir, { reload: false });
    expect(first.written.map((p) => p.slice(dir.length + 1)).sort()).toContain('ai-call-manager.conf');
    const edited = readFileSync(join(dir, 'ai-call-manager.conf'), 'utf8').replace(/^secret = .*$/m, 'secret = the-real-secret');
    writeFileSync(join(dir, 'ai-call-manager.conf'), edited);
    const second = await installDialplan(fixtureConfig(), dir, { reload: false });
    expect(second.written.map((p) => p.slice(dir.length + 1)).sort()).toEqual(['ai-call-extensions.conf', 'ai-call-modules.conf']);
    expect(readFileSync(join(dir, 'ai-call-manager.conf'), 'utf8')).toContain('secret = the-real-secret');
    expect(second.instructions.join('\n')).toContain('kept your');
  });


  it('writes into the Asterisk directory, returns the include line and never touches extensions.conf', async () => {
    const dir = tempDir();
    const admin = '[from-internal]\nexten => 100,1,Dial(PJSIP/100)\n';
    writeFileSync(join(dir, 'extensions.conf'), admin);
    const fake = fakeRunner();
    const result = await installDialplan(fixtureConfig(), dir, { reload: false, run: fake.run });
    expect(result.includeLine).toBe('#include ai-call-extensions.conf');
    expect(result.included).toBe(false);
    expect(result.instructions[0]).toBe(`add to ${join(dir, 'extensions.conf')}: #include ai-call-extensions.conf`);
    expect(readFileSync(join(dir, 'extensions.conf'), 'utf8')).toBe(admin);
    expect(readFileSync(join(dir, 'ai-call-extensions.conf'), 'utf8')).toBe(renderDialplan(fixtureConfig()).get('ai-call-extensions.conf'));
    expect(fake.calls).toEqual([]);
    expect(result.reloaded).toBeUndefined();
  });

  it('reports an include line that is already there', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'extensions.conf'), '[general]\n#include ai-call-extensions.conf ; ai-call\n');
    expect((await installDialplan(fixtureConfig(), dir, { reload: false })).included).toBe(true);
  });

  it('with reload runs asterisk -rx "dialplan reload" through the injected runner', async () => {
    const dir = tempDir();
    const fake = fakeRunner();
    const result = await installDialplan(fixtureConfig(), dir, { reload: true, run: fake.run });
    expect(fake.calls).toEqual([['asterisk', '-rx', 'dialplan reload']]);
    expect(result.reloaded).toMatchObject({ code: 0, cmd: ['asterisk', '-rx', 'dialplan reload'] });
    expect(result.included).toBeUndefined();
  });

  it('refuses an unsafe config before writing anything', async () => {
    const dir = tempDir();
    const bad = mutable(fixtureConfig());
    bad['routes'][0]['context'] = 'x\ny';
    await expect(installDialplan(bad as Config, dir, { reload: true, run: fakeRunner().run })).rejects.toMatchObject({ code: 'DIALPLAN_UNSAFE_VALUE' });
    expect(existsSync(join(dir, 'ai-call-extensions.conf'))).toBe(false);
  });
});

describe('ai-call dialplan commands', () => {
  function cli(runner?: CommandRunner): { program: Command; out: string[]; err: string[]; exitCodes: number[] } {
    const out: string[] = [];
    const err: string[] = [];
    const exitCodes: number[] = [];
    const program = new Command('ai-call').exitOverride().configureOutput({ writeOut: (t) => out.push(t), writeErr: (t) => err.push(t) });
    registerDialplanCommands(program, {
      configOf: () => ({ config: fixtureConfig(), source: 'fixture.yaml' }),
      stdout: (t) => out.push(t),
      stderr: (t) => err.push(t),
      setExitCode: (code) => exitCodes.push(code),
      ...(runner ? { run: runner } : {}),
    });
    return { program, out, err, exitCodes };
  }

  it('generate writes, generate --check passes, then fails with the differences after an edit', async () => {
    const dir = tempDir();
    const first = cli();
    await first.program.parseAsync(['dialplan', 'generate', '--out', dir], { from: 'user' });
    expect(first.out.join('')).toContain(`wrote ${join(dir, 'ai-call-extensions.conf')}`);

    const check = cli();
    await check.program.parseAsync(['dialplan', 'generate', '--out', dir, '--check'], { from: 'user' });
    expect(check.exitCodes).toEqual([]);
    expect(check.out.join('')).toContain('up to date with fixture.yaml');

    writeFileSync(join(dir, 'ai-call-manager.conf'), 'edited\n');
    const stale = cli();
    await stale.program.parseAsync(['dialplan', 'generate', '--out', dir, '--check'], { from: 'user' });
    expect(stale.exitCodes).toEqual([1]);
    expect(stale.err.join('')).toContain('ai-call-manager.conf: differs at line 1');
  });

  it('install --reload prints the next steps and reports a failed reload with exit code 1', async () => {
    const dir = tempDir();
    const ok = cli(fakeRunner(0).run);
    await ok.program.parseAsync(['dialplan', 'install', '--asterisk-dir', dir, '--reload'], { from: 'user' });
    expect(ok.out.join('')).toContain('next: add to');
    expect(ok.out.join('')).toContain('asterisk -rx "dialplan reload": ok');
    expect(ok.exitCodes).toEqual([]);

    const failed = cli(fakeRunner(1).run);
    await failed.program.parseAsync(['dialplan', 'install', '--asterisk-dir', dir, '--reload'], { from: 'user' });
    expect(failed.err.join('')).toContain('asterisk -rx "dialplan reload" exited with 1');
    expect(failed.exitCodes).toEqual([1]);
  });

  it('install requires --asterisk-dir', async () => {
    const { program } = cli();
    await expect(program.parseAsync(['dialplan', 'install'], { from: 'user' })).rejects.toMatchObject({ code: 'commander.missingMandatoryOptionValue' });
  });

  it('prints warnings for agents without a fallback', async () => {
    const dir = tempDir();
    const run = cli();
    await run.program.parseAsync(['dialplan', 'generate', '--out', dir], { from: 'user' });
    expect(run.err.join('')).toContain('warning: agents.echo: no fallback configured');
  });
});
