import type { Metadata } from "next";

export const metadata: Metadata = { title: "Profile" };
export { default } from "@/components/PassThrough";
