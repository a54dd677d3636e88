DROP INDEX `subscriptions_root`;--> statement-breakpoint
CREATE INDEX `subscriptions_root` ON `subscriptions` (`root_id`,`start_time`,`id`);