import { type ChildProcess, execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, TEST_DIALECT, liveClock, setupTestApp } from '@quell/server/testing';
import { configuredResolvers, verdictFor } from './dns-filter.ts';
import { ADDRESS_BLOCKS_TABLE } from './executors/address-blocks.linux.ts';
import { type Endpoint, type NetnsLab, createNetnsLab } from './test/netns-lab.ts';
import { type AgentProcess, quell, spawnAgent, waitFor } from './test/helper.ts';

const exec = promisify(execFile);

/**
 * A resolver for the lab, over UDP and TCP: names under hardcoded.test are
 * the attacker's server, names under sneaky.test the resolver itself (an
 * address of the network's own), every other A query 192.0.2.10.
 */
const RESOLVER = `
const dgram = require('node:dgram'), net = require('node:net'), packet = require('dns-packet');
const [host, c2] = process.argv.slice(-2);
const addressOf = (name) => (/(^|\\.)hardcoded\\.test$/.test(name) ? c2 : /(^|\\.)sneaky\\.test$/.test(name) ? host : '192.0.2.10');
const answer = (bytes) => { const q = packet.decode(bytes); return packet.encode({ id: q.id, type: 'response', flags: packet.RECURSION_AVAILABLE, questions: q.questions,
  answers: q.questions.filter((x) => x.type === 'A').map((x) => ({ type: 'A', name: x.name, ttl: 60, data: addressOf(x.name) })) }); };
const udp = dgram.createSocket('udp4');
udp.on('message', (m, r) => udp.send(answer(m), r.port, r.address));
udp.bind(53, host, () => net.createServer((s) => s.on('data', (d) => { const a = answer(d.subarray(2)); s.end(Buffer.concat([Buffer.from([a.length >> 8, a.length & 255]), a])); }))
  .listen(53, host, () => console.log('resolving')));
`;

/** Asks `server` for a name's A record, over UDP or TCP: prints the addresses, or the response code. */
const ASK = `
const dgram = require('node:dgram'), net = require('node:net'), packet = require('dns-packet');
const [name, server, protocol] = process.argv.slice(-3);
const query = packet.encode({ type: 'query', id: 4242, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name }] });
const print = (bytes) => { const r = packet.decode(bytes); console.log(r.rcode === 'NOERROR' ? r.answers.map((a) => a.data).join(',') : r.rcode); process.exit(0); };
setTimeout(() => { console.log('TIMEOUT'); process.exit(0); }, 4000);
if (protocol === 'udp') { const s = dgram.createSocket('udp4'); s.on('message', print); s.send(query, 53, server); }
else { const s = net.connect(53, server, () => s.write(Buffer.concat([Buffer.from([0, query.length]), query]))); let got = Buffer.alloc(0);
  s.on('data', (d) => { got = Buffer.concat([got, d]); if (got.length >= 2 + got.readUInt16BE(0)) print(got.subarray(2)); }); }
`;

/** Asks `server` two questions in one query, over UDP: prints the response code. */
const ASK_TWO = `
const dgram = require('node:dgram'), packet = require('dns-packet');
const [first, second, server] = process.argv.slice(-3);
const query = packet.encode({ type: 'query', id: 4343, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name: first }, { type: 'A', name: second }] });
setTimeout(() => { console.log('TIMEOUT'); process.exit(0); }, 4000);
const s = dgram.createSocket('udp4'); s.on('message', (m) => { console.log(packet.decode(m).rcode); process.exit(0); }); s.send(query, 53, server);
`;

/**
 * What a hostile process on the endpoint sends its resolver (and so the
 * agent's filter): random bytes, empty and one-byte datagrams, a header
 * alone, a name pointing at itself, a label past the end, an answer instead
 * of a query, a 60 kB datagram, thousands of real queries at once; over TCP,
 * 300 connections that send one byte and wait, one that announces 65,535
 * bytes and sends fewer, and one that announces none. Prints "sent" and keeps
 * its connections open.
 */
const HOSTILE = `
const dgram = require('node:dgram'), net = require('node:net'), packet = require('dns-packet'), crypto = require('node:crypto');
const [server] = process.argv.slice(-1);
const header = Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
const datagrams = [Buffer.alloc(0), Buffer.from([1]), header, Buffer.concat([header, Buffer.from([0xc0, 12, 0, 1, 0, 1])]),
  Buffer.concat([header, Buffer.from([63]), Buffer.alloc(20, 97)]), Buffer.concat([header, Buffer.alloc(400, 63)]),
  packet.encode({ type: 'response', id: 7, questions: [{ type: 'A', name: 'evil.test' }], answers: [{ type: 'A', name: 'evil.test', data: '1.2.3.4' }] }),
  Buffer.alloc(60000, 0xff)];
for (let i = 0; i < 2000; i++) datagrams.push(crypto.randomBytes(Math.floor(Math.random() * 600)));
for (let i = 0; i < 3000; i++) datagrams.push(packet.encode({ type: 'query', id: i, questions: [{ type: 'A', name: 'n' + i + '.flood.test' }] }));
for (let i = 0; i < 500; i++) datagrams.push(packet.encode({ type: 'query', id: i, questions: [{ type: 'A', name: 'r' + i + '.evil.test' }] }));
const udp = dgram.createSocket('udp4');
const sockets = [];
(async () => {
  for (const datagram of datagrams) await new Promise((resolve) => udp.send(datagram, 53, server, resolve));
  for (let i = 0; i < 300; i++) await new Promise((resolve) => { const s = net.connect(53, server, () => { s.write(Buffer.from([0])); resolve(); }); s.on('error', resolve); sockets.push(s); });
  for (const opening of [Buffer.concat([Buffer.from([0xff, 0xff]), Buffer.alloc(1000, 1)]), Buffer.from([0, 0, 0, 0])]) {
    await new Promise((resolve) => { const s = net.connect(53, server, () => { s.write(opening); resolve(); }); s.on('error', resolve); sockets.push(s); });
  }
  console.log('sent');
})();
`;

/**
 * Domain and URL indicators observed from outside: a managed endpoint whose
 * resolver (configured in its resolv.conf) is served by another namespace,
 * and queries sent to it by processes on the endpoint, over UDP and TCP.
 */
describe(`domain and URL indicators through the agent's DNS filter, in network namespaces (${TEST_DIALECT})`, () => {
  let lab: NetnsLab;
  let ctx: TestContext;
  let endpoint: Endpoint;
  let resolver: Endpoint;
  let agent: AgentProcess;
  let serving: ChildProcess | undefined;
  const work = mkdtempSync(join(tmpdir(), 'quell-dns-'));
  /** The attacker's server, at an address outside the lab's own ranges: the resolver's namespace holds it. */
  const C2 = `198.51.100.${10 + Math.floor(Math.random() * 200)}`;
  const etc = join(work, 'etc');

  beforeAll(async () => {
    lab = await createNetnsLab();
    endpoint = await lab.endpoint('managed');
    resolver = await lab.endpoint('resolver');
    ctx = await setupTestApp({ listen: { host: endpoint.gateway }, clock: liveClock() });
    const started = spawn('ip', ['netns', 'exec', resolver.ns, process.execPath, '-e', RESOLVER, resolver.address, C2], { cwd: process.cwd() });
    serving = started;
    await new Promise((resolve) => started.stdout.once('data', resolve));
    // The endpoint's own configuration names that resolver: the agent forwards there.
    mkdirSync(etc);
    cpSync('/etc', etc, { recursive: true, verbatimSymlinks: true });
    rmSync(join(etc, 'resolv.conf'), { force: true });
    writeFileSync(join(etc, 'resolv.conf'), `nameserver ${resolver.address}\n`);
    const { secret } = await ctx.services.agents.createEnrolmentToken(systemActor(), { name: endpoint.ns, uses: 1, expiresInDays: 1 });
    await quell(['agent', 'enrol', '--server', ctx.url, '--token', secret, '--dir', join(work, 'agent')], endpoint.ns);
    // Firewall events start a repair at once (the address block test shows it); here the periodic check is on as on endpoints.
    agent = spawnAgent(join(work, 'agent'), endpoint.ns, { bundle: true, sandbox: { etc }, driftCheckSeconds: 2 });
    await waitFor('the agent to connect', async () => (agent.log().includes('"msg":"connected"') ? true : undefined), 30_000);
  });

  afterAll(async () => {
    await agent?.stop();
    // A process left in a namespace keeps it, its veth and its route on this host after the lab is gone.
    serving?.kill();
    await ctx?.close();
    await lab?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** What a process on the endpoint gets when it asks the resolver for `name`: addresses, a response code, or TIMEOUT. */
  const ask = async (name: string, protocol: 'udp' | 'tcp' = 'udp'): Promise<string> =>
    (await exec('ip', ['netns', 'exec', endpoint.ns, process.execPath, '-e', ASK, name, resolver.address, protocol], { cwd: process.cwd() })).stdout.trim();
  const indicator = async (type: string, value: string, action: string): Promise<string> => {
    const response = await ctx.request(ctx.users.security_admin, 'POST', '/api/indicators', { type, value, action, title: `${action} ${value}` });
    expect(response.statusCode, response.body).toBe(201);
    return response.json().id;
  };
  const lift = async (id: string) => expect((await ctx.request(ctx.users.security_admin, 'DELETE', `/api/indicators/${id}`)).statusCode).toBe(200);
  const table = () => spawnSync('ip', ['netns', 'exec', endpoint.ns, 'nft', 'list', 'table', 'inet', ADDRESS_BLOCKS_TABLE], { encoding: 'utf8' }).stdout;
  const hitsOf = async (id: string) => (await ctx.request(ctx.users.security_reader, 'GET', `/api/indicators/hits?indicatorId=${id}`)).json().items;

  it('a blocked domain and its subdomains stop resolving within seconds, over UDP and TCP, while other names still do; the refusal is a hit with an alert', async () => {
    expect(await ask('c2.evil.test')).toBe('192.0.2.10');
    const id = await indicator('domain', 'evil.test', 'block');
    await waitFor('the domain to be refused', async () => ((await ask('c2.evil.test')) === 'REFUSED' ? true : undefined), 15_000);
    expect(await ask('evil.test', 'tcp')).toBe('REFUSED');
    expect(await ask('EVIL.test')).toBe('REFUSED');
    expect(await ask('notevil.test')).toBe('192.0.2.10');
    expect(await ask('good.example', 'tcp')).toBe('192.0.2.10');
    const [row] = await waitFor('the hit to be reported', async () => ((await hitsOf(id)).length > 0 ? hitsOf(id) : undefined), 15_000);
    expect(row.lastHit).toMatchObject({ action: 'block', name: expect.stringMatching(/evil\.test$/) });
    const alerts = await ctx.store.db.selectFrom('alerts').select(['title', 'evidence']).where('external_id', 'like', `hit:${id}:%`).execute();
    expect(alerts.length).toBeGreaterThanOrEqual(1);
    expect(alerts[0]!.title).toMatch(/^Blocked DNS query for (c2\.)?evil\.test on /);
    await lift(id);
    await waitFor('the domain to resolve again', async () => ((await ask('c2.evil.test')) === '192.0.2.10' ? true : undefined), 15_000);
    await waitFor('the redirect to be gone', async () => (table() === '' ? true : undefined));
  });

  it('a URL indicator is enforced at its host name; an allow indicator for a subdomain wins over the block of its parent', async () => {
    const url = await indicator('url', 'https://phish.test/login?next=/account', 'block');
    const domain = await indicator('domain', 'cdn.test', 'block');
    const allowed = await indicator('domain', 'fonts.cdn.test', 'allow');
    await waitFor('the URL\'s host to be refused', async () => ((await ask('phish.test')) === 'REFUSED' ? true : undefined), 15_000);
    expect(await ask('img.cdn.test')).toBe('REFUSED');
    expect(await ask('fonts.cdn.test')).toBe('192.0.2.10');
    for (const id of [url, domain, allowed]) await lift(id);
    await waitFor('the redirect to be gone', async () => (table() === '' ? true : undefined), 15_000);
  });

  it('an audited domain resolves and is reported', async () => {
    const id = await indicator('domain', 'watched.test', 'audit');
    await waitFor('the audit to be applied', async () => (table().includes('redirect to :') ? true : undefined), 15_000);
    expect(await ask('www.watched.test')).toBe('192.0.2.10');
    const [row] = await waitFor('the hit to be reported', async () => ((await hitsOf(id)).length > 0 ? hitsOf(id) : undefined), 15_000);
    expect(row.lastHit).toMatchObject({ action: 'audit', name: 'www.watched.test' });
    await lift(id);
  });

  it('what a blocked name resolves to is blocked too, for a process that has the address another way; never an address of the network\'s own', async () => {
    await lab.alias(resolver, C2);
    await lab.listen(resolver.ns, C2, 8443);
    expect(await lab.canConnect(endpoint.ns, C2, 8443)).toBe(true);
    const id = await indicator('domain', 'hardcoded.test', 'block');
    const sneaky = await indicator('domain', 'sneaky.test', 'block');
    // No process on the endpoint asks for the name: the agent resolves the blocked names itself.
    await waitFor('the address to be blocked', async () => (!(await lab.canConnect(endpoint.ns, C2, 8443)) ? true : undefined), 20_000);
    const [row] = await waitFor('the hit to be reported', async () => ((await hitsOf(id)).some((h: { lastHit: { remote: string } }) => h.lastHit.remote === C2) ? hitsOf(id) : undefined), 15_000);
    expect(row.lastHit).toMatchObject({ action: 'block', remote: C2, name: 'hardcoded.test' });
    const alerts = await ctx.store.db.selectFrom('alerts').select('title').where('external_id', 'like', `hit:${id}:%`).execute();
    expect(alerts.map((a) => a.title)).toContainEqual(expect.stringMatching(new RegExp(`^Blocked traffic (to|from) ${C2.replace(/\./g, '\\.')} \\(an address of hardcoded\\.test\\) on `)));
    // sneaky.test answers with the resolver's own (private) address: blocking that would have cut the endpoint's DNS.
    expect(await ask('sneaky.test')).toBe('REFUSED');
    expect(await ask('good.example', 'tcp')).toBe('192.0.2.10');
    expect(await lab.canConnect(endpoint.ns, new URL(ctx.url).hostname, Number(new URL(ctx.url).port))).toBe(true);
    await lift(id);
    await lift(sneaky);
    await waitFor('the address to be reachable again', async () => ((await lab.canConnect(endpoint.ns, C2, 8443)) ? true : undefined), 15_000);
  });

  it('garbage, looping, truncated and oversized packets, a flood of queries and of idle connections leave the filter answering', async () => {
    const id = await indicator('domain', 'evil.test', 'block');
    await waitFor('the domain to be refused', async () => ((await ask('evil.test')) === 'REFUSED' ? true : undefined), 15_000);
    const hostile = spawn('ip', ['netns', 'exec', endpoint.ns, process.execPath, '-e', HOSTILE, resolver.address], { cwd: process.cwd() });
    try {
      const sent = await new Promise<string>((resolve, reject) => {
        hostile.stdout.once('data', (data: Buffer) => resolve(data.toString().trim()));
        hostile.once('exit', (code) => reject(new Error(`the hostile client exited with ${code}`)));
      });
      expect(sent).toBe('sent');
      // Its idle connections are still open: a new one is served all the same.
      expect(await ask('good.example', 'tcp')).toBe('192.0.2.10');
      expect(await ask('good.example')).toBe('192.0.2.10');
      expect(await ask('c2.evil.test', 'tcp')).toBe('REFUSED');
      // A blocked name second in a query is refused like a first.
      expect((await exec('ip', ['netns', 'exec', endpoint.ns, process.execPath, '-e', ASK_TWO, 'good.example', 'c2.evil.test', resolver.address], { cwd: process.cwd() })).stdout.trim()).toBe('REFUSED');
    } finally {
      hostile.kill();
    }
    expect(agent.child.exitCode).toBeNull();
    await lift(id);
  });

  it('a flushed ruleset is put back: the domain stays refused; a stopped agent leaves the endpoint\'s DNS working', async () => {
    await indicator('domain', 'evil.test', 'block');
    await waitFor('the domain to be refused', async () => ((await ask('evil.test')) === 'REFUSED' ? true : undefined), 15_000);
    execFileSync('ip', ['netns', 'exec', endpoint.ns, 'nft', 'flush', 'ruleset']);
    await waitFor('the redirect to be put back', async () => (table().includes('redirect to :') ? true : undefined), 15_000).catch((error: Error) => {
      // What the agent was doing meanwhile is the only way to tell why.
      throw new Error(`${error.message}; the agent's last log lines:\n${agent.log().split('\n').slice(-60).join('\n')}`);
    });
    expect(await ask('evil.test')).toBe('REFUSED');
    await agent.stop();
    expect(table()).not.toContain('redirect to :');
    expect(await ask('evil.test')).toBe('192.0.2.10');
  });
});

describe('what the DNS filter does with a name', () => {
  const lists = { block: new Set(['evil.test', 'ads.cdn.test']), audit: new Set(['cdn.test']), allow: new Set(['ok.evil.test']) };

  it('blocks a blocked domain and every name below it, audits likewise, and lets an allowed name through whatever blocks its parent', () => {
    expect(verdictFor('evil.test', lists)).toEqual({ action: 'block', entry: 'evil.test' });
    expect(verdictFor('A.B.Evil.Test.', lists)).toEqual({ action: 'block', entry: 'evil.test' });
    expect(verdictFor('x.ads.cdn.test', lists)).toEqual({ action: 'block', entry: 'ads.cdn.test' });
    expect(verdictFor('img.cdn.test', lists)).toEqual({ action: 'audit', entry: 'cdn.test' });
    expect(verdictFor('www.ok.evil.test', lists)).toBeNull();
    expect(verdictFor('notevil.test', lists)).toBeNull();
    expect(verdictFor('test', lists)).toBeNull();
  });

  it('forwards to the configured resolvers that are not on loopback, or else to systemd-resolved\'s', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'quell-resolv-'));
    const [stub, upstream, plain] = [join(dir, 'stub'), join(dir, 'upstream'), join(dir, 'plain')] as const;
    writeFileSync(stub, 'nameserver 127.0.0.53\noptions edns0\n');
    writeFileSync(upstream, '# from DHCP\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nnameserver ::1\n');
    writeFileSync(plain, 'search example.org\nnameserver 198.51.100.1\n');
    expect(await configuredResolvers([plain, upstream])).toEqual(['198.51.100.1']);
    expect(await configuredResolvers([stub, upstream])).toEqual(['192.0.2.53', 'fe80::1']);
    expect(await configuredResolvers([stub, join(dir, 'missing')])).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });
});
