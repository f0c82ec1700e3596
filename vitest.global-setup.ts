import { execFileSync } from 'node:child_process';

/** Tests run the bundled agent as endpoints do: build it from the current sources first (esbuild, well under a second). */
export default function buildAgentBundle(): void {
  execFileSync('npm', ['run', '--silent', 'build:agent'], { stdio: 'inherit' });
}
