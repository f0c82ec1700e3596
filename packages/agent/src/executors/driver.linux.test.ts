import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { blacklistContent, driverExecutors } from './driver.linux.ts';
import { ExecutionError, type Executor } from './executor.ts';
import { RecordingRunner, executionContext, failed, ok } from './test/recording-runner.ts';

/**
 * What this machine cannot host: loadable kernel modules. modprobe is
 * simulated, while /proc/modules and the modprobe configuration are real
 * files in a temporary directory that the executors read and write.
 */
class FakeKernel {
  readonly loaded = new Set<string>();
  /** Modules present under /lib/modules, i.e. that modprobe can load. */
  readonly available = new Set<string>();
  /** Modules other modules depend on, which `modprobe -r` refuses to remove. */
  readonly inUse = new Set<string>();
  /** Modules something loads again right after they are removed. */
  readonly reloaded = new Set<string>();
  /** The parameters each loaded module was given. */
  readonly parameters = new Map<string, string[]>();
  /** The modprobe configuration files each initramfs rebuild saw. */
  readonly initramfsBuilds: string[][] = [];
  /** Whether the initramfs tool fails. */
  initramfsFails = false;
  readonly runner = new RecordingRunner((command, args) => this.answer(command, args));

  constructor(readonly procModules: string, readonly modprobeDir: string, readonly sysModule: string, readonly initramfsTool: string) {
    this.writeProcModules();
  }

  /** A loaded module, with its parameters' values as /sys/module shows them. */
  load(module: string, parameters: Record<string, string> = {}): void {
    this.available.add(module);
    this.loaded.add(module);
    mkdirSync(join(this.sysModule, module, 'parameters'), { recursive: true });
    for (const [name, value] of Object.entries(parameters)) writeFileSync(join(this.sysModule, module, 'parameters', name), `${value}\n`);
    this.writeProcModules();
  }

  private writeProcModules(): void {
    writeFileSync(this.procModules, [...this.loaded].map((module) => `${module} 81920 0 - Live 0x0000000000000000\n`).join(''));
  }

  /** modprobe refuses to load a module that an `install NAME /bin/false` line in its configuration forbids. */
  private forbidden(module: string): boolean {
    if (!existsSync(this.modprobeDir)) return false;
    return readdirSync(this.modprobeDir).filter((file) => file.endsWith('.conf'))
      .some((file) => readFileSync(join(this.modprobeDir, file), 'utf8').split('\n').includes(`install ${module} /bin/false`));
  }

  private answer(command: string, args: readonly string[]) {
    if (command === this.initramfsTool) {
      this.initramfsBuilds.push(existsSync(this.modprobeDir) ? readdirSync(this.modprobeDir).sort() : []);
      return this.initramfsFails ? failed(1, 'update-initramfs: failed for /boot/initrd.img-6.1.0-18-amd64 with 1.') : ok();
    }
    if (command !== 'modprobe') return failed(127, `${command}: not found`);
    const remove = args[0] === '-r';
    const module = (remove ? args[1] : args[0])?.replaceAll('-', '_') ?? '';
    if (remove) {
      if (!this.loaded.has(module)) return failed(1, `modprobe: FATAL: Module ${module} is not in kernel.`);
      if (this.inUse.has(module)) return failed(1, `modprobe: FATAL: Module ${module} is in use.`);
      if (!this.reloaded.has(module)) this.loaded.delete(module);
    } else {
      if (!this.available.has(module)) return failed(1, `modprobe: FATAL: Module ${module} not found in directory /lib/modules/6.1.0-18-amd64`);
      if (this.forbidden(module)) return failed(1, `modprobe: ERROR: Error running install command '/bin/false' for module ${module}: retcode 1\nmodprobe: ERROR: could not insert '${module}': Invalid argument`);
      this.loaded.add(module);
      this.parameters.set(module, args.slice(1));
    }
    this.writeProcModules();
    return ok();
  }
}

describe('disable_driver and restore_driver (kernel modules)', () => {
  let dir: string;
  let kernel: FakeKernel;
  let disableDriver: Executor;
  let restoreDriver: Executor;
  let modprobeDir: string;
  let rebuild: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'quell-driver-'));
    modprobeDir = join(dir, 'modprobe.d');
    const initramfsTool = join(dir, 'update-initramfs');
    writeFileSync(initramfsTool, '');
    rebuild = `${initramfsTool} -u`;
    kernel = new FakeKernel(join(dir, 'modules'), modprobeDir, join(dir, 'sys-module'), initramfsTool);
    ({ disableDriver, restoreDriver } = driverExecutors({
      modprobeDir, procModules: kernel.procModules, sysModule: kernel.sysModule, initramfsTools: [[join(dir, 'dracut-absent'), '-f'], [initramfsTool, '-u']],
    }));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const disable = (name: string, actionId = 'a1') => disableDriver(executionContext(kernel.runner, { type: 'disable_driver', entity: { name }, actionId }));
  const restore = (name: string, priorSnapshot: unknown) =>
    restoreDriver(executionContext(kernel.runner, { type: 'restore_driver', entity: { name }, undoOf: 'a1' }, { priorSnapshot }));
  const blacklist = (module: string) => join(modprobeDir, `quell-blacklist-${module}.conf`);

  it('blacklists and unloads a loaded module, rebuilds the initramfs after, and verifies; restore removes the file, loads it with its parameters as they were, and rebuilds', async () => {
    kernel.load('evil_rootkit', { stealth: 'Y', ports: '22,443', banner: 'hello world', unset: '(null)' });

    const result = await disable('evil_rootkit', '0d9a1c2e-1111-4222-8333-944455556666');
    expect(kernel.runner.take()).toEqual(['modprobe -r evil_rootkit', rebuild]);
    // The initramfs was rebuilt with the blacklist in place: the module cannot load early at boot either.
    expect(kernel.initramfsBuilds).toEqual([['quell-blacklist-evil_rootkit.conf']]);
    expect(readFileSync(blacklist('evil_rootkit'), 'utf8')).toBe(
      '# Written by Quell (action 0d9a1c2e-1111-4222-8333-944455556666): restoring the driver removes this file.\n'
      + 'blacklist evil_rootkit\n'
      + 'install evil_rootkit /bin/false\n',
    );
    expect(readFileSync(kernel.procModules, 'utf8')).not.toContain('evil_rootkit');
    expect(result.snapshot).toEqual({
      module: 'evil_rootkit', loaded: true, blacklistFile: blacklist('evil_rootkit'), priorBlacklist: null,
      parameters: { banner: 'hello world', ports: '22,443', stealth: 'Y' }, parametersLeft: [],
    });
    expect(result.output).toBe(`Unloaded evil_rootkit and blacklisted it in ${blacklist('evil_rootkit')}; initramfs rebuilt (${rebuild}); its parameters kept for a restore: banner=hello world ports=22,443 stealth=Y`);

    // The blacklist holds against an explicit load.
    expect((await kernel.runner.run('modprobe', ['evil_rootkit'])).code).toBe(1);
    kernel.runner.take();

    const restored = await restore('evil_rootkit', result.snapshot);
    expect(kernel.runner.take()).toEqual(['modprobe evil_rootkit banner="hello world" ports=22,443 stealth=Y', rebuild]);
    expect(kernel.parameters.get('evil_rootkit')).toEqual(['banner="hello world"', 'ports=22,443', 'stealth=Y']);
    expect(kernel.initramfsBuilds[1]).toEqual([]);
    expect(existsSync(blacklist('evil_rootkit'))).toBe(false);
    expect(readFileSync(kernel.procModules, 'utf8')).toMatch(/^evil_rootkit /m);
    expect(restored.output).toBe(`Restored evil_rootkit: loaded again with its parameters as they were; removed ${blacklist('evil_rootkit')}; initramfs rebuilt (${rebuild})`);
  });

  it('names the parameters it cannot give back, and refuses a record whose parameters modprobe must not be given', async () => {
    kernel.load('odd', { fine: '1', quoted: 'say "hi"', control: 'a\tb' });
    const result = await disable('odd');
    expect(result.snapshot).toMatchObject({ parameters: { fine: '1' }, parametersLeft: ['control (a value modprobe cannot be given)', 'quoted (a value modprobe cannot be given)'] });
    expect(result.output).toMatch(/; parameters not kept: control \(a value modprobe cannot be given\), quoted \(a value modprobe cannot be given\)$/);
    kernel.runner.take();

    for (const parameters of [{ 'a b': '1' }, { x: 'a"b' }, { x: 1 }, { install: 'x\ny' }, 'x=1']) {
      await expect(restore('odd', { ...(result.snapshot as object), parameters })).rejects.toThrow('parameters that cannot be given to modprobe');
    }
    expect(kernel.runner.calls).toEqual([]);
  });

  it('an initramfs that cannot be rebuilt fails the action, and the module is put back as it was', async () => {
    kernel.load('evil_rootkit');
    kernel.initramfsFails = true;
    const error = await disable('evil_rootkit').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect((error as Error).message).toMatch(/^the initramfs could not be rebuilt, so the module could still load early at boot: .*update-initramfs: failed/);
    expect(kernel.loaded.has('evil_rootkit')).toBe(true);
    expect(existsSync(blacklist('evil_rootkit'))).toBe(false);
  });

  it('without an initramfs tool, says that only the root file system\'s configuration holds the blacklist', async () => {
    ({ disableDriver } = driverExecutors({ modprobeDir, procModules: kernel.procModules, sysModule: kernel.sysModule, initramfsTools: [[join(dir, 'absent'), '-u']] }));
    kernel.load('evil_rootkit');
    const result = await disable('evil_rootkit');
    expect(kernel.runner.take()).toEqual(['modprobe -r evil_rootkit']);
    expect(result.output).toBe(`Unloaded evil_rootkit and blacklisted it in ${blacklist('evil_rootkit')}; no initramfs tool found (${join(dir, 'absent')}): only the root file system's modprobe configuration holds it`);
  });

  it('spells the module as the kernel does: dashes become underscores in commands and file name', async () => {
    kernel.load('usb_storage');
    const result = await disable('usb-storage');
    expect(kernel.runner.take()).toEqual(['modprobe -r usb_storage', rebuild]);
    expect(existsSync(blacklist('usb_storage'))).toBe(true);
    await restore('usb-storage', result.snapshot);
    expect(kernel.runner.take()).toEqual(['modprobe usb_storage', rebuild]);
  });

  it('a module that is not loaded is blacklisted without a modprobe, and restore leaves it unloaded', async () => {
    kernel.available.add('firewire_core');
    const result = await disable('firewire_core');
    expect(kernel.runner.take()).toEqual([rebuild]);
    expect(result.output).toBe(`Blacklisted firewire_core (it was not loaded) in ${blacklist('firewire_core')}; initramfs rebuilt (${rebuild})`);
    await restore('firewire_core', result.snapshot);
    expect(kernel.runner.take()).toEqual([rebuild]);
    expect(existsSync(blacklist('firewire_core'))).toBe(false);
    expect(kernel.loaded.has('firewire_core')).toBe(false);
  });

  it('restore puts a blacklist file that was already there back byte for byte', async () => {
    kernel.load('bluetooth');
    mkdirSync(modprobeDir, { recursive: true });
    // An administrator's own file at that path, forbidding the load even though the module was loaded before it was written.
    const prior = Buffer.from('# local policy\r\nblacklist bluetooth\ninstall bluetooth /bin/false\n\u00e9\u0000tail', 'utf8');
    writeFileSync(blacklist('bluetooth'), prior);

    const result = await disable('bluetooth');
    expect(readFileSync(blacklist('bluetooth'), 'utf8')).toBe(blacklistContent('bluetooth', 'a1'));
    expect(result.snapshot).toMatchObject({ loaded: true, priorBlacklist: prior.toString('base64') });

    await restore('bluetooth', result.snapshot);
    expect(kernel.runner.take()).toEqual(['modprobe -r bluetooth', rebuild, 'modprobe bluetooth', rebuild]);
    expect(readFileSync(blacklist('bluetooth')).equals(prior)).toBe(true);
    expect(kernel.loaded.has('bluetooth')).toBe(true);
  });

  it('a module in use fails the action with modprobe\'s reason, and the blacklist it wrote is removed again', async () => {
    kernel.load('vboxdrv');
    kernel.inUse.add('vboxdrv');
    const error = await disable('vboxdrv').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect((error as Error).message).toBe('modprobe -r vboxdrv failed (1): modprobe: FATAL: Module vboxdrv is in use.; vboxdrv was put back as it was');
    expect(kernel.runner.take()).toEqual(['modprobe -r vboxdrv', rebuild]);
    expect(readdirSync(modprobeDir)).toEqual([]);
    expect(kernel.loaded.has('vboxdrv')).toBe(true);
  });

  it('a module that is still loaded after unloading fails verification and the prior blacklist file comes back', async () => {
    kernel.load('stubborn');
    kernel.reloaded.add('stubborn');
    mkdirSync(modprobeDir, { recursive: true });
    writeFileSync(blacklist('stubborn'), 'blacklist stubborn\n');
    await expect(disable('stubborn')).rejects.toThrow('stubborn is still loaded after unloading it; stubborn was put back as it was');
    expect(kernel.runner.take()).toEqual(['modprobe -r stubborn', rebuild]);
    expect(readFileSync(blacklist('stubborn'), 'utf8')).toBe('blacklist stubborn\n');
  });

  it('restore fails when the module cannot be loaded again, and says why', async () => {
    kernel.load('evil_rootkit');
    const result = await disable('evil_rootkit');
    writeFileSync(join(modprobeDir, 'site-policy.conf'), 'install evil_rootkit /bin/false\n');
    const error = await restore('evil_rootkit', result.snapshot).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect((error as Error).message).toMatch(/^modprobe evil_rootkit failed \(1\): modprobe: ERROR: Error running install command '\/bin\/false'/);
    expect(existsSync(blacklist('evil_rootkit'))).toBe(false);
  });

  it.each([
    'evil; rm -rf /', '-r', '--remove', '../../etc/passwd', 'a/b', 'mod name', 'mod\n', '$(reboot)', 'x'.repeat(56), '',
  ])('refuses the hostile module name %j before running or writing anything', async (name) => {
    await expect(disable(name)).rejects.toThrow(/not a kernel module name/);
    await expect(restore(name, { module: name, loaded: true, blacklistFile: '/etc/passwd', priorBlacklist: null })).rejects.toThrow(/not a kernel module name/);
    expect(kernel.runner.calls).toEqual([]);
    expect(existsSync(modprobeDir)).toBe(false);
  });

  it('restore refuses a snapshot for another module or naming another file, and runs nothing without one', async () => {
    await expect(restore('evil', undefined)).rejects.toThrow('no driver record');
    await expect(restore('evil', { module: 'other', loaded: true, blacklistFile: blacklist('other'), priorBlacklist: null })).rejects.toThrow('acted on other');
    await expect(restore('evil', { module: 'evil', loaded: false, blacklistFile: '/etc/passwd', priorBlacklist: null })).rejects.toThrow('unexpected blacklist file');
    expect(kernel.runner.calls).toEqual([]);
  });

  it('a kernel without module support is refused before anything changes', async () => {
    rmSync(kernel.procModules);
    await expect(disable('evil_rootkit')).rejects.toThrow('this kernel cannot load or unload modules');
    expect(existsSync(modprobeDir)).toBe(false);
  });
});
