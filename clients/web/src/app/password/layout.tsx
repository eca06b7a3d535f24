import type { Metadata } from "next";

export const metadata: Metadata = { title: "Change password" };
export { default } from "@/components/PassThrough";
