import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/**
 * A small network of real hosts for tests: each endpoint is a network
 * namespace joined to this host by a veth pair on its own /24, routed
 * through the host. The test's server listens on an endpoint's gateway
 * address, so agents reach it the way a real endpoint reaches its server.
 */
export interface Endpoint { ns: string; address: string; gateway: string }

export interface NetnsLab {
  endpoint(name: string): Promise<Endpoint>;
  /**
   * A container routed through `host` (an endpoint): its own namespace on a
   * subnet of its own behind the endpoint, which forwards for it; this
   * machine reaches it through the endpoint.
   */
  routedBehind(host: Endpoint, name: string): Promise<Endpoint>;
  /** Containers on a Linux bridge inside `host`: they talk to each other through the bridge, not through the endpoint's routing. */
  bridgedBehind(host: Endpoint, names: readonly string[]): Promise<Endpoint[]>;
  /** Gives `host` one more address, routed to it from this machine and so from every endpoint: a server "on the internet". */
  alias(host: Endpoint, address: string): Promise<void>;
  /** True when a TCP connection from `ns` to host:port is accepted within a second. */
  canConnect(ns: string | null, host: string, port: number): Promise<boolean>;
  /** Keeps a TCP listener running inside `ns` until the lab closes. */
  listen(ns: string, host: string, port: number): Promise<void>;
  close(): Promise<void>;
}

const PROBE = `
const net = require('node:net');
const [host, port] = process.argv.slice(-2);
const socket = net.connect({ host, port: Number(port), timeout: 1000 });
socket.on('connect', () => process.exit(0));
socket.on('timeout', () => process.exit(1));
socket.on('error', () => process.exit(1));
`;

const LISTENER = `
const net = require('node:net');
const [host, port] = process.argv.slice(-2);
net.createServer((s) => { s.on('error', () => {}); s.end('hello\\n'); }).listen(Number(port), host, () => console.log('listening'));
`;

export async function createNetnsLab(): Promise<NetnsLab> {
  const tag = Math.random().toString(36).slice(2, 7);
  // A /16 chosen at random per lab so that parallel runs do not collide.
  const base = `10.${200 + Math.floor(Math.random() * 50)}`;
  const endpoints: Endpoint[] = [];
  const routes: string[] = [];
  const children: ChildProcess[] = [];
  const forwarding = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  const ip = (...args: string[]) => exec('ip', args);

  return {
    async endpoint(name) {
      const index = endpoints.length + 1;
      const ns = `q${tag}${name}`.slice(0, 15);
      const hostSide = `qv${tag}${index}`;
      const gateway = `${base}.${index}.1`;
      const address = `${base}.${index}.2`;
      await ip('netns', 'add', ns);
      await ip('link', 'add', hostSide, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      await ip('addr', 'add', `${gateway}/24`, 'dev', hostSide);
      await ip('link', 'set', hostSide, 'up');
      await ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      await ip('netns', 'exec', ns, 'ip', 'link', 'set', 'eth0', 'up');
      await ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
      await ip('netns', 'exec', ns, 'ip', 'route', 'add', 'default', 'via', gateway);
      const endpoint = { ns, address, gateway };
      endpoints.push(endpoint);
      return endpoint;
    },
    async routedBehind(host, name) {
      const index = 100 + endpoints.length;
      const ns = `q${tag}${name}`.slice(0, 15);
      const hostSide = `qr${tag}${index}`;
      const gateway = `${base}.${index}.1`;
      const address = `${base}.${index}.2`;
      await ip('netns', 'add', ns);
      await ip('link', 'add', hostSide, 'netns', host.ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      await ip('netns', 'exec', host.ns, 'ip', 'addr', 'add', `${gateway}/24`, 'dev', hostSide);
      await ip('netns', 'exec', host.ns, 'ip', 'link', 'set', hostSide, 'up');
      await ip('netns', 'exec', host.ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1');
      await ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      await ip('netns', 'exec', ns, 'ip', 'link', 'set', 'eth0', 'up');
      await ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
      await ip('netns', 'exec', ns, 'ip', 'route', 'add', 'default', 'via', gateway);
      await ip('route', 'add', `${base}.${index}.0/24`, 'via', host.address);
      routes.push(`${base}.${index}.0/24`);
      const container = { ns, address, gateway };
      endpoints.push(container);
      return container;
    },
    async bridgedBehind(host, names) {
      const index = 100 + endpoints.length;
      const bridge = `qb${tag}`;
      await ip('netns', 'exec', host.ns, 'ip', 'link', 'add', bridge, 'type', 'bridge');
      await ip('netns', 'exec', host.ns, 'ip', 'link', 'set', bridge, 'up');
      const containers: Endpoint[] = [];
      for (const [i, name] of names.entries()) {
        const ns = `q${tag}${name}`.slice(0, 15);
        const port = `qp${tag}${i}`;
        const address = `${base}.${index}.${i + 2}`;
        await ip('netns', 'add', ns);
        await ip('link', 'add', port, 'netns', host.ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
        await ip('netns', 'exec', host.ns, 'ip', 'link', 'set', port, 'master', bridge);
        await ip('netns', 'exec', host.ns, 'ip', 'link', 'set', port, 'up');
        await ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${address}/24`, 'dev', 'eth0');
        await ip('netns', 'exec', ns, 'ip', 'link', 'set', 'eth0', 'up');
        await ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
        const container = { ns, address, gateway: host.address };
        endpoints.push(container);
        containers.push(container);
      }
      return containers;
    },
    async alias(host, address) {
      await ip('netns', 'exec', host.ns, 'ip', 'addr', 'add', `${address}/32`, 'dev', 'lo');
      await ip('route', 'add', `${address}/32`, 'via', host.address);
      routes.push(`${address}/32`);
    },
    async canConnect(ns, host, port) {
      const argv = [...(ns ? ['netns', 'exec', ns] : []), process.execPath, '-e', PROBE, host, String(port)];
      try {
        // Generous: on a loaded machine starting the probe's Node can take seconds; its connect attempt itself gives up after one.
        await exec(ns ? 'ip' : process.execPath, ns ? argv : argv.slice(1), { timeout: 20_000 });
        return true;
      } catch {
        return false;
      }
    },
    async listen(ns, host, port) {
      const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', LISTENER, host, String(port)]);
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`listener in ${ns} exited with ${code}`)));
      });
    },
    async close() {
      for (const child of children) child.kill();
      for (const route of routes) await ip('route', 'del', route).catch(() => {});
      for (const { ns } of endpoints) await ip('netns', 'del', ns).catch(() => {});
      writeFileSync('/proc/sys/net/ipv4/ip_forward', forwarding);
    },
  };
}
