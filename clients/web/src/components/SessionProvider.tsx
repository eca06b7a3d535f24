"use client";

import { usePathname, useRouter } from "next/navigation";
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { bff } from "@/lib/api";

export type SessionState = { loaded: boolean; signedIn: boolean; roles: string[]; amr: string[] };

const SessionContext = createContext<{ session: SessionState; reload: () => Promise<void> }>({
  session: { loaded: false, signedIn: false, roles: [], amr: [] },
  reload: async () => undefined,
});

/** Whether this browser is signed in, as GET /bff/session says (it never holds a token). */
export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<SessionState>({ loaded: false, signedIn: false, roles: [], amr: [] });
  const pathname = usePathname();
  const reload = useCallback(async () => {
    const answer = await bff("/session", "GET");
    const data = answer.ok ? (answer.data as { signed_in: boolean; roles: string[]; amr: string[] }) : null;
    setSession({ loaded: true, signedIn: Boolean(data?.signed_in), roles: data?.roles ?? [], amr: data?.amr ?? [] });
  }, []);
  useEffect(() => {
    void reload();
  }, [reload, pathname]);
  return <SessionContext.Provider value={{ session, reload }}>{children}</SessionContext.Provider>;
}

export function useSession() {
  return useContext(SessionContext);
}

/** For pages that need a signed-in person: sends anyone else to /login, then back here. */
export function useRequireSignIn(): SessionState {
  const { session } = useSession();
  const router = useRouter();
  const pathname = usePathname();
  useEffect(() => {
    if (session.loaded && !session.signedIn) router.replace(`/login?next=${encodeURIComponent(pathname)}`);
  }, [session, router, pathname]);
  return session;
}
