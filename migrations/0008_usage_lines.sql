CREATE TABLE `usage_closes` (
	`month` text PRIMARY KEY NOT NULL,
	`closed_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL
);
--> statement-breakpoint
ALTER TABLE `charges` ADD `month` text DEFAULT '' NOT NULL;--> statement-breakpoint
CREATE INDEX `charges_customer_month` ON `charges` (`customer_id`,`month`,`created_at`,`key`);--> statement-breakpoint
ALTER TABLE `subscriptions` ADD `running_since` integer;--> statement-breakpoint
CREATE INDEX `subscriptions_running` ON `subscriptions` (`running_since`,`id`) WHERE running_since is not null;--> statement-breakpoint
-- Lines written before statements had a month column were placed by when they were written.
UPDATE `charges` SET `month` = substr(`created_at`, 1, 7);--> statement-breakpoint
-- Clouds already running: the cron finds them by their open interval's start.
UPDATE `subscriptions` SET `running_since` = json_extract(`body`, '$.runs[#-1].start') WHERE `kind` = 'caas' AND json_type(`body`, '$.runs[#-1].end') = 'null';--> statement-breakpoint
-- No usage line was written before this: every month before the current one is closed.
INSERT INTO `usage_closes` (`month`) VALUES (strftime('%Y-%m', 'now', 'start of month', '-1 month')) ON CONFLICT DO NOTHING;
