import type { Metadata } from "next";

export const metadata: Metadata = { title: "Verify your email" };
export { default } from "@/components/PassThrough";
