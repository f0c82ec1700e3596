import { beforeEach, describe, expect, it } from 'vitest';
import { ExecutionError } from './executor.ts';
import { RecordingRunner, executionContext, failed, ok } from './test/recording-runner.ts';
import { restoreService, stopService } from './service.linux.ts';

interface FakeUnit {
  /** What `systemctl is-active` says. */
  active: string;
  /** The unit-file state while not masked. */
  file: string;
  mask: 'masked' | 'masked-runtime' | null;
  fragmentPath?: string;
  /** Something brings the unit back up as soon as it stops. */
  respawns?: boolean;
  /** `systemctl mask` is refused for it. */
  maskRefused?: boolean;
  /** The sockets, paths and timers that start it. */
  triggeredBy?: string[];
  /** The D-Bus name it is activated by. */
  busName?: string;
  /** Its start job fails. */
  failsToStart?: boolean;
  /** It starts, then exits at once. */
  diesOnStart?: boolean;
}

/** What this machine cannot host: systemd's unit states as systemctl reports and changes them. */
class FakeSystemd {
  readonly units = new Map<string, FakeUnit>();
  readonly runner = new RecordingRunner((command, args) => this.answer(command, args));

  private answer(command: string, args: readonly string[]) {
    if (command !== 'systemctl') return failed(127, `${command}: not found`);
    const [verb, ...rest] = args;
    const runtime = rest.includes('--runtime');
    const name = rest.at(-1) ?? '';
    const unit = this.units.get(name);
    switch (verb) {
      case 'is-active':
        return unit?.active === 'active' ? ok('active\n') : failed(3, '', `${unit?.active ?? 'inactive'}\n`);
      case 'is-enabled': {
        const state = unit ? (unit.mask ?? unit.file) : 'not-found';
        if (state === 'not-found') return failed(4, '', 'not-found\n');
        return ['disabled', 'masked', 'masked-runtime'].includes(state) ? failed(1, '', `${state}\n`) : ok(`${state}\n`);
      }
      case 'show': {
        const property = rest.find((arg) => arg.startsWith('--property='))?.slice('--property='.length);
        if (property === 'FragmentPath') return ok(`${unit?.fragmentPath ?? `/lib/systemd/system/${name}`}\n`);
        if (property === 'TriggeredBy') return ok(`${unit?.triggeredBy?.join(' ') ?? ''}\n`);
        if (property === 'BusName') return ok(`${unit?.busName ?? ''}\n`);
        return failed(1, `Unknown property ${property}`);
      }
      case 'stop':
        if (unit) unit.active = unit.respawns ? 'active' : 'inactive';
        return ok();
      case 'start':
        if (!unit || unit.file === 'not-found') return failed(5, `Failed to start ${name}: Unit ${name} not found.`);
        if (unit.mask) return failed(1, `Failed to start ${name}: Unit ${name} is masked.`);
        if (unit.failsToStart) return failed(1, `Job for ${name} failed because the control process exited with error code.`);
        unit.active = unit.diesOnStart ? 'failed' : 'active';
        return ok();
      case 'disable':
        if (unit?.file.startsWith('enabled')) unit.file = 'disabled';
        if (unit?.file.startsWith('linked')) unit.file = 'not-found'; // the link was the only way to the unit file
        return ok();
      case 'enable':
        if (!unit || unit.file === 'not-found') return failed(1, `Failed to enable unit: Unit file ${name} does not exist.`);
        if (unit.file === 'disabled') unit.file = runtime ? 'enabled-runtime' : 'enabled';
        return ok();
      case 'mask':
        if (!unit) return failed(1, `Failed to mask unit: Unit file ${name} does not exist.`);
        if (unit.maskRefused) return failed(1, 'Failed to mask unit: Access denied');
        unit.mask = runtime ? 'masked-runtime' : 'masked';
        return ok();
      case 'unmask':
        if (unit) unit.mask = null;
        return ok();
      case 'link': {
        const linked = [...this.units.entries()].find(([, candidate]) => candidate.fragmentPath === name);
        if (!linked) return failed(1, `Failed to link unit: No such file or directory`);
        linked[1].file = runtime ? 'linked-runtime' : 'linked';
        return ok();
      }
      default:
        return failed(1, `Unknown command verb ${verb}.`);
    }
  }
}

const stop = (systemd: FakeSystemd, name: string, parameters: Record<string, string | number | boolean> = {}) =>
  stopService(executionContext(systemd.runner, { type: 'stop_service', entity: { name }, parameters }));
const restore = (systemd: FakeSystemd, name: string, priorSnapshot: unknown) =>
  restoreService(executionContext(systemd.runner, { type: 'restore_service', entity: { name }, undoOf: 'original' }, { priorSnapshot }));

describe('stop_service and restore_service (systemd)', () => {
  let systemd: FakeSystemd;
  beforeEach(() => {
    systemd = new FakeSystemd();
  });

  it('disables, then stops a running enabled service and verifies both; restore enables and starts it again', async () => {
    systemd.units.set('evil.service', { active: 'active', file: 'enabled', mask: null });

    const result = await stop(systemd, 'evil.service');
    expect(systemd.runner.take()).toEqual([
      'systemctl is-active evil.service',
      'systemctl is-enabled evil.service',
      'systemctl show --property=TriggeredBy --value evil.service',
      'systemctl disable evil.service',
      'systemctl stop evil.service',
      'systemctl is-active evil.service',
      'systemctl is-enabled evil.service',
      'systemctl show --property=BusName --value evil.service',
    ]);
    expect(result.snapshot).toEqual({ unit: 'evil.service', active: 'active', enabled: 'enabled', masked: false, links: [], triggers: [], applied: 'disable' });
    expect(result.output).toBe('Stopped evil.service (was active, enabled; now inactive, disabled)');
    expect(systemd.units.get('evil.service')).toMatchObject({ active: 'inactive', file: 'disabled', mask: null });

    const restored = await restore(systemd, 'evil.service', result.snapshot);
    expect(systemd.runner.take()).toEqual([
      'systemctl is-active evil.service',
      'systemctl is-enabled evil.service',
      'systemctl enable evil.service',
      'systemctl start evil.service',
      'systemctl is-active evil.service',
      'systemctl is-enabled evil.service',
    ]);
    expect(restored.output).toBe('Restored evil.service: active, enabled');
    expect(systemd.units.get('evil.service')).toMatchObject({ active: 'active', file: 'enabled', mask: null });
  });

  it('with mask, masks before stopping; restore unmasks and starts, leaving the enablement it had', async () => {
    systemd.units.set('miner.service', { active: 'active', file: 'enabled', mask: null });

    const result = await stop(systemd, 'miner.service', { mask: true });
    expect(systemd.runner.take()).toEqual([
      'systemctl is-active miner.service',
      'systemctl is-enabled miner.service',
      'systemctl show --property=TriggeredBy --value miner.service',
      'systemctl show --property=FragmentPath --value miner.service',
      'systemctl mask miner.service',
      'systemctl stop miner.service',
      'systemctl is-active miner.service',
      'systemctl is-enabled miner.service',
    ]);
    expect(systemd.units.get('miner.service')).toMatchObject({ active: 'inactive', file: 'enabled', mask: 'masked' });

    await restore(systemd, 'miner.service', result.snapshot);
    expect(systemd.runner.take()).toEqual([
      'systemctl is-active miner.service',
      'systemctl is-enabled miner.service',
      'systemctl unmask miner.service',
      'systemctl is-enabled miner.service',
      'systemctl start miner.service',
      'systemctl is-active miner.service',
      'systemctl is-enabled miner.service',
    ]);
    expect(systemd.units.get('miner.service')).toMatchObject({ active: 'active', file: 'enabled', mask: null });
  });

  it('a unit that was already stopped and disabled is only stopped, and restore changes nothing', async () => {
    systemd.units.set('idle.timer', { active: 'inactive', file: 'disabled', mask: null });
    const result = await stop(systemd, 'idle.timer');
    expect(systemd.runner.take()).toEqual([
      'systemctl is-active idle.timer',
      'systemctl is-enabled idle.timer',
      'systemctl show --property=TriggeredBy --value idle.timer',
      'systemctl stop idle.timer',
      'systemctl is-active idle.timer',
      'systemctl is-enabled idle.timer',
      'systemctl show --property=BusName --value idle.timer',
    ]);
    await restore(systemd, 'idle.timer', result.snapshot);
    expect(systemd.runner.take()).toEqual([
      'systemctl is-active idle.timer',
      'systemctl is-enabled idle.timer',
      'systemctl is-active idle.timer',
      'systemctl is-enabled idle.timer',
    ]);
  });

  it('restore puts back the exact prior state even when the unit was changed since: enabled and started again by someone is disabled and stopped', async () => {
    systemd.units.set('evil.socket', { active: 'inactive', file: 'disabled', mask: null });
    const result = await stop(systemd, 'evil.socket');
    systemd.units.set('evil.socket', { active: 'active', file: 'enabled', mask: null });
    systemd.runner.take();

    await restore(systemd, 'evil.socket', result.snapshot);
    expect(systemd.runner.take()).toEqual([
      'systemctl is-active evil.socket',
      'systemctl is-enabled evil.socket',
      'systemctl disable evil.socket',
      'systemctl stop evil.socket',
      'systemctl is-active evil.socket',
      'systemctl is-enabled evil.socket',
    ]);
    expect(systemd.units.get('evil.socket')).toMatchObject({ active: 'inactive', file: 'disabled' });
  });

  it('a unit running while masked is unmasked only to start it, then masked again', async () => {
    systemd.units.set('odd.service', { active: 'active', file: 'enabled', mask: 'masked' });
    const result = await stop(systemd, 'odd.service', { mask: true });
    expect(systemd.runner.take()).toEqual([
      'systemctl is-active odd.service',
      'systemctl is-enabled odd.service',
      'systemctl show --property=TriggeredBy --value odd.service',
      'systemctl stop odd.service',
      'systemctl is-active odd.service',
      'systemctl is-enabled odd.service',
    ]);
    expect(result.snapshot).toMatchObject({ enabled: 'masked', masked: true });

    await restore(systemd, 'odd.service', result.snapshot);
    expect(systemd.runner.take()).toEqual([
      'systemctl is-active odd.service',
      'systemctl is-enabled odd.service',
      'systemctl unmask odd.service',
      'systemctl is-enabled odd.service',
      'systemctl start odd.service',
      'systemctl mask odd.service',
      'systemctl is-active odd.service',
      'systemctl is-enabled odd.service',
    ]);
    expect(systemd.units.get('odd.service')).toMatchObject({ active: 'active', mask: 'masked' });
  });

  it('a unit linked from outside the search path is unlinked by disabling it; restore links the same file again', async () => {
    systemd.units.set('backdoor.service', { active: 'active', file: 'linked', mask: null, fragmentPath: '/opt/bd/backdoor.service' });
    const result = await stop(systemd, 'backdoor.service');
    expect(systemd.runner.take()).toEqual([
      'systemctl is-active backdoor.service',
      'systemctl is-enabled backdoor.service',
      'systemctl show --property=FragmentPath --value backdoor.service',
      'systemctl show --property=TriggeredBy --value backdoor.service',
      'systemctl disable backdoor.service',
      'systemctl stop backdoor.service',
      'systemctl is-active backdoor.service',
      'systemctl is-enabled backdoor.service',
      'systemctl show --property=BusName --value backdoor.service',
    ]);
    expect(result.snapshot).toMatchObject({ enabled: 'linked', fragmentPath: '/opt/bd/backdoor.service' });

    await restore(systemd, 'backdoor.service', result.snapshot);
    expect(systemd.runner.take()).toEqual([
      'systemctl is-active backdoor.service',
      'systemctl is-enabled backdoor.service',
      'systemctl link /opt/bd/backdoor.service',
      'systemctl start backdoor.service',
      'systemctl is-active backdoor.service',
      'systemctl is-enabled backdoor.service',
    ]);
    expect(systemd.units.get('backdoor.service')).toMatchObject({ active: 'active', file: 'linked' });
  });

  it('a static unit is stopped without disabling, and the output says that other units can still start it', async () => {
    systemd.units.set('dbus-activated.service', { active: 'active', file: 'static', mask: null });
    const result = await stop(systemd, 'dbus-activated.service');
    expect(systemd.runner.take()).not.toContain('systemctl disable dbus-activated.service');
    expect(result.output).toContain('a static unit can still be started by other units; mask it');
  });

  it('a unit that comes straight back up fails verification, and its enablement is put back', async () => {
    systemd.units.set('sticky.service', { active: 'active', file: 'enabled', mask: null, respawns: true });
    const error = await stop(systemd, 'sticky.service').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect((error as Error).message).toBe('sticky.service is active after disabling and stopping it; sticky.service was put back to active, enabled');
    expect(systemd.runner.take()).toEqual([
      'systemctl is-active sticky.service',
      'systemctl is-enabled sticky.service',
      'systemctl show --property=TriggeredBy --value sticky.service',
      'systemctl disable sticky.service',
      'systemctl stop sticky.service',
      'systemctl is-active sticky.service',
      'systemctl is-enabled sticky.service',
      // the rollback
      'systemctl is-active sticky.service',
      'systemctl is-enabled sticky.service',
      'systemctl enable sticky.service',
      'systemctl is-active sticky.service',
      'systemctl is-enabled sticky.service',
    ]);
    expect(systemd.units.get('sticky.service')).toMatchObject({ active: 'active', file: 'enabled', mask: null });
  });

  it('a mask that systemctl refuses fails the action with its reason and leaves the unit as it was', async () => {
    systemd.units.set('local.service', { active: 'active', file: 'enabled', mask: null, maskRefused: true });
    await expect(stop(systemd, 'local.service', { mask: true })).rejects.toThrow(/Access denied.*put back/);
    expect(systemd.runner.take().filter((line) => !/is-(active|enabled)|show/.test(line))).toEqual(['systemctl mask local.service']);
    expect(systemd.units.get('local.service')).toMatchObject({ active: 'active', file: 'enabled', mask: null });
  });

  it('restore fails with systemctl\'s reason when the unit will not start again', async () => {
    systemd.units.set('evil.service', { active: 'active', file: 'enabled', mask: null });
    const result = await stop(systemd, 'evil.service');
    systemd.units.get('evil.service')!.failsToStart = true;
    const error = await restore(systemd, 'evil.service', result.snapshot).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect((error as Error).message).toMatch(/systemctl start evil.service failed \(1\): Job for evil.service failed/);
  });

  it('restore fails verification when the unit starts but does not stay up', async () => {
    systemd.units.set('evil.service', { active: 'active', file: 'enabled', mask: null });
    const result = await stop(systemd, 'evil.service');
    systemd.units.get('evil.service')!.diesOnStart = true;
    const error = await restore(systemd, 'evil.service', result.snapshot).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ExecutionError);
    expect((error as Error).message).toBe('evil.service is failed and enabled after restoring, not active and enabled as before the action');
  });

  it('removeUnitFile: a packaged unit, or mask asked too, is refused before any change', async () => {
    systemd.units.set('packaged.service', { active: 'active', file: 'enabled', mask: null, fragmentPath: '/usr/lib/systemd/system/packaged.service' });
    await expect(stop(systemd, 'packaged.service', { removeUnitFile: true })).rejects.toThrow(/only a file named as the unit directly in \/etc\/systemd\/system, .*mask it instead/);
    systemd.units.set('aliased.service', { active: 'active', file: 'enabled', mask: null, fragmentPath: '/etc/systemd/system/other-name.service' });
    await expect(stop(systemd, 'aliased.service', { removeUnitFile: true })).rejects.toThrow(/the unit file of aliased\.service is \/etc\/systemd\/system\/other-name\.service/);
    await expect(stop(systemd, 'packaged.service', { removeUnitFile: true, mask: true })).rejects.toThrow('give mask or removeUnitFile, not both');
    // A unit file that is a link, or not there: refused as well, before the unit is stopped.
    systemd.units.set('linked.service', { active: 'active', file: 'enabled', mask: null, fragmentPath: '/etc/systemd/system/linked.service' });
    await expect(stop(systemd, 'linked.service', { removeUnitFile: true })).rejects.toThrow(/is not a regular file reached without a symbolic link/);
    expect(systemd.units.get('linked.service')).toMatchObject({ active: 'active', file: 'enabled', mask: null });
    expect(systemd.runner.take().filter((call) => !/ (is-active|is-enabled|show) /.test(call))).toEqual([]);
    expect(systemd.units.get('packaged.service')).toMatchObject({ active: 'active', file: 'enabled', mask: null });
  });

  it('a unit that does not exist is refused after looking, before any change', async () => {
    await expect(stop(systemd, 'ghost.service')).rejects.toThrow('there is no unit ghost.service on this device');
    expect(systemd.runner.take()).toEqual(['systemctl is-active ghost.service', 'systemctl is-enabled ghost.service']);
  });

  it.each([
    'evil.service; rm -rf /', '-H.service', '--root=x.service', '../etc/evil.service', 'evil', 'evil.target',
    'evil.service\n', 'ev il.service', '$(id).service', `${'a'.repeat(250)}.service`, '',
  ])('refuses the hostile or foreign unit name %j before running anything', async (name) => {
    await expect(stop(systemd, name)).rejects.toThrow(/not a systemd service, socket, timer or path unit name/);
    await expect(restore(systemd, name, { unit: name, active: 'active', enabled: 'enabled', masked: false })).rejects.toThrow(/not a systemd service, socket, timer or path unit name/);
    expect(systemd.runner.calls).toEqual([]);
  });

  it('restore refuses, before any change, while a timer that started the service is gone: that removal is undone first', async () => {
    systemd.units.set('helper.timer', { active: 'active', file: 'enabled', mask: null });
    systemd.units.set('helper.service', { active: 'active', file: 'static', mask: null, triggeredBy: ['helper.timer'] });
    const stopped = await stop(systemd, 'helper.service');
    // Another action (remove_scheduled_task) removed the timer's unit file since.
    systemd.units.delete('helper.timer');
    const before = systemd.runner.calls.length;
    await expect(restore(systemd, 'helper.service', stopped.snapshot)).rejects.toThrow('helper.timer, which started helper.service, is gone from this device (another action removed it): undo that removal first, then this one');
    expect(systemd.runner.calls.slice(before).map(({ command, args }) => [command, ...args].join(' '))).toEqual(['systemctl is-enabled helper.timer']);
    // Once the timer is back (disabled, as its removal left it), the service's restore puts both back as they were.
    systemd.units.set('helper.timer', { active: 'inactive', file: 'disabled', mask: null });
    await restore(systemd, 'helper.service', stopped.snapshot);
    expect([systemd.units.get('helper.timer')!.active, systemd.units.get('helper.timer')!.file, systemd.units.get('helper.service')!.active]).toEqual(['active', 'enabled', 'active']);
  });

  it('restore without a snapshot, or with one for another unit, runs nothing', async () => {
    await expect(restore(systemd, 'evil.service', undefined)).rejects.toThrow('no service record');
    await expect(restore(systemd, 'evil.service', { unit: 'other.service', active: 'active', enabled: 'enabled', masked: false })).rejects.toThrow('acted on other.service');
    expect(systemd.runner.calls).toEqual([]);
  });
});
