import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Action, ActionType } from '@quell/contracts';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, TEST_DIALECT, type TestContext, type TestUser, liveClock, setupTestApp } from '../../server/src/test/helper.ts';

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
    await page.locator('tr[data-action-id]', { hasText: 'Restore file' }).filter({ hasText: 'payload.so' }).waitFor();
    expect(await flyout.getByRole('button', { name: 'Undo' }).getAttribute('aria-disabled')).toBe('true');
  });

  it('undoes two completed actions of one type in one confirmation', async () => {
    const ids = [await completed('stop_service', 'legit-a.service'), await completed('stop_service', 'legit-b.service')];
    await signIn(ctx.users.security_operator, '/action-center/history');
    for (const id of ids) await page.locator(`tr[data-action-id="${id}"]`).getByRole('checkbox').check();
    await page.getByRole('button', { name: 'Undo (2)' }).click();
    await confirmation().getByText('Undo 2 stop service actions').waitFor();
    await confirmation().getByText('Each gets a restore service action').waitFor();
    await decide('Undo', 'Services are needed');
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
    await page.getByLabel('Status').selectOption({ label: 'Rejected' });
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

    await page.getByRole('columnheader', { name: 'Date/time' }).click();
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
    await pending('contain_user', 'jdoe');
    const done = await completed('stop_service', 'backdoor.service');
    await signIn(ctx.users.security_reader);
    await row('jdoe').waitFor();
    expect(await page.getByRole('checkbox').count()).toBe(0);
    await page.getByText('Your role, Security Reader, can view actions but not approve or reject them').first().waitFor();
    await row('jdoe').click();
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

  it('has no serious or critical accessibility violations in the Action center and the flyout (axe-core)', async () => {
    const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
    const scan = async (): Promise<string[]> => {
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
    };
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

  it('Go hunt opens the device page filtered to the entity', async () => {
    const deviceId = await device('db-server-02');
    await pending('stop_service', 'sshd-backdoor.service', { deviceId });
    await pending('remove_scheduled_task', 'cron-miner', { deviceId });
    await signIn(ctx.users.security_operator);
    await row('sshd-backdoor.service').click();
    await drawer().getByRole('link', { name: 'Go hunt' }).click();
    await page.getByRole('heading', { name: 'db-server-02' }).waitFor();
    await page.getByText('Showing the actions on').waitFor();
    const table = page.getByRole('table', { name: 'Pending actions on this device' });
    await table.locator('tr', { hasText: 'sshd-backdoor.service' }).waitFor();
    expect(await table.locator('tr', { hasText: 'cron-miner' }).count()).toBe(0);
    if (TAKE_SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS_DIR, 'device-page.png'), fullPage: true });
  });

  it('loads at most 250 kB of JavaScript (gzip) for the Action center, and no page broke its CSP', async () => {
    await page.goto(`${ctx.url}/action-center/pending`);
    await page.getByRole('tab', { name: /Pending/ }).waitFor();
    const bytes = await page.evaluate(() => performance.getEntriesByType('resource')
      .filter((entry) => entry.name.endsWith('.js'))
      .reduce((sum, entry) => sum + (entry as PerformanceResourceTiming).encodedBodySize, 0));
    console.info(`Action center route: ${(bytes / 1024).toFixed(1)} kB of JavaScript (gzip)`);
    expect(bytes).toBeGreaterThan(0);
    expect(bytes).toBeLessThanOrEqual(250 * 1024);
    expect(cspViolations).toEqual([]);
  });
});
