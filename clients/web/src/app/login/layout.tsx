import type { Metadata } from "next";

export const metadata: Metadata = { title: "Sign in" };
export { default } from "@/components/PassThrough";
