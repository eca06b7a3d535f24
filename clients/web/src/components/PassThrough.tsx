import type { ReactNode } from "react";

/** The layout of a route that only names its page (its `metadata.title`): client pages cannot export metadata. */
export default function PassThrough({ children }: { children: ReactNode }) {
  return children;
}
