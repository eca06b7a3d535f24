"use client";

import { useRouter } from "next/navigation";
import { useEffect } from "react";
import { useSession } from "@/components/SessionProvider";

export default function Home() {
  const { session } = useSession();
  const router = useRouter();
  useEffect(() => {
    if (session.loaded) router.replace(session.signedIn ? "/profile" : "/login");
  }, [session, router]);
  return <p className="muted">Loading…</p>;
}
