CREATE TABLE `charges` (
	`key` text PRIMARY KEY NOT NULL,
	`partner_id` text NOT NULL,
	`customer_id` text NOT NULL,
	`subscription_id` text NOT NULL,
	`order_id` text,
	`kind` text NOT NULL,
	`product` text NOT NULL,
	`quantity` integer NOT NULL,
	`unit_price_minor` integer,
	`period_start` text,
	`period_end` text,
	`seconds` integer,
	`amount_minor` integer NOT NULL,
	`currency` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL
);
--> statement-breakpoint
CREATE INDEX `charges_customer_time` ON `charges` (`customer_id`,`created_at`,`key`);--> statement-breakpoint
CREATE INDEX `charges_partner_time` ON `charges` (`partner_id`,`created_at`,`key`);--> statement-breakpoint
CREATE INDEX `charges_subscription` ON `charges` (`subscription_id`,`created_at`,`key`);--> statement-breakpoint
CREATE INDEX `charges_time` ON `charges` (`created_at`,`key`);