import { RendererProvider, createDOMRenderer } from '@fluentui/react-components';
import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { ApiError } from './api/api-client.ts';
import { App, preloadCurrentPage } from './app.tsx';
import { SESSION_KEY, SessionGate } from './session/session.tsx';
import { ThemeRoot } from './theme.tsx';

/** A 401 on any call means the session ended: back to the sign-in page. */
const onError = (error: unknown): void => {
  if (error instanceof ApiError && error.status === 401) queryClient.setQueryData(SESSION_KEY, null);
};
const queryClient = new QueryClient({
  queryCache: new QueryCache({ onError }),
  mutationCache: new MutationCache({ onError }),
  defaultOptions: { queries: { retry: (count, error) => !(error instanceof ApiError && error.status < 500 && error.status > 0) && count < 2, refetchOnWindowFocus: false } },
});

// The page's Content-Security-Policy allows only styles carrying this nonce; Fluent's style elements get it.
const nonce = document.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content;
const renderer = createDOMRenderer(document, nonce ? { styleElementAttributes: { nonce } } : {});

preloadCurrentPage();
createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <RendererProvider renderer={renderer} targetDocument={document}>
      <ThemeRoot>
        <QueryClientProvider client={queryClient}>
          <SessionGate>
            <App />
          </SessionGate>
        </QueryClientProvider>
      </ThemeRoot>
    </RendererProvider>
  </StrictMode>,
);
