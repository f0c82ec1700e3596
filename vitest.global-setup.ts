import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ensureSystemdRoot } from './packages/agent/src/systemd-root.ts';

/**
 * What the tests need from Debian besides Node, by the file that shows it is
 * there: real firewalls in network namespaces, a real browser, the tools the
 * agent keeps a file's extended attributes and capabilities with, a real
 * systemd booted in a container, rpm to tell a file's package by, and a C
 * compiler for the agent's exec guard.
 */
const DEBIAN_PACKAGES: ReadonlyArray<{ name: string; provides: string }> = [
  { name: 'nftables', provides: '/usr/sbin/nft' },
  { name: 'chromium', provides: '/usr/bin/chromium' },
  { name: 'attr', provides: '/usr/bin/getfattr' },
  { name: 'libcap2-bin', provides: '/usr/sbin/setcap' },
  { name: 'iproute2', provides: '/usr/sbin/ip' },
  { name: 'debootstrap', provides: '/usr/sbin/debootstrap' },
  { name: 'systemd-container', provides: '/usr/bin/systemd-nspawn' },
  { name: 'rpm', provides: '/usr/bin/rpmbuild' },
  { name: 'gcc', provides: '/usr/bin/gcc' },
  { name: 'libc6-dev', provides: '/usr/lib/x86_64-linux-gnu/libc.a' },
];

/** Installs the Debian packages the tests need that this machine lacks, saying so in one line; fails clearly where it cannot. */
function provisionDebianPackages(): void {
  const missing = DEBIAN_PACKAGES.filter((p) => !existsSync(p.provides)).map((p) => p.name);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`The tests need the Debian packages ${missing.join(', ')}: run npm test as root, or install them first (apt-get install ${missing.join(' ')}).`);
  process.stdout.write(`Installing the Debian packages the tests need: ${missing.join(', ')}\n`);
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('env', ['DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-qq', ...missing], { stdio: 'inherit' });
  } catch (error) {
    throw new Error(`Could not install the Debian packages ${missing.join(', ')} the tests need (${(error as Error).message}): install them and run npm test again.`, { cause: error });
  }
}

/** Tests run the bundled agent as endpoints do: build it from the current sources first (esbuild, well under a second). */
export default function setup(): void {
  // npm test (scripts/test.ts) provisions once, then starts a run per project.
  if (process.env.QUELL_TEST_PROVISIONED) return;
  try {
    provisionDebianPackages();
  } catch (error) {
    // Thrown, the sentence would come after Vitest's "No test files found" and before a stack trace; said alone, it is the whole answer.
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(1);
  }
  ensureSystemdRoot();
  execFileSync('npm', ['run', '--silent', 'build:agent'], { stdio: 'inherit' });
}
