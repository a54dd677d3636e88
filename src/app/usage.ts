import { subscriptionObject } from "../objects/subscription-object";

/**
 * The cron's close of a month for one cloud, sent on the renewals queue (the cron's work queue):
 * `closeMonth` is the first instant after the month (ISO 8601).
 */
export interface MonthCloseMessage {
  subscription: string;
  closeMonth: string;
}

export const isMonthClose = (body: object): body is MonthCloseMessage => "closeMonth" in body;

/**
 * Bills a cloud running since before the boundary up to it. Idempotent: a redelivered message, or
 * one for a cloud since stopped, cancelled or gone, changes nothing.
 */
export async function closeMonthOf(env: Env, message: MonthCloseMessage): Promise<"closed" | "skipped"> {
  const before = await subscriptionObject(env, message.subscription).get();
  if (before?.kind !== "caas") return "skipped";
  const after = await subscriptionObject(env, message.subscription).closeMonth(new Date(message.closeMonth));
  return after.ok && after.value.version !== before.version ? "closed" : "skipped";
}
