CREATE TABLE `vendors` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL
);
--> statement-breakpoint
CREATE TABLE `webhook_attempts` (
	`delivery_id` text NOT NULL,
	`attempt` integer NOT NULL,
	`at` text NOT NULL,
	`status` integer,
	`error` text,
	`duration_ms` integer NOT NULL,
	PRIMARY KEY(`delivery_id`, `attempt`)
);
--> statement-breakpoint
CREATE TABLE `webhook_deliveries` (
	`id` text PRIMARY KEY NOT NULL,
	`vendor_id` text NOT NULL,
	`product` text NOT NULL,
	`subscription_id` text NOT NULL,
	`type` text NOT NULL,
	`sequence` integer NOT NULL,
	`payload` text NOT NULL,
	`status` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`schedule_base` integer DEFAULT 0 NOT NULL,
	`next_attempt_at` text,
	`locked_until` text,
	`last_status` integer,
	`last_error` text,
	`created_at` text NOT NULL,
	`delivered_at` text
);
--> statement-breakpoint
CREATE INDEX `webhook_deliveries_vendor` ON `webhook_deliveries` (`vendor_id`,`id`);--> statement-breakpoint
CREATE INDEX `webhook_deliveries_vendor_status` ON `webhook_deliveries` (`vendor_id`,`status`,`id`);--> statement-breakpoint
CREATE INDEX `webhook_deliveries_status` ON `webhook_deliveries` (`status`,`id`);--> statement-breakpoint
ALTER TABLE `customers` ADD `user_name` text;--> statement-breakpoint
ALTER TABLE `customers` ADD `phone` text;--> statement-breakpoint
ALTER TABLE `customers` ADD `address` text;--> statement-breakpoint
PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_products` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`kind` text NOT NULL,
	`unit` text NOT NULL,
	`unit_price_minor` integer NOT NULL,
	`currency` text NOT NULL,
	`quota_resource` text NOT NULL,
	`aliases` text DEFAULT '[]' NOT NULL,
	`delivery` text DEFAULT 'builtin' NOT NULL,
	`vendor_id` text,
	`endpoint` text,
	`signing_secret` text,
	`previous_secret` text,
	`previous_secret_expires_at` text,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	FOREIGN KEY (`quota_resource`) REFERENCES `resources`(`name`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`vendor_id`) REFERENCES `vendors`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
INSERT INTO `__new_products`("id", "name", "kind", "unit", "unit_price_minor", "currency", "quota_resource", "aliases", "delivery", "vendor_id", "endpoint", "signing_secret", "previous_secret", "previous_secret_expires_at", "created_at") SELECT "id", "name", "kind", "unit", "unit_price_minor", "currency", "quota_resource", "aliases", "delivery", "vendor_id", "endpoint", "signing_secret", "previous_secret", "previous_secret_expires_at", "created_at" FROM `products`;--> statement-breakpoint
DROP TABLE `products`;--> statement-breakpoint
ALTER TABLE `__new_products` RENAME TO `products`;--> statement-breakpoint
PRAGMA foreign_keys=ON;