import type { Metadata } from "next";

export const metadata: Metadata = { title: "Restore your account" };
export { default } from "@/components/PassThrough";
