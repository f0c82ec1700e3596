import { useEffect, useState } from 'react';

/**
 * Code that loads on demand, read without Suspense: React keeps a Suspense
 * fallback on screen for at least 300 ms, longer than the code takes to
 * arrive. `preload` starts the download; `useModule` gives the module once it
 * is in (null until then, and `failed` when it could not be loaded), starting
 * the download on first use once `wanted`.
 */
export function onDemand<M>(load: () => Promise<M>) {
  let loaded: M | null = null;
  let loading: Promise<M> | null = null;
  const preload = (): Promise<M> => {
    loading ??= load().then((module) => (loaded = module));
    return loading;
  };
  function useModule(wanted = true): { module: M | null; failed: boolean } {
    const [module, setModule] = useState(loaded);
    const [failed, setFailed] = useState(false);
    useEffect(() => {
      if (!module && wanted) preload().then(setModule, () => setFailed(true));
    }, [module, wanted]);
    return { module, failed };
  }
  return { preload, useModule };
}
