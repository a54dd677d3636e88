ALTER TABLE `idempotency_keys` ADD `intent` text;--> statement-breakpoint
ALTER TABLE `operations` ADD `waiting` integer DEFAULT false NOT NULL;--> statement-breakpoint
CREATE INDEX `operations_unfinished` ON `operations` (`status`,`updated_at`);--> statement-breakpoint
ALTER TABLE `partners` ADD `rate_limit` text DEFAULT 'standard' NOT NULL;