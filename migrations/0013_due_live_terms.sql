DROP INDEX `subscriptions_due`;--> statement-breakpoint
CREATE INDEX `subscriptions_due` ON `subscriptions` (`end_time`,`id`) WHERE ended_at is null;