import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_PROTOCOL_VERSION, type Action, type ActionType, DEVICE_OFFLINE_AFTER_MS } from '@quell/contracts';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemActor } from '@quell/server/testing';
import { enrolTestAgent, signedByAgent } from '@quell/server/testing';
import { PASSWORD, TEST_DIALECT, type TestContext, type TestUser, liveClock, setupTestApp } from '@quell/server/testing';

const require = createRequire(import.meta.url);
const CONSOLE_ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCREENSHOTS_DIR = fileURLToPath(new URL('../../../docs/screenshots/', import.meta.url));
/** `QUELL_SCREENSHOTS=1 npx vitest run packages/console` refreshes the README's screenshots. */
const TAKE_SCREENSHOTS = process.env.QUELL_SCREENSHOTS === '1';
const CHROMIUM = '/usr/bin/chromium';
const HOUR = 3_600_000;
const MALICIOUS_NAME = '<img src=x onerror=alert(1)>.exe';

describe(`web console in a real Chromium (${TEST_DIALECT})`, () => {
  let ctx: TestContext;
  let browser: BrowserContext;
  let page: Page;
  let dist: string;
  let profile: string;
  const cspViolations: string[] = [];
  const alerts: string[] = [];

  beforeAll(async () => {
    // The console as `npm run build:console` builds it, from the current sources, into a folder of this run.
    dist = mkdtempSync(join(tmpdir(), 'quell-console-'));
    execFileSync(process.execPath, [join(dirname(require.resolve('vite/package.json')), 'bin/vite.js'), 'build', CONSOLE_ROOT, '--outDir', dist, '--emptyOutDir', '--logLevel', 'warn'], {
      env: { ...process.env, NODE_ENV: 'production' },
      stdio: 'inherit',
    });
    // Real time: the console counts down to each pending action's expiry against the browser's clock.
    ctx = await setupTestApp({ clock: liveClock(), listen: { host: '127.0.0.1' }, consoleDir: dist });
    profile = mkdtempSync(join(tmpdir(), 'quell-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1440, height: 900 },
      acceptDownloads: true,
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.setDefaultTimeout(10_000);
    page.on('console', (message) => {
      if (/Content.Security.Policy/i.test(message.text())) cspViolations.push(message.text());
    });
    page.on('dialog', (dialog) => {
      alerts.push(dialog.message());
      void dialog.dismiss();
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await ctx?.close();
    for (const dir of [dist, profile]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function device(name: string): Promise<string> {
    return ctx.createDevice({ name });
  }

  async function pending(type: ActionType, entity: string, options: { deviceId?: string; sha256?: string; investigationId?: string } = {}): Promise<string> {
    return ctx.createAction({
      type,
      entity: { name: entity, ...(options.sha256 ? { sha256: options.sha256, path: `/tmp/${entity}` } : {}) },
      ...(options.deviceId ? { deviceId: options.deviceId } : {}),
      ...(options.investigationId ? { investigationId: options.investigationId } : {}),
    });
  }

  async function completed(type: ActionType, entity: string, options: { deviceId?: string; sha256?: string } = {}): Promise<string> {
    const id = await ctx.createAction({
      type, status: 'queued', source: 'antivirus',
      entity: { name: entity, ...(options.sha256 ? { sha256: options.sha256, path: `/tmp/${entity}` } : {}) },
      ...(options.deviceId ? { deviceId: options.deviceId } : {}),
    });
    await ctx.complete(id);
    return id;
  }

  async function actionOf(id: string): Promise<Action> {
    return (await ctx.request(ctx.users.security_reader, 'GET', `/api/actions/${id}`)).json().action as Action;
  }

  /** A device with an enrolled agent (it enrols over the real API with a fresh key, and counts as online for a while). */
  async function managedDevice(hostname: string, ips = ['10.20.0.7']): Promise<string> {
    const token = await ctx.request(ctx.users.security_admin, 'POST', '/api/enrolment-tokens', { name: `enrol-${hostname}`, uses: 1, expiresInDays: 1 });
    expect(token.statusCode, token.body).toBe(201);
    const { publicKey } = generateKeyPairSync('ed25519');
    const jwk = publicKey.export({ format: 'jwk' });
    const enrolled = await ctx.request(null, 'POST', '/agent/v1/enrol', {
      token: token.json().secret, publicKey: { kty: 'OKP', crv: 'Ed25519', x: jwk.x },
      facts: { hostname, platform: 'linux', os: 'Debian GNU/Linux 12', kernel: '6.1.0-28-amd64', ips, macs: ['52:54:00:12:34:56'], agentVersion: '0.1.0' },
    });
    expect(enrolled.statusCode, enrolled.body).toBe(201);
    return enrolled.json().deviceId as string;
  }

  /** The newest action of a type on a device, as the API lists it. */
  async function latestOn(deviceId: string, type: ActionType): Promise<Action> {
    const list = await ctx.request(ctx.users.security_reader, 'GET', `/api/actions?view=history&deviceId=${deviceId}&type=${type}&limit=1`);
    return list.json().items[0] as Action;
  }

  /** An investigation started by an alert with file evidence on a device of a group that asks before any remediation. */
  async function investigation(hostname: string, path: string, sha256: string): Promise<{ id: string; deviceId: string }> {
    const group = await ctx.services.devices.createGroup(ctx.users.security_admin.actor, { name: `semi-${hostname}`, rank: 10 + Math.floor(Math.random() * 1000), automationLevel: 'semi_any_folder' });
    const deviceId = await ctx.createDevice({ name: hostname, groupId: group.id });
    const alert = await ctx.request(ctx.users.security_operator, 'POST', '/api/alerts', {
      title: 'Malware detected', severity: 'high', category: 'malware', detectionSource: 'edr-rules', deviceId, occurredAt: new Date().toISOString(),
      evidence: [{ kind: 'file', path, sha256 }],
    });
    expect(alert.statusCode, alert.body).toBe(201);
    await ctx.services.investigations.runDue();
    const items = (await ctx.request(ctx.users.security_reader, 'GET', '/api/investigations')).json().items as Array<{ id: string; deviceId: string }>;
    return { id: items.find((i) => i.deviceId === deviceId)!.id, deviceId };
  }

  async function signIn(user: TestUser, path = '/action-center/pending'): Promise<void> {
    await browser.clearCookies();
    await page.goto(`${ctx.url}${path}`);
    await page.getByLabel('User name').fill(user.username);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByLabel('Signed in user').textContent()).toContain(user.username);
  }

  const row = (text: string) => page.locator('tr[data-action-id]', { hasText: text });
  /** The action flyout: the dialog with the action's timeline. */
  const drawer = () => page.getByRole('dialog').filter({ has: page.getByRole('heading', { name: 'Timeline' }) });
  /** The confirmation of a decision, which asks for a comment. */
  const confirmation = () => page.getByRole('dialog').filter({ has: page.getByLabel('Comment') });

  /** axe-core's serious and critical violations on the page as it is now. */
  async function scan(): Promise<string[]> {
    const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
    // Mid-animation (the flyout sliding in) colours are half transparent: scan what the user sees once it settles.
    await page.waitForFunction(() => document.getAnimations().every((animation) => animation.playState !== 'running'));
    // Evaluated through the DevTools protocol, not as an inline script: the page's CSP stays as strict as in use.
    await page.evaluate(axeSource);
    return page.evaluate(async () => {
      const axe = (window as unknown as { axe: { run: (context: object, options: object) => Promise<{ violations: Array<{ id: string; impact: string | null; help: string; nodes: Array<{ target: unknown[] }> }> }> } }).axe;
      // Tabster (Fluent's focus management) puts hidden focus sentinels around focus zones; they hand focus on at
      // once and are Fluent's documented design, so they are left out of the scan.
      const result = await axe.run({ exclude: [['[data-tabster-dummy]']] }, { resultTypes: ['violations'] });
      return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => JSON.stringify(n.target)).join(', ')})`);
    });
  }

  async function decide(button: string, comment: string): Promise<void> {
    const dialog = confirmation();
    await dialog.getByLabel('Comment').fill(comment);
    await dialog.getByRole('button', { name: button, exact: true }).click();
  }

  it('signs in with a password, shows the user and role, serves the page under a strict CSP, and signs out', async () => {
    const response = await page.goto(`${ctx.url}/action-center/pending`);
    const csp = response!.headers()['content-security-policy']!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toMatch(/style-src 'self' 'nonce-[A-Za-z0-9+/=]+'/);
    expect(csp).not.toContain('unsafe');

    await page.getByLabel('User name').fill(ctx.users.security_operator.username);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').or(page.getByText(/Wrong user name or password/)).first().textContent()).toContain('Wrong user name or password');

    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const header = page.getByLabel('Signed in user');
    await header.waitFor();
    expect(await header.textContent()).toBe('security-operatorSecurity Operator');
    await page.getByRole('tab', { name: /Pending/ }).waitFor();

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await page.reload();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
  });

  it('approves one pending action with a comment from the flyout, which shows the new status and the timeline', async () => {
    const deviceId = await device('web-frontend-01');
    const id = await pending('isolate_device', 'web-frontend-01', { deviceId, investigationId: 'INV-1001' });
    // A pending action past its deadline that expiry has not reached yet.
    ctx.clock.advance(-170 * HOUR);
    await pending('disable_driver', 'rootkit.ko');
    ctx.clock.advance(170 * HOUR);
    await pending('quarantine_file', 'invoice.pdf.exe', { sha256: 'cd'.repeat(32), investigationId: 'INV-1002' });
    await pending('contain_user', 'CORP\\svc-backup', { investigationId: 'INV-1002' });
    await pending('remove_scheduled_task', '/etc/cron.d/0anacron-update', { investigationId: 'INV-1003' });
    await signIn(ctx.users.security_operator);

    await row('rootkit.ko').waitFor();
    expect(await row('rootkit.ko').textContent()).toMatch(/Past due by 2h/);
    expect(await row('web-frontend-01').textContent()).toMatch(/Expires in 6d 23h/);
    if (TAKE_SCREENSHOTS) {
      mkdirSync(SCREENSHOTS_DIR, { recursive: true });
      await page.screenshot({ path: join(SCREENSHOTS_DIR, 'action-center-pending.png') });
    }

    await row('web-frontend-01').click();
    const flyout = drawer();
    await flyout.getByText('Isolate device').first().waitFor();
    await flyout.getByText('INV-1001').waitFor();
    if (TAKE_SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS_DIR, 'action-flyout.png') });
    await flyout.getByRole('button', { name: 'Approve' }).click();
    await decide('Approve', 'Confirmed lateral movement from this host');
    await flyout.getByText('Queued', { exact: true }).waitFor();
    await flyout.getByText('“Confirmed lateral movement from this host”').waitFor();
    expect(await actionOf(id)).toMatchObject({ status: 'queued', decidedBy: 'security-operator', decisionComment: 'Confirmed lateral movement from this host' });

    await flyout.getByRole('link', { name: 'Open investigation page' }).click();
    await page.getByRole('heading', { name: 'Investigation INV-1001' }).waitFor();
    // Said above every page until dismissed (behind the flyout, which is modal, it was hidden).
    await page.getByRole('status', { name: 'Decision outcome' }).getByText('Approved 1 isolate device action: queued to 1 device.').waitFor();
    await page.getByText('INV-1001 is not an investigation of Quell').waitFor();
    await page.getByRole('table', { name: 'Action history of this investigation' }).locator('tr', { hasText: 'web-frontend-01' }).waitFor();
  });

  it('rejects three actions of one type in one confirmation that lists them', async () => {
    const ids: string[] = [];
    for (const name of ['miner-a.service', 'miner-b.service', 'miner-c.service']) ids.push(await pending('stop_service', name));
    await signIn(ctx.users.security_operator);
    for (const name of ['miner-a.service', 'miner-b.service', 'miner-c.service']) await row(name).getByRole('checkbox').check();
    await page.getByRole('button', { name: 'Reject (3)' }).click();
    const dialog = confirmation();
    await dialog.getByText('Reject 3 stop service actions').waitFor();
    expect(await dialog.getByRole('listitem').allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining('miner-a.service'), expect.stringContaining('miner-b.service'), expect.stringContaining('miner-c.service')]));
    await decide('Reject', 'Known build agents, not miners');
    await expect.poll(() => row('miner-').count()).toBe(0);
    for (const id of ids) expect(await actionOf(id)).toMatchObject({ status: 'rejected', decisionComment: 'Known build agents, not miners' });
    // What the decision did stays said above the list, with a way to each action and to the History.
    const outcome = page.getByRole('status', { name: 'Decision outcome' });
    await outcome.getByText('Rejected 3 stop service actions: they will not run.').waitFor();
    await outcome.getByRole('button', { name: /^miner-b\.service on / }).click();
    await drawer().getByText('Rejected', { exact: true }).first().waitFor();
    // A rejected action never ran: there is nothing to undo, and no Undo to offer.
    expect(await drawer().getByRole('button', { name: 'Undo' }).count()).toBe(0);
    await page.keyboard.press('Escape');
    await outcome.getByRole('link', { name: 'View in History' }).click();
    await expect.poll(() => new URL(page.url()).pathname).toBe('/action-center/history');
    await row('miner-a.service').waitFor();
    await outcome.getByRole('button', { name: 'Dismiss' }).click();
    await expect.poll(() => outcome.count()).toBe(0);
  });

  it('refuses to select actions of another type, and says why', async () => {
    await pending('remove_scheduled_task', 'evil-cron');
    await pending('quarantine_file', 'dropper.bin', { sha256: 'ef'.repeat(32) });
    await signIn(ctx.users.security_operator);
    await row('evil-cron').getByRole('checkbox').check();
    const other = row('dropper.bin').getByRole('checkbox');
    expect(await other.isDisabled()).toBe(true);
    await row('dropper.bin').getByRole('checkbox').hover({ force: true });
    await page.getByRole('tooltip').filter({ hasText: 'Select actions of one type at a time' }).waitFor();
    expect(await page.getByRole('button', { name: 'Approve (1)' }).isVisible()).toBe(true);
  });

  it('undoes a completed quarantine from History; the undo shows up and Undo is then refused with the reason', async () => {
    const id = await completed('quarantine_file', 'payload.so', { sha256: '12'.repeat(32) });
    await signIn(ctx.users.security_admin, '/action-center/history');
    await row('payload.so').first().click();
    const flyout = drawer();
    await flyout.getByRole('button', { name: 'Undo' }).click();
    await decide('Undo', 'False positive: signed vendor library');
    await expect.poll(async () => (await actionOf(id)).undoneBy).not.toBeNull();
    expect(await flyout.getByRole('button', { name: 'Undo' }).getAttribute('aria-disabled')).toBe('true');
    // The request is in the timeline without a change of status it did not make; the undo action is one click away.
    const timeline = flyout.getByRole('list', { name: 'Timeline' });
    await timeline.getByText('Undo requested').waitFor();
    expect(await timeline.textContent()).not.toContain('Completed → Completed');
    const undoId = (await actionOf(id)).undoneBy!;
    await flyout.getByRole('button', { name: undoId }).click();
    await expect.poll(() => drawer().getByRole('heading').first().textContent()).toContain('Restore file');
    await flyout.getByRole('button', { name: id }).waitFor();
    // Closed, the flyout uncovers the undo in the list, and the undone action back on top with it (History sorts by last change).
    await page.keyboard.press('Escape');
    const undoRow = page.locator('tr[data-action-id]', { hasText: 'Restore file' }).filter({ hasText: 'payload.so' });
    await undoRow.waitFor();
    const ids = await page.locator('tr[data-action-id]').evaluateAll((rows) => rows.slice(0, 2).map((r) => r.getAttribute('data-action-id')));
    expect(ids.sort()).toEqual([id, undoId].sort());
  });

  it('says in the flyout where an effect was found lifted and re-applied, with the agent\'s words as text, and that it is unverified while the agent is silent', async () => {
    const deviceId = await managedDevice('tampered-01');
    await ctx.services.agents.touch([deviceId]);
    const id = await completed('isolate_device', 'tampered-01', { deviceId });
    // What the agent's signed drift reports leave (the reports themselves are tested with real agents).
    await ctx.store.db.insertInto('action_drift').values({
      action_id: id, device_id: deviceId, count: 2, first_at: ctx.clock.now() - HOUR, last_at: ctx.clock.now(), detail: '<b>the isolation rules were gone</b>', repaired: 1,
    }).execute();
    await signIn(ctx.users.security_reader, '/action-center/history');
    await row('tampered-01').first().click();
    const notes = drawer().getByLabel('Tampering', { exact: true });
    await notes.getByText(/^Re-applied after tampering at /).waitFor();
    expect(await notes.textContent()).toContain('on tampered-01 (2 times since');
    expect(await notes.textContent()).toContain('<b>the isolation rules were gone</b>');
    expect(await notes.textContent()).not.toContain('Unverified');
    await page.keyboard.press('Escape');

    // The agent falls silent: the isolation it keeps is unverified from its last contact on.
    ctx.clock.advance(DEVICE_OFFLINE_AFTER_MS + 60_000);
    await page.reload();
    await row('tampered-01').first().click();
    await drawer().getByLabel('Tampering', { exact: true }).getByText(/^Unverified since /).waitFor();
    expect(await drawer().getByLabel('Tampering', { exact: true }).textContent()).toMatch(/whether the isolation still holds is unverified since then/);
    ctx.clock.advance(-(DEVICE_OFFLINE_AFTER_MS + 60_000));
  });

  it('says on the device page that offboarding was asked, then what the agent released, kept and left in its vault', async () => {
    const deviceId = await managedDevice('leaving-01');
    expect((await ctx.request(ctx.users.security_admin, 'POST', `/api/devices/${deviceId}/offboard`, { releaseEffects: true })).statusCode).toBe(200);
    await signIn(ctx.users.security_reader, `/devices/${deviceId}`);
    await page.getByLabel('Offboarding').getByText(/^Offboarding asked at /).waitFor();
    // What the agent's signed report leaves (the report itself is tested with a real agent).
    await ctx.store.db.updateTable('agents').set({
      revoked_at: ctx.clock.now(),
      offboard_report: JSON.stringify({ released: ['isolation (action x)'], kept: [], failures: ['<i>containment</i>: nft failed'], vault: { files: 2, instructions: '/var/lib/quell-agent/vault/README.txt' } }),
    }).where('device_id', '=', deviceId).execute();
    await page.reload();
    const done = page.getByLabel('Offboarded');
    await done.getByText(/^Offboarded at /).waitFor();
    const text = await done.textContent();
    expect(text).toContain('Released: isolation (action x)');
    expect(text).toContain('Could not release: <i>containment</i>: nft failed');
    expect(text).toContain("2 quarantined files are left in the agent's vault; instructions in /var/lib/quell-agent/vault/README.txt.");
    expect(await page.getByLabel('Offboarding').count()).toBe(0);
  });

  it('undoes two completed actions of one type in one confirmation', async () => {
    const ids = [await completed('stop_service', 'legit-a.service'), await completed('stop_service', 'legit-b.service')];
    await signIn(ctx.users.security_operator, '/action-center/history');
    for (const id of ids) await page.locator(`tr[data-action-id="${id}"]`).getByRole('checkbox').check();
    await page.getByRole('button', { name: 'Undo (2)' }).click();
    await confirmation().getByText('Undo 2 stop service actions').waitFor();
    await confirmation().getByText('Each gets a restore service action').waitFor();
    await decide('Undo', 'Services are needed');
    await page.getByRole('status', { name: 'Decision outcome' }).getByText('Undo of 2 stop service actions requested: 2 undo actions queued to 2 devices.').waitFor();
    await expect.poll(async () => (await Promise.all(ids.map(actionOf))).every((a) => a.undoneBy !== null)).toBe(true);
    await expect.poll(() => page.locator('tr[data-action-id]', { hasText: 'Restore service' }).count()).toBe(2);
  });

  it('applies an undo to every other instance of the same quarantined file', async () => {
    const sha256 = '34'.repeat(32);
    const ids: string[] = [];
    for (const host of ['fin-01', 'fin-02', 'fin-03']) ids.push(await completed('quarantine_file', 'report-tool.exe', { sha256, deviceId: await device(host) }));
    await signIn(ctx.users.security_admin, '/action-center/history');
    await row('fin-01').filter({ hasText: 'report-tool.exe' }).click();
    await drawer().getByRole('button', { name: 'Apply to 2 more instances of this file' }).click();
    const dialog = confirmation();
    expect(await dialog.getByRole('listitem').count()).toBe(3);
    await decide('Undo', 'Approved finance tool');
    await expect.poll(async () => (await Promise.all(ids.map(actionOf))).every((a) => a.undoneBy !== null)).toBe(true);
  });

  it('filters History through the URL and exports the same view as CSV', async () => {
    for (const name of ['persist-1', 'persist-2']) {
      const id = await pending('remove_registry_key', name, { deviceId: await ctx.createDevice({ platform: 'windows', name: `win-${name}` }) });
      await ctx.request(ctx.users.security_operator, 'POST', '/api/actions/reject', { ids: [id], comment: 'keep' });
    }
    await signIn(ctx.users.security_operator, '/action-center/history');
    await page.getByLabel('Action type').selectOption({ label: 'Remove registry key' });
    await page.getByLabel('Status').selectOption({ label: 'Rejected, expired included' });
    await expect.poll(() => new URL(page.url()).search).toBe('?type=remove_registry_key&status=rejected');
    await expect.poll(() => page.locator('tr[data-action-id]').count()).toBe(2);
    await page.reload();
    await expect.poll(() => page.locator('tr[data-action-id]').count()).toBe(2);
    expect(await page.getByLabel('Action type').inputValue()).toBe('remove_registry_key');

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Export CSV' }).click()]);
    const csv = readFileSync((await download.path())!, 'utf8').trim().split('\r\n');
    expect(csv[0]).toMatch(/^id,type,status,/);
    expect(csv.slice(1).map((line) => line.split(',').slice(1, 3).join(','))).toEqual(['remove_registry_key,rejected', 'remove_registry_key,rejected']);
  });

  it('counts an expired action as rejected: History\'s Rejected filter finds it, and it says Expired (rejected)', async () => {
    const deviceId = await device('expiry-box');
    const rejected = await pending('stop_service', 'cups.service', { deviceId });
    await ctx.request(ctx.users.security_operator, 'POST', '/api/actions/reject', { ids: [rejected], comment: 'needed here' });
    const expired = await pending('stop_service', 'avahi-daemon.service', { deviceId });
    // Its deadline passes with no decision (as if a week went by), and the expiry job runs.
    await ctx.store.db.updateTable('actions').set({ expires_at: Date.now() - 1000 }).where('id', '=', expired).execute();
    await ctx.services.actions.expireDue(systemActor());
    expect((await actionOf(expired)).status).toBe('expired');
    await signIn(ctx.users.security_operator, `/action-center/history?deviceId=${deviceId}`);
    await page.getByLabel('Status').selectOption({ label: 'Rejected, expired included' });
    await expect.poll(() => new URL(page.url()).searchParams.get('status')).toBe('rejected');
    await expect.poll(() => page.locator('tr[data-action-id]').count()).toBe(2);
    await row('avahi-daemon.service').getByText('Expired (rejected)').waitFor();
    await row('cups.service').getByText('Rejected', { exact: true }).waitFor();
  });

  it('pages History with the API cursors, sorts by date and lets the user choose columns', async () => {
    const deviceId = await device('batch-host');
    for (let i = 0; i < 30; i++) await ctx.createAction({ type: 'run_antivirus_scan', status: 'queued', source: 'manual', deviceId, entity: { name: `scan-${i}` } });
    await signIn(ctx.users.security_operator, `/action-center/history?deviceId=${deviceId}&limit=25`);
    const rows = page.locator('tr[data-action-id]');
    await expect.poll(() => rows.count()).toBe(25);
    await page.getByText('1–25 of 30').waitFor();
    expect(await rows.first().textContent()).toContain('scan-29');
    await page.getByRole('button', { name: 'Next page' }).click();
    await page.getByText('26–30 of 30').waitFor();
    expect(await rows.count()).toBe(5);
    await page.getByRole('button', { name: 'Previous page' }).click();
    await page.getByText('1–25 of 30').waitFor();

    // History sorts by last change, newest first; its header turns the order round.
    expect(await page.getByRole('columnheader', { name: 'Last change' }).getAttribute('aria-sort')).toBe('descending');
    await page.getByRole('columnheader', { name: 'Last change' }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get('order')).toBe('asc');
    await expect.poll(() => rows.first().textContent()).toContain('scan-0');

    await page.getByRole('button', { name: 'Columns' }).click();
    await page.getByRole('menuitemcheckbox', { name: 'Comment' }).click();
    await page.keyboard.press('Escape');
    await expect.poll(() => page.getByRole('columnheader', { name: 'Comment' }).count()).toBe(0);
    await page.reload();
    await rows.first().waitFor();
    expect(await page.getByRole('columnheader', { name: 'Comment' }).count()).toBe(0);
    await page.getByRole('button', { name: 'Columns' }).click();
    await page.getByRole('menuitemcheckbox', { name: 'Comment' }).click();
    await page.keyboard.press('Escape');
  });

  it('shows a Security Reader no action buttons, and says why', async () => {
    const jdoe = await pending('contain_user', 'jdoe');
    const done = await completed('stop_service', 'backdoor.service');
    await signIn(ctx.users.security_reader);
    await page.locator(`tr[data-action-id="${jdoe}"]`).waitFor();
    expect(await page.getByRole('checkbox').count()).toBe(0);
    await page.getByText('Your role, Security Reader, can view actions but not approve or reject them').first().waitFor();
    await page.locator(`tr[data-action-id="${jdoe}"]`).click();
    const flyout = drawer();
    await flyout.getByText('Contain user').first().waitFor();
    expect(await flyout.getByRole('button', { name: /^(Approve|Reject|Undo)$/ }).count()).toBe(0);
    await page.keyboard.press('Escape');

    await page.goto(`${ctx.url}/action-center/history`);
    await page.locator(`tr[data-action-id="${done}"]`).click();
    await drawer().getByText('backdoor.service').first().waitFor();
    expect(await drawer().getByRole('button', { name: /Undo|Apply to/ }).count()).toBe(0);
  });

  it('explains a 409 when someone else decided while the flyout was open, and refreshes to the truth', async () => {
    const id = await pending('restrict_code_execution', 'kiosk-07', { deviceId: await device('kiosk-07') });
    await signIn(ctx.users.security_operator);
    await row('kiosk-07').click();
    const flyout = drawer();
    await flyout.getByRole('button', { name: 'Reject' }).waitFor();
    expect((await ctx.request(ctx.users.security_admin, 'POST', '/api/actions/approve', { ids: [id], comment: 'needed now' })).statusCode).toBe(200);

    await flyout.getByRole('button', { name: 'Reject' }).click();
    await decide('Reject', 'Not needed');
    const alert = page.getByRole('alert').filter({ hasText: 'no longer pending' });
    await alert.waitFor();
    expect(await alert.textContent()).toContain('Already approved by security-admin (now queued).');
    await confirmation().getByRole('button', { name: 'Close', exact: true }).click();
    await flyout.getByText('Queued', { exact: true }).waitFor();
    await page.keyboard.press('Escape');
    await expect.poll(() => row('kiosk-07').count()).toBe(0);
  });

  it('renders a malicious file name as text', async () => {
    await pending('quarantine_file', MALICIOUS_NAME, { sha256: '56'.repeat(32) });
    await signIn(ctx.users.security_operator);
    await page.getByText(MALICIOUS_NAME, { exact: true }).first().waitFor();
    await row(MALICIOUS_NAME).click();
    await drawer().getByText(MALICIOUS_NAME, { exact: true }).first().waitFor();
    expect(await page.locator('img').count()).toBe(0);
    expect(alerts).toEqual([]);
    await page.keyboard.press('Escape');
  });

  it('opens the flyout from the keyboard: Tab to a row, Enter opens it with focus inside, Escape closes it', async () => {
    await signIn(ctx.users.security_operator);
    await row('kiosk').or(row('evil-cron')).first().waitFor();
    let onRow = false;
    for (let i = 0; i < 80 && !onRow; i++) {
      await page.keyboard.press('Tab');
      onRow = await page.evaluate(() => document.activeElement?.hasAttribute('data-action-id') ?? false);
    }
    expect(onRow).toBe(true);
    await page.keyboard.press('Enter');
    const flyout = drawer();
    await flyout.waitFor();
    await expect.poll(() => flyout.evaluate((el) => el.contains(document.activeElement))).toBe(true);
    await page.keyboard.press('Escape');
    await flyout.waitFor({ state: 'hidden' });
    await expect.poll(() => page.evaluate(() => document.activeElement?.hasAttribute('data-action-id'))).toBe(true);
  });

  it('lists one line per row with per-tab columns, ids cut to their telling part and the filters on one line; approves a page of 50 in four steps', async () => {
    const deviceId = await device('dense-host');
    const investigationId = '0190f0a4-5e1c-7000-8000-00000000abcd';
    const longName = `${'a-very-long-file-name-'.repeat(10)}dropper.bin`;
    // Older than the 50 below: it is on the second page, of another type.
    await pending('stop_service', 'older.service', { deviceId });
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      ids.push(await pending('quarantine_file', i === 49 ? longName : `bulk-${i}.bin`, { deviceId, investigationId, sha256: (0xd000 + i).toString(16).padStart(64, 'e') }));
    }
    await signIn(ctx.users.security_operator, `/action-center/pending?deviceId=${deviceId}`);
    const rows = page.locator('tr[data-action-id]');
    await expect.poll(() => rows.count()).toBe(50);

    const headers = await page.getByRole('columnheader').allTextContents();
    expect(headers).toEqual(expect.arrayContaining(['Investigation', 'Action type', 'Entity', 'Asset', 'Source', 'Status', 'Requested', 'Comment']));
    expect(headers).not.toContain('Decided by');
    expect(headers).not.toContain('Action ID');
    // One line a row, however long the name: cut with an ellipsis; the whole path in its title.
    const heights = await rows.evaluateAll((trs) => trs.map((tr) => tr.getBoundingClientRect().height));
    expect(Math.max(...heights)).toBeLessThan(45);
    const clipped = row('dropper.bin').locator(`span[title="/tmp/${longName}"]`);
    expect(await clipped.evaluate((el) => el.scrollWidth > el.clientWidth)).toBe(true);
    // Time-ordered ids share their start: the column shows their end, and links to the investigation.
    const investigation = row('bulk-3.bin').getByRole('link', { name: '…0000abcd' });
    expect(await investigation.getAttribute('href')).toBe(`/investigations/${investigationId}`);
    // The filters take one line; the rarer ones are behind More filters (open here, since Device is one of them).
    const search = page.getByRole('search', { name: 'Filters' });
    const tops = await search.locator('> div').first().locator('> *').evaluateAll((els) => els.map((el) => Math.round(el.getBoundingClientRect().bottom)));
    expect(new Set(tops).size).toBe(1);
    await search.getByRole('button', { name: 'Fewer filters' }).click();
    expect(await search.getByLabel('Device').count()).toBe(0);
    await search.getByRole('button', { name: 'More filters (1)' }).waitFor();

    // Select the page, Approve, a comment, confirm: four steps for fifty actions.
    const steps: Array<() => Promise<void>> = [
      () => page.getByRole('checkbox', { name: 'Select all quarantine file actions on this page' }).check(),
      () => page.getByRole('button', { name: 'Approve (50)' }).click(),
      () => confirmation().getByLabel('Comment').fill('Dropper campaign, confirmed'),
      () => confirmation().getByRole('button', { name: 'Approve', exact: true }).click(),
    ];
    for (const step of steps) await step();
    expect(steps.length).toBeLessThanOrEqual(4);
    await page.getByRole('status', { name: 'Decision outcome' }).getByText('Approved 50 quarantine file actions: queued to 1 device.').waitFor();
    await expect.poll(() => rows.count()).toBe(1);
    if (TAKE_SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS_DIR, 'action-center-decision.png') });
    for (const id of ids) expect((await actionOf(id)).status).toBe('queued');

    // On a page of several types, selecting all takes the first type's rows and says what it left out.
    await pending('stop_service', 'newer.service', { deviceId });
    await pending('contain_user', 'dense-user', { deviceId });
    await page.reload();
    await expect.poll(() => rows.count()).toBe(3);
    await page.getByRole('checkbox', { name: 'Select all contain user actions on this page' }).check();
    await page.getByRole('button', { name: 'Approve (1)' }).waitFor();
    await page.getByText('2 rows were left out: a decision covers actions of one type.').waitFor();

    await page.goto(`${ctx.url}/action-center/history?deviceId=${deviceId}`);
    await rows.first().waitFor();
    expect(await page.getByRole('columnheader').allTextContents()).toEqual(expect.arrayContaining(['Decided by', 'Requested', 'Decided', 'Last change']));
    expect(await row('bulk-3.bin').textContent()).toContain('security-operator');
  });

  it('works the queue from the keyboard alone: skip link, j/k, select, approve, reject, the shortcut list, search and undo, back to the list after each dialog', async () => {
    const deviceId = await device('keys-host');
    const [a, b, c] = [await pending('stop_service', 'keys-a.service', { deviceId }), await pending('stop_service', 'keys-b.service', { deviceId }), await pending('stop_service', 'keys-c.service', { deviceId })];
    const done = await completed('quarantine_file', 'keys-undo.bin', { deviceId, sha256: 'a7'.repeat(32) });
    const focused = () => page.evaluate(() => document.activeElement?.getAttribute('data-action-id') ?? document.activeElement?.textContent ?? null);
    await signIn(ctx.users.security_admin, `/action-center/pending?deviceId=${deviceId}`);
    await row('keys-a.service').waitFor();

    await page.keyboard.press('Tab');
    expect(await focused()).toBe('Skip to the list');
    await page.keyboard.press('Enter');
    expect(await focused()).toBe(c);
    await page.keyboard.press('j');
    expect(await focused()).toBe(b);
    await page.keyboard.press('x');
    await page.getByRole('button', { name: 'Approve (1)' }).waitFor();
    await page.keyboard.press('k');
    expect(await focused()).toBe(c);
    // a approves the selection (b), not the row the keyboard is on.
    await page.keyboard.press('a');
    const dialog = confirmation();
    await dialog.getByText('Approve 1 stop service action').waitFor();
    expect(await dialog.getByRole('listitem').allTextContents()).toEqual([expect.stringContaining('keys-b.service')]);
    await expect.poll(() => dialog.getByLabel('Comment').evaluate((el) => el === document.activeElement)).toBe(true);
    await page.keyboard.type('Approved from the keyboard');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await expect.poll(async () => (await actionOf(b)).status).toBe('queued');
    await expect.poll(() => row('keys-b.service').count()).toBe(0);
    await expect.poll(focused).toBe(c);

    // r with nothing selected rejects the row; Escape cancels, and the keyboard is back on the row.
    await page.keyboard.press('j');
    expect(await focused()).toBe(a);
    await page.keyboard.press('r');
    await confirmation().getByText('Reject 1 stop service action').waitFor();
    await page.keyboard.press('Escape');
    await confirmation().waitFor({ state: 'hidden' });
    await expect.poll(focused).toBe(a);
    await page.keyboard.press('r');
    await page.keyboard.type('Not needed');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await expect.poll(async () => (await actionOf(a)).status).toBe('rejected');
    // Its row left the list: the keyboard lands on the row that took its place.
    await expect.poll(focused).toBe(c);

    await page.keyboard.press('?');
    const help = page.getByRole('dialog', { name: 'Keyboard shortcuts' });
    await help.getByRole('cell', { name: 'Approve the selection, or the row' }).waitFor();
    await page.keyboard.press('Escape');
    await help.waitFor({ state: 'hidden' });
    await expect.poll(focused).toBe(c);
    await page.keyboard.press('/');
    await page.keyboard.type('keys-c');
    await page.keyboard.press('Enter');
    await expect.poll(() => new URL(page.url()).searchParams.get('entity')).toBe('keys-c');

    await page.goto(`${ctx.url}/action-center/history?deviceId=${deviceId}&type=quarantine_file`);
    await row('keys-undo.bin').waitFor();
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    expect(await focused()).toBe(done);
    await page.keyboard.press('u');
    await confirmation().getByText('Undo 1 quarantine file action').waitFor();
    await page.keyboard.type('Vendor file');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await expect.poll(async () => (await actionOf(done)).undoneBy).not.toBeNull();
    await expect.poll(() => page.evaluate(() => document.activeElement?.hasAttribute('data-action-id'))).toBe(true);
    // u again on the same action (once the dialog has gone: while it leaves, it keeps the focus): refused, and the reason said.
    await confirmation().waitFor({ state: 'detached' });
    await page.locator(`tr[data-action-id="${done}"]`).focus();
    await page.keyboard.press('u');
    await page.getByRole('status').filter({ hasText: 'An undo of this action exists already.' }).waitFor();
    expect(await confirmation().count()).toBe(0);
  });

  it('has no serious or critical accessibility violations in the Action center and the flyout (axe-core)', async () => {
    await pending('quarantine_file', 'axe-sample.exe', { sha256: '78'.repeat(32) });
    await completed('stop_service', 'axe-sample.service');
    await signIn(ctx.users.security_operator);
    await page.locator('tr[data-action-id]').first().waitFor();
    expect(await scan()).toEqual([]);
    await page.goto(`${ctx.url}/action-center/history`);
    await page.locator('tr[data-action-id]').first().waitFor();
    expect(await scan()).toEqual([]);
    await page.locator('tr[data-action-id]').first().click();
    await drawer().getByText('Timeline').waitFor();
    expect(await scan()).toEqual([]);
  });

  it('follows the system into dark mode, with no serious accessibility violation in it; a user\'s own choice is kept for them', async () => {
    await pending('quarantine_file', 'dark-sample.exe', { sha256: '79'.repeat(32) });
    /** Whether the page's background is dark: its colour's mean channel below the middle. */
    const darkPage = async (): Promise<boolean> => {
      const colour = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      const channels = /rgba?\((\d+), (\d+), (\d+)/.exec(colour)!.slice(1).map(Number);
      return channels.reduce((sum, value) => sum + value, 0) / 3 < 128;
    };
    await page.emulateMedia({ colorScheme: 'dark' });
    try {
      await signIn(ctx.users.security_operator);
      await row('dark-sample.exe').waitFor();
      expect(await darkPage()).toBe(true);
      expect(await scan()).toEqual([]);
      if (TAKE_SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS_DIR, 'action-center-dark.png') });
      await row('dark-sample.exe').click();
      await drawer().getByText('Timeline').waitFor();
      expect(await scan()).toEqual([]);
      await page.keyboard.press('Escape');

      await page.getByRole('button', { name: 'Theme: as the system (dark)' }).click();
      await page.getByRole('menuitemradio', { name: 'Light' }).click();
      await expect.poll(darkPage).toBe(false);
      await page.reload();
      await row('dark-sample.exe').waitFor();
      expect(await darkPage()).toBe(false);
      // Another user on this browser has the system's theme until they choose.
      await signIn(ctx.users.security_reader);
      await expect.poll(darkPage).toBe(true);
      await signIn(ctx.users.security_operator);
      await page.getByRole('button', { name: 'Theme: light' }).click();
      await page.getByRole('menuitemradio', { name: 'As the system' }).click();
      await expect.poll(darkPage).toBe(true);
    } finally {
      await page.emulateMedia({ colorScheme: 'light' });
    }
  });

  it('Go hunt opens the device page filtered to the entity', async () => {
    const deviceId = await device('db-server-02');
    await pending('stop_service', 'sshd-backdoor.service', { deviceId });
    await pending('remove_scheduled_task', 'cron-miner', { deviceId });
    await signIn(ctx.users.security_operator);
    await row('sshd-backdoor.service').click();
    await drawer().getByRole('link', { name: 'Go hunt' }).click();
    await page.getByRole('heading', { name: 'db-server-02' }).waitFor();
    await page.getByText('Showing the actions on').waitFor();
    expect(new URL(page.url()).searchParams.get('entity')).toBe('sshd-backdoor.service');
    const table = page.getByRole('table', { name: 'Pending actions on this device' });
    await table.locator('tr', { hasText: 'sshd-backdoor.service' }).waitFor();
    expect(await table.locator('tr', { hasText: 'cron-miner' }).count()).toBe(0);
    if (TAKE_SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS_DIR, 'device-page.png'), fullPage: true });
  });

  it('device page shows health and state, and a manual scan’s result arrives without a reload', async () => {
    const deviceId = await managedDevice('ws-finance-07');
    await signIn(ctx.users.security_operator, '/devices');
    await page.getByRole('table', { name: 'Devices' }).locator('tr', { hasText: 'ws-finance-07' }).getByText('Online').waitFor();
    await page.getByRole('link', { name: 'ws-finance-07' }).click();
    await page.getByRole('heading', { name: 'ws-finance-07' }).waitFor();
    const facts = page.getByLabel('Device facts');
    await facts.getByText('Online').waitFor();
    await facts.getByText('Not isolated').waitFor();
    await facts.getByText('Debian GNU/Linux 12 (6.1.0-28-amd64)').waitFor();
    await facts.getByText('10.20.0.7').waitFor();

    await page.getByRole('button', { name: 'Run antivirus scan' }).click();
    const dialog = confirmation();
    await dialog.getByLabel('Full scan: every local file').check();
    await dialog.getByLabel('Comment').fill('Suspicious outbound traffic');
    await dialog.getByRole('button', { name: 'Run antivirus scan' }).click();
    const progress = page.getByRole('status', { name: 'Run antivirus scan: ws-finance-07' });
    await progress.getByText('Queued', { exact: true }).waitFor();
    const scanAction = await latestOn(deviceId, 'run_antivirus_scan');
    expect(scanAction).toMatchObject({ status: 'queued', source: 'manual', parameters: { scan: 'full' }, requestedBy: 'security-operator', comment: 'Suspicious outbound traffic' });
    await ctx.complete(scanAction.id);
    await progress.getByText('Completed', { exact: true }).waitFor();
    expect(await progress.getByLabel('Result').textContent()).toBe('done');
    await progress.getByRole('button', { name: 'Details of Run antivirus scan: ws-finance-07' }).click();
    await drawer().getByText(scanAction.id).waitFor();
    await page.keyboard.press('Escape');
    await drawer().waitFor({ state: 'hidden' });
    await page.getByRole('table', { name: 'Action history of this device' }).locator('tr', { hasText: 'Run antivirus scan' }).getByText('Completed').waitFor();
    if (TAKE_SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS_DIR, 'device-page-manual-action.png'), fullPage: true });

    // Selective isolation, then its state on the page, then the release (the undo) and the state back.
    await page.getByRole('button', { name: 'Isolate device' }).click();
    await confirmation().getByLabel('Selective: also allow these addresses').check();
    await confirmation().getByLabel('Allowed addresses').fill('10.0.0.53, 10.0.0.10');
    await confirmation().getByLabel('Comment').fill('Contain while we look');
    await confirmation().getByRole('button', { name: 'Isolate device' }).click();
    await page.getByRole('status', { name: 'Isolate device: ws-finance-07' }).waitFor();
    const isolation = await latestOn(deviceId, 'isolate_device');
    expect(isolation.parameters).toEqual({ isolation: 'selective', allow: ['10.0.0.53', '10.0.0.10'] });
    await ctx.complete(isolation.id);
    await facts.getByText(/^Isolated since/).waitFor();
    await page.getByRole('button', { name: 'Release from isolation' }).click();
    await decide('Release from isolation', 'Clean');
    await page.getByRole('status', { name: 'Release from isolation: ws-finance-07' }).waitFor();
    await expect.poll(async () => (await actionOf(isolation.id)).undoneBy).not.toBeNull();
    await ctx.complete((await actionOf(isolation.id)).undoneBy!);
    await facts.getByText('Not isolated').waitFor();

    // A collection offers its package once completed.
    await page.getByRole('button', { name: 'Collect investigation package' }).click();
    await decide('Collect investigation package', 'Forensics');
    const collect = page.getByRole('status', { name: 'Collect investigation package: ws-finance-07' });
    await collect.waitFor();
    await ctx.complete((await latestOn(deviceId, 'collect_investigation_package')).id);
    const download = collect.getByRole('link', { name: 'Download investigation package' });
    await download.waitFor();
    expect(await download.getAttribute('href')).toMatch(/^\/api\/actions\/[0-9a-f-]{36}\/package$/);
    expect(await scan()).toEqual([]);
  });

  it('contains an unmanaged device by address and shows what the agents enforced', async () => {
    const deviceId = await device('printer-3f');
    await signIn(ctx.users.security_operator, `/devices/${deviceId}`);
    await page.getByLabel('Device facts').getByText('Unmanaged').waitFor();
    expect(await page.getByRole('button', { name: 'Isolate device' }).count()).toBe(0);
    await page.getByRole('button', { name: 'Contain device' }).click();
    const dialog = confirmation();
    await dialog.getByLabel('IP address').fill('10.9.8.7');
    // As Windows prints it: the form and the server take it, and it is stored in one spelling.
    await dialog.getByLabel('MAC address (optional)').fill('52-54-00-AA-BB-CC');
    await dialog.getByLabel('Comment').fill('Rogue printer');
    await dialog.getByRole('button', { name: 'Contain device' }).click();
    const progress = page.getByRole('status', { name: 'Contain device: 10.9.8.7' });
    await progress.getByLabel('Enforcement').getByText(/Enforced by \d+ agents?/).waitFor();
    await page.getByLabel('Device facts').getByText('10.9.8.7 (being enforced)').waitFor();
    expect(await latestOn(deviceId, 'contain_device')).toMatchObject({ entity: { name: '10.9.8.7' }, parameters: { mac: '52:54:00:aa:bb:cc' }, source: 'manual' });
  });

  it('shows a Security Reader no response buttons on a device page, and says why', async () => {
    const deviceId = await managedDevice('ws-reader-view');
    await signIn(ctx.users.security_reader, `/devices/${deviceId}`);
    await page.getByText('Your role, Security Reader, can view this device but not act on it.').waitFor();
    expect(await page.getByRole('group', { name: 'Response actions on this device' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /Isolate|Contain|Run antivirus|Start investigation/ }).count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Settings' }).count()).toBe(0);
  });

  it('searches History by entity (name or path contains, any case, or exact SHA-256) and keeps it in the URL', async () => {
    const deviceId = await device('search-host');
    await completed('quarantine_file', 'Alpha-Dropper.bin', { deviceId, sha256: 'a1'.repeat(32) });
    await completed('quarantine_file', 'beta-tool.bin', { deviceId, sha256: 'b2'.repeat(32) });
    await signIn(ctx.users.security_operator, `/action-center/history?deviceId=${deviceId}`);
    await expect.poll(() => page.locator('tr[data-action-id]').count()).toBe(2);
    await page.getByLabel('Entity', { exact: true }).fill('alpha-drop');
    await page.getByLabel('Entity', { exact: true }).press('Enter');
    await expect.poll(() => new URL(page.url()).searchParams.get('entity')).toBe('alpha-drop');
    await expect.poll(() => page.locator('tr[data-action-id]').count()).toBe(1);
    expect(await row('Alpha-Dropper.bin').count()).toBe(1);
    await page.goto(`${ctx.url}/action-center/history?deviceId=${deviceId}&entity=${'b2'.repeat(32)}`);
    await row('beta-tool.bin').waitFor();
    expect(await page.locator('tr[data-action-id]').count()).toBe(1);
    expect(await page.getByLabel('Entity', { exact: true }).inputValue()).toBe('b2'.repeat(32));
  });

  it('shows an investigation: summary, evidence with verdicts, log, and approves its pending action right there', async () => {
    const sha256 = 'c3'.repeat(32);
    const { id } = await investigation('ws-legal-02', '/home/ana/Downloads/invoice.pdf.exe', sha256);
    await signIn(ctx.users.security_operator, '/investigations');
    await page.getByRole('table', { name: 'Investigations' }).locator('tr', { hasText: 'ws-legal-02' }).getByText('Pending action').waitFor();
    await page.getByRole('link', { name: 'ws-legal-02' }).click();
    await page.getByRole('heading', { name: 'Investigation on ws-legal-02' }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/investigations/${id}`);
    const summary = page.getByLabel('Investigation summary');
    await summary.getByText('Waiting for analysts').waitFor();
    await summary.getByText('Working time').waitFor();
    const evidence = page.getByRole('table', { name: 'Devices and evidence' });
    const file = evidence.locator('tr', { hasText: '/home/ana/Downloads/invoice.pdf.exe' });
    await file.getByText('Malicious').waitFor();
    await file.getByText('Pending approval').waitFor();
    expect(await file.textContent()).toContain(sha256);
    // The facts the verdict weighed, each in its own line.
    expect(await file.getByRole('list', { name: 'Facts weighed' }).getByRole('listitem').allTextContents()).toEqual(expect.arrayContaining(['in a temp or download folder', 'named by a high-severity alert']));
    if (TAKE_SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS_DIR, 'investigation-page.png'), fullPage: true });
    await page.getByRole('tab', { name: /Alerts/ }).click();
    await page.getByRole('table', { name: 'Alerts' }).getByText('Malware detected').waitFor();
    await page.getByRole('tab', { name: 'Log' }).click();
    await page.getByRole('table', { name: 'Investigation log' }).getByText('collect', { exact: true }).waitFor();
    await page.getByRole('tab', { name: /Pending actions/ }).click();
    const pendingTable = page.getByRole('table', { name: 'Pending actions of this investigation' });
    await pendingTable.locator('tr', { hasText: 'invoice.pdf.exe' }).waitFor();
    expect(await scan()).toEqual([]);
    await pendingTable.getByRole('button', { name: /^Approve/ }).click();
    await decide('Approve', 'Confirmed malware');
    await page.getByText('No action of this investigation waits for approval.').waitFor();
    const detail = (await ctx.request(ctx.users.security_reader, 'GET', `/api/investigations/${id}`)).json();
    expect(detail.actions[0]).toMatchObject({ status: 'queued', decidedBy: 'security-operator', decisionComment: 'Confirmed malware' });

    // The flyout's "Open investigation page" leads here for an investigation of Quell.
    await page.goto(`${ctx.url}/action-center/history?investigationId=${id}`);
    await row('invoice.pdf.exe').click();
    await drawer().getByRole('link', { name: 'Open investigation page' }).click();
    await page.getByRole('heading', { name: 'Investigation on ws-legal-02' }).waitFor();
  });

  it('shows on an investigation\'s summary what went wrong on its way: an agent whose evidence was not a report', async () => {
    const agent = await enrolTestAgent(ctx, 'ws-garbled-03');
    const group = await ctx.services.devices.createGroup(ctx.users.security_admin.actor, { name: 'semi-garbled', rank: 2000, automationLevel: 'semi_any_folder' });
    await ctx.request(ctx.users.security_admin, 'PATCH', `/api/devices/${agent.deviceId}`, { groupId: group.id });
    await ctx.request(ctx.users.security_operator, 'POST', '/api/alerts', {
      title: 'Malware detected', severity: 'high', category: 'malware', detectionSource: 'edr-rules', deviceId: agent.deviceId, occurredAt: new Date().toISOString(),
      evidence: [{ kind: 'file', path: '/tmp/.font-unix/kthreadd', sha256: '3e'.repeat(32) }],
    });
    for (let attempt = 0; attempt < 3; attempt++) {
      await ctx.services.investigations.runDue();
      const asked = await latestOn(agent.deviceId, 'collect_evidence');
      await ctx.services.agents.result(agent.deviceId, signedByAgent(agent.key, { v: AGENT_PROTOCOL_VERSION, deviceId: agent.deviceId, actionId: asked.id, outcome: 'completed', output: '<b>not</b> evidence', iat: 0 }));
      ctx.clock.advance(1_500);
    }
    await ctx.services.investigations.runDue();
    await signIn(ctx.users.security_operator, '/investigations');
    await page.getByRole('table', { name: 'Investigations' }).locator('tr', { hasText: 'ws-garbled-03' }).getByRole('cell', { name: '3', exact: true }).waitFor();
    await page.getByRole('link', { name: 'ws-garbled-03' }).click();
    const problems = page.getByLabel('Investigation summary').getByRole('list', { name: 'Problems of this investigation' });
    await expect.poll(() => problems.getByRole('listitem').count()).toBe(3);
    expect(await problems.getByRole('listitem').first().textContent()).toMatch(/^evidence, .*: The agent's answer is not a valid collect evidence report: it is not JSON/);
    expect(await page.locator('dd b').count()).toBe(0);
    expect(await scan()).toEqual([]);
  });

  it('says on a failed investigation\'s page why it failed, and retries it from the step it could not get past', async () => {
    const { id } = await investigation('ws-failing-09', '/tmp/stage9', '9f'.repeat(32));
    // Its alert's evidence becomes unreadable while it gathers the files again: the step fails three times, and so does the investigation.
    const { db } = ctx.store;
    const { alert_id: alertId } = await db.selectFrom('investigation_alerts').select('alert_id').where('investigation_id', '=', id).executeTakeFirstOrThrow();
    const { evidence } = await db.selectFrom('alerts').select('evidence').where('id', '=', alertId).executeTakeFirstOrThrow();
    await db.updateTable('alerts').set({ evidence: 'not json' }).where('id', '=', alertId).execute();
    await db.updateTable('investigations').set({ step: 'collect', run_after: ctx.clock.now() }).where('id', '=', id).execute();
    for (const pause of [0, 5_000, 10_000]) {
      ctx.clock.advance(pause);
      await ctx.services.investigations.runDue();
    }
    ctx.clock.advance(-15_000);
    expect((await ctx.request(ctx.users.security_reader, 'GET', `/api/investigations/${id}`)).json().investigation.status).toBe('failed');
    await db.updateTable('alerts').set({ evidence }).where('id', '=', alertId).execute();

    await signIn(ctx.users.security_operator, `/investigations/${id}`);
    const why = page.getByLabel('Why it failed');
    expect(await why.textContent()).toMatch(/Failed: the collect step could not run 3 times: /);
    await why.getByRole('button', { name: 'Retry' }).click();
    await decide('Retry', 'Evidence readable again');
    await why.waitFor({ state: 'detached' });
    await page.getByLabel('Investigation summary').getByText('Running').first().waitFor();
    expect((await ctx.request(ctx.users.security_reader, 'GET', `/api/investigations/${id}`)).json().investigation).toMatchObject({ status: 'running', conclusion: null });
  });

  it('terminates an investigation, cancelling its pending actions', async () => {
    const { id } = await investigation('ws-hr-05', '/tmp/.cache/updater', 'd4'.repeat(32));
    await signIn(ctx.users.security_operator, `/investigations/${id}`);
    await page.getByRole('heading', { name: 'Investigation on ws-hr-05' }).waitFor();
    await page.getByRole('button', { name: 'Terminate' }).click();
    await decide('Terminate', 'Known test file');
    await page.getByLabel('Investigation summary').getByText('Terminated by user').waitFor();
    await page.getByLabel('Investigation summary').getByText(/^Terminated by .+: Known test file$/).waitFor();
    expect(await page.getByRole('button', { name: 'Terminate' }).count()).toBe(0);
    const detail = (await ctx.request(ctx.users.security_reader, 'GET', `/api/investigations/${id}`)).json();
    expect(detail.investigation.status).toBe('terminated_by_user');
    expect(detail.actions.map((a: Action) => a.status)).toEqual(['cancelled']);
  });

  it('starts an investigation from the device page', async () => {
    const deviceId = await managedDevice('ws-start-01');
    await signIn(ctx.users.security_operator, `/devices/${deviceId}`);
    await page.getByRole('button', { name: 'Start investigation' }).click();
    await page.getByRole('heading', { name: 'Investigation on ws-start-01' }).waitFor();
    expect(new URL(page.url()).pathname).toMatch(/^\/investigations\/[0-9a-f-]{36}$/);
  });

  it('shows an incident: its alerts, devices, evidence and investigations, approves in Evidence and response, and resolves it', async () => {
    const sha256 = 'e5'.repeat(32);
    const { deviceId } = await investigation('ws-sales-07', '/tmp/.x/<b>dropper</b>', sha256);
    const incidentId = (await ctx.request(ctx.users.security_reader, 'GET', `/api/alerts?deviceId=${deviceId}`)).json().items[0].incidentId as string;
    await signIn(ctx.users.security_operator, '/incidents');
    await page.getByRole('table', { name: 'Incidents' }).locator(`tr[data-incident-id="${incidentId}"]`).getByRole('link', { name: 'Malware detected on ws-sales-07' }).click();
    await page.getByRole('heading', { name: 'Malware detected on ws-sales-07' }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/incidents/${incidentId}`);
    await page.getByLabel('Incident summary').getByText('Active').waitFor();
    const pendingTable = page.getByRole('table', { name: 'Pending actions of this incident' });
    // Attacker-chosen text shows as text: no <b> element is made of it. (The file's name is what follows its path's last slash: `b>`.)
    await pendingTable.locator('tr[data-action-id]').locator('span[title="/tmp/.x/<b>dropper</b>"]').waitFor();
    expect(await page.locator('td b').count()).toBe(0);
    expect(await scan()).toEqual([]);
    if (TAKE_SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS_DIR, 'incident-page.png'), fullPage: true });
    // The action's flyout says where it came from, each a link: its incident, and the alert that started its investigation.
    await pendingTable.locator('tr[data-action-id]').first().click();
    expect(await drawer().getByRole('link', { name: incidentId }).getAttribute('href')).toBe(`/incidents/${incidentId}`);
    await drawer().getByRole('link', { name: 'Malware detected' }).click();
    await expect.poll(() => new URL(page.url()).pathname).toBe('/alerts');
    const details = page.getByLabel('Alert details');
    await details.getByText('edr-rules').waitFor();
    // The alert links back to the investigation it started, and to that investigation's actions.
    const investigationLink = details.getByRole('link', { name: /^ws-sales-07, / });
    const investigationPath = await investigationLink.getAttribute('href');
    expect(investigationPath).toMatch(/^\/investigations\/[0-9a-f-]{36}$/);
    await details.getByRole('link', { name: 'its actions' }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get('investigationId')).toBe(investigationPath!.split('/').pop());
    await page.goto(`${ctx.url}/incidents/${incidentId}`);
    // One pending table for the whole incident, each row naming its investigation, with the bulk decisions of the Action center.
    const investigationId = (await ctx.request(ctx.users.security_reader, 'GET', `/api/actions?view=pending&incidentId=${incidentId}`)).json().items[0].investigationId as string;
    expect(await pendingTable.getByRole('link', { name: `…${investigationId.slice(-8)}` }).getAttribute('href')).toBe(`/investigations/${investigationId}`);
    // And the verdict it remediates, its reason on hover.
    expect(await pendingTable.getByRole('columnheader').allTextContents()).toContain('Verdict');
    expect(await pendingTable.locator('tr[data-action-id]').first().textContent()).toMatch(/Malicious|Suspicious/);
    await pendingTable.getByRole('checkbox', { name: /^Select all / }).check();
    await page.getByRole('button', { name: /^Approve \(\d+\)$/ }).click();
    await decide('Approve', 'Same dropper as IR-9');
    await page.getByText('No action waits for approval.').waitFor();
    const history = page.getByRole('table', { name: 'Action history of this incident' });
    await history.locator('tr[data-action-id]', { has: page.locator('span[title="/tmp/.x/<b>dropper</b>"]') }).getByText('Queued').waitFor();
    expect(await page.getByRole('table', { name: /^Action history/ }).count()).toBe(1);

    await page.getByRole('tab', { name: 'Alerts' }).click();
    await page.getByRole('table', { name: 'Alerts of this incident' }).getByText('Malware detected').waitFor();
    await page.getByRole('tab', { name: 'Evidence', exact: true }).click();
    await page.getByRole('table', { name: 'Evidence of this incident' }).locator('tr', { hasText: sha256 }).getByText('ws-sales-07').waitFor();
    await page.getByRole('tab', { name: 'Investigations' }).click();
    await page.getByRole('table', { name: 'Investigations of this incident' }).getByRole('link', { name: 'ws-sales-07' }).waitFor();
    await page.getByRole('button', { name: 'Resolve' }).click();
    await page.getByRole('button', { name: 'Reopen' }).waitFor();
    expect((await ctx.request(ctx.users.security_reader, 'GET', `/api/incidents/${incidentId}`)).json().incident.status).toBe('resolved');
  });

  it('asks before following an investigation to ten or more devices, and follows them once approved', async () => {
    const sha256 = 'f6'.repeat(32);
    const group = await ctx.services.devices.createGroup(ctx.users.security_admin.actor, { name: 'fleet (semi)', rank: 5000, automationLevel: 'semi_any_folder' });
    for (let i = 0; i < 10; i++) {
      const other = await ctx.createDevice({ name: `kiosk-${i}`, groupId: group.id });
      await ctx.request(ctx.users.security_operator, 'POST', '/api/alerts', {
        title: 'File seen', severity: 'informational', category: 'inventory', detectionSource: 'edr-rules', deviceId: other, occurredAt: new Date().toISOString(),
        evidence: [{ kind: 'file', path: `/tmp/kiosk-${i}/loader`, sha256 }],
      });
    }
    const { id } = await investigation('ws-kiosk-hub', '/tmp/loader', sha256);
    await signIn(ctx.users.security_operator, `/investigations/${id}`);
    await page.getByText(/^The same files are on 10 other devices/).waitFor();
    await page.getByRole('button', { name: 'Follow them' }).click();
    await decide('Follow them', 'Same campaign');
    await page.getByText(/^The same files are on 10 other devices/).waitFor({ state: 'detached' });
    await ctx.services.investigations.runDue();
    const detail = (await ctx.request(ctx.users.security_reader, 'GET', `/api/investigations/${id}`)).json();
    expect(detail.actions.filter((a: Action) => a.status === 'pending_approval')).toHaveLength(11);
  });

  it('verifies the audit chain and says it is intact; names targets and folds repeated sign-ins', async () => {
    await signIn(ctx.users.security_admin, '/audit');
    await signIn(ctx.users.security_admin, '/audit');
    await page.getByRole('table', { name: 'Audit entries' }).locator('tr', { hasText: 'action.create' }).first().waitFor();
    await page.getByRole('button', { name: 'Verify chain' }).click();
    await page.getByText(/^The chain is intact: [\d,]+ entries checked/).waitFor();
    expect(await scan()).toEqual([]);
    await page.getByLabel('Kind').fill('investigation.terminate');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(() => new URL(page.url()).searchParams.get('kind')).toBe('investigation.terminate');
    const entries = page.getByRole('table', { name: 'Audit entries' });
    await expect.poll(() => entries.locator('tbody tr').count()).toBe(1);
    // The target by its name, linked to its page; the id on hover.
    expect(await entries.getByRole('link', { name: /^Investigation on ws-hr-05 \(…[0-9a-f]{8}\)$/ }).getAttribute('href')).toMatch(/^\/investigations\/[0-9a-f-]{36}$/);

    // One user's sign-ins from one address, one after another, are one line until unfolded.
    await page.getByLabel('Actor').fill('security-admin');
    await page.getByLabel('Kind').fill('auth.login');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await entries.getByRole('button', { name: 'Show each' }).waitFor();
    expect(await entries.locator('tbody tr').count()).toBe(1);
    const times = Number(/×(\d+)/.exec((await entries.locator('tbody tr').first().textContent()) ?? '')?.[1]);
    expect(times).toBeGreaterThan(1);
    await entries.getByRole('button', { name: 'Show each' }).click();
    await expect.poll(() => entries.locator('tbody tr').count()).toBe(times);
  });

  it('saves a settings change (pending expiry), shows an API token’s secret once and adds a device group', async () => {
    await signIn(ctx.users.security_admin, '/settings?tab=policy');
    const expiry = page.getByLabel('Pending expiry (hours)');
    await expect.poll(() => expiry.inputValue()).toBe('168');
    await expiry.fill('48');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByText('Settings saved.').waitFor();
    expect((await ctx.request(ctx.users.security_admin, 'GET', '/api/settings')).json().pendingExpiryHours).toBe(48);
    await ctx.request(ctx.users.security_admin, 'PATCH', '/api/settings', { pendingExpiryHours: 168 });

    await page.getByRole('tab', { name: 'API tokens' }).click();
    await page.getByLabel('Token name').fill('soar-playbooks');
    await page.getByRole('button', { name: 'Create token' }).click();
    await expect.poll(() => page.getByLabel('Secret').textContent()).toMatch(/^qt_/);
    expect(await scan()).toEqual([]);
    await page.getByRole('table', { name: 'API tokens' }).locator('tr', { hasText: 'soar-playbooks' }).waitFor();

    await page.getByRole('tab', { name: 'Device groups' }).click();
    await page.getByLabel('Group name').fill('Kiosks');
    await page.getByLabel('Rank').fill('5000');
    await page.getByLabel('Automation level').selectOption('full');
    await page.getByRole('button', { name: 'Add group' }).click();
    await page.getByRole('table', { name: 'Device groups' }).locator('tr', { hasText: 'Kiosks' }).getByText('Full: remediate threats automatically').waitFor();

    await page.getByRole('tab', { name: 'Enrolment tokens' }).click();
    await page.getByLabel('Enrolment token name').fill('branch-office');
    await page.getByRole('button', { name: 'Create enrolment token' }).click();
    await page.getByText(/^qe_/).first().waitFor();
    const enrolment = page.getByRole('table', { name: 'Enrolment tokens' }).locator('tr', { hasText: 'branch-office' });
    await enrolment.getByRole('button', { name: 'Revoke enrolment token branch-office' }).click();
    await enrolment.getByText(/^Revoked /).waitFor();
  });

  it('lists devices with isolation, code restriction, contained users and pending actions, sorted by any of them', async () => {
    const isolatedId = await device('list-isolated');
    await ctx.complete(await ctx.createAction({ type: 'isolate_device', status: 'queued', deviceId: isolatedId, entity: { name: 'list-isolated' } }));
    const busyId = await device('list-busy');
    await pending('stop_service', 'busy-a.service', { deviceId: busyId });
    await pending('stop_service', 'busy-b.service', { deviceId: busyId });
    await ctx.complete(await ctx.createAction({ type: 'contain_user', status: 'queued', deviceId: busyId, entity: { name: 'mallory' } }));
    await signIn(ctx.users.security_operator, '/devices?q=list-');
    const table = page.getByRole('table', { name: 'Devices' });
    const rowOf = (id: string) => table.locator(`tr[data-device-id="${id}"]`);
    const firstId = () => table.locator('tr[data-device-id]').first().getAttribute('data-device-id');
    await rowOf(isolatedId).getByText('Isolated', { exact: true }).waitFor();
    expect(await rowOf(busyId).getByText('Isolated', { exact: true }).count()).toBe(0);
    expect(await rowOf(busyId).getByRole('cell').nth(5).getAttribute('title')).toBe('mallory');
    expect(await rowOf(busyId).getByRole('link', { name: '2', exact: true }).getAttribute('href')).toBe(`/action-center/pending?deviceId=${busyId}`);

    const pendingHeader = page.getByRole('columnheader', { name: 'Pending actions' });
    await pendingHeader.click();
    await expect.poll(() => new URL(page.url()).search).toBe('?q=list-&sort=pending&order=asc');
    await expect.poll(firstId).toBe(isolatedId);
    await pendingHeader.click();
    await expect.poll(() => new URL(page.url()).search).toBe('?q=list-&sort=pending&order=desc');
    await expect.poll(firstId).toBe(busyId);
    expect(await pendingHeader.getAttribute('aria-sort')).toBe('descending');
    await page.getByRole('columnheader', { name: 'Isolation' }).click();
    await expect.poll(firstId).toBe(busyId);
    await page.getByRole('columnheader', { name: 'Isolation' }).click();
    await expect.poll(firstId).toBe(isolatedId);
    expect(await scan()).toEqual([]);
  });

  it('shows the Automated investigation & response card on Home, and says when approved actions wait for devices out of contact', async () => {
    const unreachable = await device('home-unreachable');
    await ctx.createAction({ type: 'run_antivirus_scan', status: 'queued', deviceId: unreachable, entity: { name: 'home-unreachable' } });
    await signIn(ctx.users.security_operator, '/');
    const card = page.getByRole('region', { name: 'Automated investigation & response' });
    await card.getByText(/actions? waits? for approval/).waitFor();
    const waiting = card.getByLabel('Waiting for devices');
    expect(await waiting.textContent()).toMatch(/^\d+ queued actions? waits? for (a device|\d+ devices) out of contact .*they run when the agents come back\./);
    expect(await waiting.getByRole('link', { name: 'See the devices' }).getAttribute('href')).toBe('/devices?sort=health');
    // The device page says the same of its own queued actions.
    await page.goto(`${ctx.url}/devices/${unreachable}`);
    expect(await page.getByLabel('Waiting for the device').textContent()).toBe('1 queued action waits for this device, which has no agent enrolled: nothing can carry it out until one is.');
    await page.goto(`${ctx.url}/`);
    await card.getByRole('list', { name: 'Pending actions by type' }).waitFor();
    await page.getByRole('img', { name: /^Actions in the last 30 days by status/ }).waitFor();
    expect(await scan()).toEqual([]);
    await card.getByRole('link', { name: 'Open the Pending tab' }).click();
    await page.getByRole('tab', { name: /Pending/ }).waitFor();
  });

  /** Sends an alert through the API as a detection source would. */
  async function sendAlert(deviceId: string, title: string, severity: 'informational' | 'low' | 'medium' | 'high', evidence: unknown[]): Promise<string> {
    const response = await ctx.request(ctx.users.security_operator, 'POST', '/api/alerts', {
      title, severity, category: 'malware', detectionSource: 'edr-rules', deviceId, occurredAt: new Date().toISOString(), evidence,
    });
    expect(response.statusCode, response.body).toBe(201);
    return response.json().id as string;
  }
  const alertRow = (id: string) => page.locator(`tr[data-alert-id="${id}"]`);
  /** The alert panel: the dialog with the alert's evidence. */
  const alertPanel = () => page.getByRole('dialog').filter({ has: page.getByRole('heading', { name: 'Evidence' }) });
  const alertOf = async (id: string) => (await ctx.request(ctx.users.security_reader, 'GET', `/api/alerts/${id}`)).json();

  it('shows a Wazuh alert with its rule, MITRE ATT&CK ids, where the engine saw it and VirusTotal detections', async () => {
    const response = await ctx.request(ctx.users.security_operator, 'POST', '/api/alerts/wazuh', {
      id: '1668706225.104492', timestamp: '2022-11-17T19:30:25.085+0200',
      rule: { level: 12, id: '87105', description: 'VirusTotal: Alert - /media/user/software/eicar.com - 66 engines detected this file', groups: ['virustotal'],
        mitre: { id: ['T1203'], tactic: ['Execution'], technique: ['Exploitation for Client Execution'] } },
      agent: { id: '010', name: 'ws-wazuh-01', ip: '10.0.2.15' }, manager: { name: 'wazuh-manager' }, location: 'virustotal',
      data: { virustotal: { found: '1', malicious: '1', positives: '66', total: '68',
        source: { file: '/media/user/software/eicar.com', md5: '44d88612fea8a8f36de82e1278abb02f', sha1: '3395856ce81f2b7382dee72602f798b642f14140' } } },
    });
    expect(response.statusCode, response.body).toBe(201);
    const id = response.json().id as string;
    await signIn(ctx.users.security_reader, '/alerts');
    await alertRow(id).getByRole('cell').first().click();
    const details = alertPanel().getByLabel('Alert details');
    await details.getByText('T1203, Execution', { exact: true }).waitFor();
    await details.getByText('87105', { exact: true }).waitFor();
    await details.getByText('ws-wazuh-01 · agent 010 · 10.0.2.15 · virustotal', { exact: true }).waitFor();
    await alertPanel().getByRole('table', { name: 'Evidence' }).getByText('66 of 68 (virustotal)', { exact: true }).waitFor();
    expect(await scan()).toEqual([]);
  });

  it('lists alerts with status and severity filters in the URL, opens the alert panel with its evidence, and triages with a comment', async () => {
    const deviceId = await device('ws-alerts-01');
    const high = await sendAlert(deviceId, 'Credential dumping tool', 'high', [
      { kind: 'file', path: '/tmp/<b>mimi</b>.elf', sha256: '9a'.repeat(32) },
      { kind: 'process', name: 'mimi', commandLine: 'mimi --dump "lsass" && curl http://x', pid: 4242 },
      { kind: 'user', name: 'ana<script>', domain: 'CORP' },
    ]);
    const low = await sendAlert(deviceId, 'Port scan', 'low', [{ kind: 'ip', address: '10.1.2.3' }]);
    const xss = await sendAlert(deviceId, '<img src=x onerror=alert(1)>', 'medium', []);
    await signIn(ctx.users.security_operator, '/alerts');
    await alertRow(xss).waitFor();
    // Newest first.
    const ids = await page.locator('tr[data-alert-id]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-alert-id')));
    expect(ids.slice(0, 3)).toEqual([xss, low, high]);
    // Attacker-chosen text shows as text: no element is made of it, no script ran.
    await alertRow(xss).getByText('<img src=x onerror=alert(1)>', { exact: true }).waitFor();
    expect(await page.locator('main img').count()).toBe(0);
    expect(await alertRow(high).getByRole('link', { name: 'ws-alerts-01' }).getAttribute('href')).toBe(`/devices/${deviceId}`);
    expect(await scan()).toEqual([]);

    await page.getByLabel('Severity').selectOption('high');
    await expect.poll(() => new URL(page.url()).search).toBe('?severity=high');
    await expect.poll(() => alertRow(low).count()).toBe(0);
    await alertRow(high).waitFor();
    await page.getByLabel('Status', { exact: true }).selectOption('resolved');
    await expect.poll(() => new URL(page.url()).search).toBe('?status=resolved&severity=high');
    await expect.poll(() => alertRow(high).count()).toBe(0);
    await page.reload();
    expect(await page.getByLabel('Status', { exact: true }).inputValue()).toBe('resolved');
    await page.getByRole('button', { name: 'Clear filters' }).click();
    await alertRow(low).waitFor();

    await alertRow(high).getByRole('cell').first().click();
    const panel = alertPanel();
    await panel.getByText('Credential dumping tool').first().waitFor();
    const evidence = panel.getByRole('table', { name: 'Evidence' });
    await evidence.getByText('/tmp/<b>mimi</b>.elf', { exact: true }).waitFor();
    await evidence.getByText('mimi --dump "lsass" && curl http://x', { exact: true }).waitFor();
    await evidence.getByText('ana<script>', { exact: true }).waitFor();
    await evidence.getByText('9a'.repeat(32)).waitFor();
    expect(await panel.locator('b, script').count()).toBe(0);
    await panel.getByLabel('Alert details').getByText('edr-rules').waitFor();
    expect(await scan()).toEqual([]);
    if (TAKE_SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS_DIR, 'alerts-panel.png') });

    await panel.getByLabel('Alert status').selectOption('in_progress');
    await panel.getByLabel('Determination').selectOption('malware');
    await panel.getByRole('button', { name: 'Update alert' }).click();
    await confirmation().getByText('Status: New → In progress; Determination: not set → Malware.').waitFor();
    await decide('Update alert', 'Looking into it');
    await confirmation().waitFor({ state: 'detached' });
    expect(await alertOf(high)).toMatchObject({ status: 'in_progress', determination: 'malware', updatedBy: 'security-operator' });
    await alertRow(high).getByText('In progress').waitFor();
    await page.keyboard.press('Escape');
  });

  /** A device of a fully automated group, an alert with a file under /tmp, and the quarantine its investigation completed. */
  async function quarantinedByAlert(hostname: string, sha256: string): Promise<{ alertId: string; actionId: string }> {
    const group = await ctx.services.devices.createGroup(ctx.users.security_admin.actor, { name: `full-${hostname}`, rank: 2000 + Math.floor(Math.random() * 1000), automationLevel: 'full' });
    const deviceId = await ctx.createDevice({ name: hostname, groupId: group.id });
    const alertId = await sendAlert(deviceId, `Dropper on ${hostname}`, 'high', [{ kind: 'file', path: `/tmp/${hostname}/updater`, sha256 }]);
    await ctx.services.investigations.runDue();
    const investigations = (await ctx.request(ctx.users.security_reader, 'GET', '/api/investigations')).json().items as Array<{ id: string; deviceId: string }>;
    const detail = (await ctx.request(ctx.users.security_reader, 'GET', `/api/investigations/${investigations.find((i) => i.deviceId === deviceId)!.id}`)).json();
    const actionId = (detail.actions as Action[])[0]!.id;
    expect((await actionOf(actionId)).status).toBe('queued');
    await ctx.complete(actionId);
    return { alertId, actionId };
  }

  async function classifyAsFalsePositive(alertId: string, comment: string): Promise<void> {
    await page.goto(`${ctx.url}/alerts?severity=high`);
    await alertRow(alertId).getByRole('cell').first().click();
    await alertPanel().getByRole('button', { name: 'Classify as false positive' }).click();
    const dialog = confirmation();
    await dialog.getByRole('radio', { name: /^Undo every instance/ }).check();
    expect(await dialog.getByRole('radio', { name: /^Yes: allow its files from now on/ }).isChecked()).toBe(true);
    await dialog.getByText(/every other completed quarantine of the same files on any device/).waitFor();
    await dialog.getByText(/gets an allow indicator/).waitFor();
    await decide('Classify as false positive', comment);
  }

  it('refuses a Security Operator the false-positive flow that undoes quarantines, says why, and changes nothing', async () => {
    const sha256 = '9b'.repeat(32);
    const { alertId, actionId } = await quarantinedByAlert('ws-fp-operator', sha256);
    await signIn(ctx.users.security_operator, '/alerts?severity=high');
    await classifyAsFalsePositive(alertId, 'Our build tool');
    const refusal = confirmation().getByRole('alert');
    await refusal.waitFor();
    expect(await refusal.textContent()).toBe('Not allowed: Undoing quarantine file needs the Security Administrator role or higher. Nothing was changed: the alert, its actions and the indicators are as they were.');
    expect(await alertOf(alertId)).toMatchObject({ status: 'new', classification: null });
    expect((await actionOf(actionId)).undoneBy).toBeNull();
    expect((await ctx.request(ctx.users.security_reader, 'GET', `/api/indicators?type=sha256&value=${sha256}`)).json().items).toEqual([]);
    await confirmation().getByRole('button', { name: 'Cancel' }).click();
  });

  it('classifies an alert as a false positive as Security Administrator: resolved, every instance undone, the file allowed, said in words', async () => {
    const sha256 = '9c'.repeat(32);
    const { alertId, actionId } = await quarantinedByAlert('ws-fp-admin', sha256);
    await signIn(ctx.users.security_admin, '/alerts?severity=high');
    await classifyAsFalsePositive(alertId, 'Signed in-house updater');
    const outcome = alertPanel().getByRole('status', { name: 'False positive outcome' });
    await outcome.getByText('Alert resolved as a false positive.').waitFor();
    await outcome.getByText(/^1 undo action created: Restore file of .* on ws-fp-admin \(queued\)$/).waitFor();
    await outcome.getByText(`1 allow indicator: SHA256 ${sha256}`).waitFor();
    expect(await alertOf(alertId)).toMatchObject({ status: 'resolved', classification: 'false_positive', updatedBy: 'security-admin' });
    const undo = await actionOf((await actionOf(actionId)).undoneBy!);
    expect(undo).toMatchObject({ type: 'restore_file', status: 'queued' });
    const allow = (await ctx.request(ctx.users.security_reader, 'GET', `/api/indicators?type=sha256&value=${sha256}`)).json().items;
    expect(allow).toEqual([expect.objectContaining({ action: 'allow', active: true })]);
    await alertPanel().getByRole('button', { name: 'Close', exact: true }).click();
    await alertPanel().waitFor({ state: 'hidden' });
    // Said again once the panel is closed, with a way to the undo it made.
    const said = page.getByRole('status', { name: 'Decision outcome' });
    await said.getByText('resolved as a false positive: 1 undo action queued, 1 allow indicator.', { exact: false }).waitFor();
    await said.getByRole('button', { name: / on ws-fp-admin$/ }).click();
    await expect.poll(() => drawer().getByRole('heading').first().textContent()).toContain('Restore file');
    expect(await drawer().getByRole('button', { name: actionId }).count()).toBe(1);
    await page.keyboard.press('Escape');
  });

  const indicatorRow = (text: string) => page.getByRole('table', { name: 'Indicators' }).locator('tr', { hasText: text });

  async function importCsv(name: string, csv: string): Promise<void> {
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.getByRole('button', { name: 'Import CSV' }).click()]);
    await chooser.setFiles({ name, mimeType: 'text/csv', buffer: Buffer.from(csv) });
  }

  it('creates, imports (a bad line named, then a good file), exports and expires indicators', async () => {
    await signIn(ctx.users.security_admin, '/indicators');
    await page.getByRole('heading', { name: 'Indicators' }).waitFor();
    expect(await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href')).toBe('/api/indicators/export.csv');

    await page.getByLabel('Indicator type').selectOption('sha256');
    await page.getByLabel('Value').fill('9D'.repeat(32));
    await page.getByLabel('Indicator action').selectOption('block');
    await page.getByLabel('Title').fill('Known ransomware loader');
    await page.getByRole('button', { name: 'Add indicator' }).click();
    await indicatorRow('9d'.repeat(32)).getByText('Known ransomware loader').waitFor();
    await indicatorRow('9d'.repeat(32)).getByText('Block', { exact: true }).waitFor();

    await importCsv('bad.csv', 'type,value,action,title\r\ndomain,evil.example,block,C2 domain\r\nip,10.66.0.1,nuke,Scanner\r\n');
    const result = page.getByRole('status', { name: 'Import result' });
    await result.getByText(/Line 3: action must be one of/).waitFor();
    expect(await indicatorRow('evil.example').count()).toBe(0);
    await importCsv('good.csv', 'type,value,action,title\r\ndomain,evil.example,block,C2 domain\r\nip,10.66.0.1,audit,Scanner\r\n');
    await result.getByText('2 indicators imported.').waitFor();
    await indicatorRow('evil.example').waitFor();
    await indicatorRow('10.66.0.1').getByText('Audit only').waitFor();
    expect(await scan()).toEqual([]);
    if (TAKE_SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS_DIR, 'indicators-page.png'), fullPage: true });

    await indicatorRow('10.66.0.1').getByRole('button', { name: 'Edit Scanner' }).click();
    const edit = page.getByRole('dialog', { name: 'Edit indicator' });
    await edit.getByLabel('Indicator action').selectOption('block');
    await edit.getByRole('button', { name: 'Save' }).click();
    await indicatorRow('10.66.0.1').getByText('Block', { exact: true }).waitFor();

    await indicatorRow('evil.example').getByRole('button', { name: 'Expire C2 domain' }).click();
    await page.getByRole('dialog', { name: 'Expire indicator' }).getByRole('button', { name: 'Expire' }).click();
    await expect.poll(() => indicatorRow('evil.example').count()).toBe(0);
    await page.getByRole('switch', { name: 'Show expired indicators' }).click();
    await expect.poll(() => new URL(page.url()).search).toBe('?includeExpired=true');
    await indicatorRow('evil.example').getByText('Expired').waitFor();
    const stored = (await ctx.request(ctx.users.security_reader, 'GET', '/api/indicators?type=domain&value=evil.example&includeExpired=true')).json().items;
    expect(stored).toEqual([expect.objectContaining({ active: false })]);
  });

  it('blocks an address from an alert\'s evidence in two clicks as Security Administrator, and shows where indicators matched', async () => {
    const deviceId = await device('ws-block-01');
    const id = await sendAlert(deviceId, 'SSH brute force', 'high', [{ kind: 'ip', address: '203.0.113.77' }, { kind: 'user', name: 'root' }]);
    await signIn(ctx.users.security_admin, '/alerts');
    await alertRow(id).getByRole('cell').first().click();
    const evidence = alertPanel().getByRole('table', { name: 'Evidence' });
    const blockAddress = evidence.getByRole('button', { name: 'Block IP address 203.0.113.77' });
    await blockAddress.waitFor();
    // Only what an indicator can name has the button: the address, not the user.
    expect(await evidence.getByRole('button', { name: /^Block / }).count()).toBe(1);
    await blockAddress.click();
    const dialog = page.getByRole('dialog', { name: 'Block IP address 203.0.113.77?' });
    await dialog.getByRole('button', { name: 'Block', exact: true }).click();
    await dialog.getByText(/^Blocked on every device: the agents enforce it within seconds/).waitFor();
    const [stored] = (await ctx.request(ctx.users.security_reader, 'GET', '/api/indicators?type=ip&value=203.0.113.77')).json().items;
    expect(stored).toMatchObject({ action: 'block', title: 'Blocked from alert “SSH brute force”', deviceGroupIds: [] });
    await dialog.getByRole('button', { name: 'Close' }).click();
    await page.keyboard.press('Escape');

    // Its agent reported hits: the indicator page says how many, where, and what the last one was.
    const at = Date.now();
    await ctx.store.db.insertInto('indicator_hits').values({
      indicator_id: stored.id, device_id: deviceId, hour: at - (at % 3_600_000), action: 'block', count: 3, first_at: at, last_at: at,
      last_hit: JSON.stringify({ value: '203.0.113.77', action: 'block', remote: '203.0.113.77', direction: 'inbound', count: 3, firstAt: at, lastAt: at }),
    }).execute();
    await page.goto(`${ctx.url}/indicators`);
    await indicatorRow('203.0.113.77').getByRole('button', { name: 'Hits of Blocked from alert “SSH brute force”' }).click();
    const hits = page.getByRole('dialog', { name: 'Hits of “Blocked from alert “SSH brute force””' });
    await hits.getByRole('link', { name: 'ws-block-01' }).waitFor();
    await hits.getByText('Blocked from 203.0.113.77').waitFor();
    expect(await scan()).toEqual([]);
    await hits.getByRole('button', { name: 'Close' }).click();
  });

  it('shows a Security Reader indicators and alerts without editing controls, and says why', async () => {
    await signIn(ctx.users.security_reader, '/indicators');
    await page.getByText('Your role, Security Reader, can view and export indicators but not create, change, expire or import them: that needs a Security Administrator.').waitFor();
    await indicatorRow('9d'.repeat(32)).waitFor();
    expect(await page.getByRole('button', { name: /^(Add indicator|Import CSV|Edit|Expire)/ }).count()).toBe(0);
    expect(await page.getByRole('form', { name: 'Add an indicator' }).count()).toBe(0);
    await page.getByRole('link', { name: 'Export CSV' }).waitFor();

    await page.goto(`${ctx.url}/alerts`);
    await page.locator('tr[data-alert-id]').first().getByRole('cell').first().click();
    await alertPanel().getByText('Your role, Security Reader, can view alerts but not triage them or classify them as false positives.').waitFor();
    expect(await alertPanel().getByRole('button', { name: /Update alert|Classify as false positive|^Block / }).count()).toBe(0);
    await page.keyboard.press('Escape');
  });

  it('loads at most 250 kB of JavaScript (gzip) for the Action center\'s first page, and no page broke its CSP', async () => {
    const listed = page.waitForResponse((response) => response.url().includes('/api/actions?') && response.url().includes('view=pending'));
    await page.goto(`${ctx.url}/action-center/pending`);
    await (await listed).finished();
    // What the first page needed: the scripts asked for before its rows arrived (the rest, a decision's dialog, loads after).
    const bytes = await page.evaluate(() => {
      const entries = performance.getEntriesByType('resource') as PerformanceResourceTiming[];
      const list = entries.find((entry) => entry.name.includes('/api/actions?') && entry.name.includes('view=pending'));
      if (!list) return -1;
      return entries.filter((entry) => entry.name.endsWith('.js') && entry.startTime < list.responseEnd).reduce((sum, entry) => sum + entry.encodedBodySize, 0);
    });
    console.info(`Action center route: ${(bytes / 1000).toFixed(1)} kB of JavaScript (gzip)`);
    expect(bytes).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(250_000);
    expect(cspViolations).toEqual([]);
  });
});
