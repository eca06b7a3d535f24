import type { Metadata } from "next";

export const metadata: Metadata = { title: "Confirm your new email address" };
export { default } from "@/components/PassThrough";
