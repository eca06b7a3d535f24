import type { Metadata } from "next";

export const metadata: Metadata = { title: "Security" };
export { default } from "@/components/PassThrough";
