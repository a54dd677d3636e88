CREATE INDEX `webhook_attempts_at` ON `webhook_attempts` (`at`);--> statement-breakpoint
CREATE INDEX `webhook_deliveries_over` ON `webhook_deliveries` (`status`,`created_at`);