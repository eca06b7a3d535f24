import type { Metadata } from "next";

export const metadata: Metadata = { title: "Security history" };
export { default } from "@/components/PassThrough";
