import { Button, FluentProvider, Menu, MenuItemRadio, MenuList, MenuPopover, MenuTrigger, webDarkTheme, webLightTheme } from '@fluentui/react-components';
import { type ReactNode, createContext, useContext, useEffect, useState, useSyncExternalStore } from 'react';

/** The console's theme as a user chose it: the system's (light or dark, as it changes), or one of the two. */
export type ThemeChoice = 'system' | 'light' | 'dark';
const CHOICES: Array<{ value: ThemeChoice; label: string }> = [{ value: 'system', label: 'As the system' }, { value: 'light', label: 'Light' }, { value: 'dark', label: 'Dark' }];

const DARK_QUERY = '(prefers-color-scheme: dark)';
const subscribeToScheme = (onChange: () => void): (() => void) => {
  const query = window.matchMedia(DARK_QUERY);
  query.addEventListener('change', onChange);
  return () => query.removeEventListener('change', onChange);
};

const ThemeContext = createContext<{ choice: ThemeChoice; setChoice: (choice: ThemeChoice) => void; dark: boolean }>({ choice: 'system', setChoice: () => {}, dark: false });

/** Fluent's web theme, light or dark as chosen (the system's until a signed-in user chose), for the whole page. */
export function ThemeRoot({ children }: { children: ReactNode }) {
  const systemDark = useSyncExternalStore(subscribeToScheme, () => window.matchMedia(DARK_QUERY).matches);
  const [choice, setChoice] = useState<ThemeChoice>('system');
  const dark = choice === 'dark' || (choice === 'system' && systemDark);
  const theme = dark ? webDarkTheme : webLightTheme;
  useEffect(() => {
    // The page around the console (and the browser's own scroll bars and form controls) in the same colours.
    document.documentElement.style.colorScheme = dark ? 'dark' : 'light';
    document.body.style.backgroundColor = theme.colorNeutralBackground1;
  }, [dark, theme]);
  return (
    <ThemeContext.Provider value={{ choice, setChoice, dark }}>
      <FluentProvider theme={theme}>{children}</FluentProvider>
    </ThemeContext.Provider>
  );
}

const storageKey = (username: string): string => `quell.theme.${username}`;
const storedChoice = (username: string): ThemeChoice => {
  const stored = window.localStorage.getItem(storageKey(username));
  return stored === 'light' || stored === 'dark' ? stored : 'system';
};

/**
 * The signed-in user's theme menu: the choice is kept in this browser for
 * that user, taken up when they sign in and let go when they sign out.
 */
export function ThemeMenu({ username }: { username: string }) {
  const { choice, setChoice, dark } = useContext(ThemeContext);
  useEffect(() => {
    setChoice(storedChoice(username));
    return () => setChoice('system');
  }, [username, setChoice]);
  const choose = (value: ThemeChoice): void => {
    window.localStorage.setItem(storageKey(username), value);
    setChoice(value);
  };
  const current = CHOICES.find((c) => c.value === choice)!;
  return (
    <Menu checkedValues={{ theme: [choice] }} onCheckedValueChange={(_event, data) => choose(data.checkedItems[0] as ThemeChoice)}>
      <MenuTrigger disableButtonEnhancement>
        <Button appearance="primary" aria-label={`Theme: ${current.label.toLowerCase()}${choice === 'system' ? ` (${dark ? 'dark' : 'light'})` : ''}`}>Theme</Button>
      </MenuTrigger>
      <MenuPopover>
        <MenuList>
          {CHOICES.map((c) => <MenuItemRadio key={c.value} name="theme" value={c.value}>{c.label}</MenuItemRadio>)}
        </MenuList>
      </MenuPopover>
    </Menu>
  );
}
