import type { Metadata } from "next";

export const metadata: Metadata = { title: "Choose a new password" };
export { default } from "@/components/PassThrough";
