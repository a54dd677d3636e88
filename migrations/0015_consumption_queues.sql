CREATE TABLE `consumption_queues` (
	`report` text PRIMARY KEY NOT NULL,
	`subscriptions` text NOT NULL,
	`expires_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `consumption_queues_expiry` ON `consumption_queues` (`expires_at`);