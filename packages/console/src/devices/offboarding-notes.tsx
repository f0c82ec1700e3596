import { MessageBar, MessageBarBody, MessageBarTitle } from '@fluentui/react-components';
import type { Device } from '@quell/contracts';
import { formatDateTime } from '../format.ts';

/**
 * Where the device stands with offboarding: asked and waiting for its
 * agent, or done, with what the agent released, kept, could not release,
 * and what it left in its vault. The agent's words are shown as text.
 */
export function OffboardingNotes({ device }: { device: Pick<Device, 'offboarding' | 'offboarded' | 'agent'> }) {
  const { offboarding, offboarded } = device;
  return (
    <>
      {offboarding && (
        <MessageBar intent="warning" aria-label="Offboarding">
          <MessageBarBody>
            <MessageBarTitle>Offboarding asked at {formatDateTime(offboarding.requestedAt)}</MessageBarTitle>
            The agent is told when it next connects; it will {offboarding.releaseEffects ? 'release' : 'leave in force'} what Quell put in force, and is revoked once it reports.
          </MessageBarBody>
        </MessageBar>
      )}
      {offboarded && !device.agent && (
        <MessageBar intent={offboarded.failures.length > 0 ? 'error' : 'info'} aria-label="Offboarded">
          <MessageBarBody>
            <MessageBarTitle>Offboarded at {formatDateTime(offboarded.at)}</MessageBarTitle>
            <ul>
              {offboarded.released.map((text) => <li key={`r${text}`}>Released: {text}</li>)}
              {offboarded.kept.map((text) => <li key={`k${text}`}>Left in force: {text}</li>)}
              {offboarded.failures.map((text) => <li key={`f${text}`}>Could not release: {text}</li>)}
              <li>
                {offboarded.vault.files === 0 ? 'No quarantined files were left on the device.'
                  : `${offboarded.vault.files} quarantined ${offboarded.vault.files === 1 ? 'file is' : 'files are'} left in the agent's vault; instructions in ${offboarded.vault.instructions ?? 'the vault'}.`}
              </li>
            </ul>
          </MessageBarBody>
        </MessageBar>
      )}
    </>
  );
}
