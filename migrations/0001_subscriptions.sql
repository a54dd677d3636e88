CREATE TABLE `idempotency_keys` (
	`credential_id` text NOT NULL,
	`key` text NOT NULL,
	`fingerprint` text NOT NULL,
	`status` integer,
	`headers` text,
	`body` text,
	`locked_until` text NOT NULL,
	`expires_at` text NOT NULL,
	PRIMARY KEY(`credential_id`, `key`)
);
--> statement-breakpoint
CREATE INDEX `idempotency_expiry` ON `idempotency_keys` (`expires_at`);--> statement-breakpoint
CREATE TABLE `orders` (
	`id` text PRIMARY KEY NOT NULL,
	`partner_id` text NOT NULL,
	`customer_id` text NOT NULL,
	`lines` text NOT NULL,
	`total_minor` integer NOT NULL,
	`currency` text NOT NULL,
	`state` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	FOREIGN KEY (`partner_id`) REFERENCES `partners`(`id`) ON UPDATE no action ON DELETE no action,
	FOREIGN KEY (`customer_id`) REFERENCES `customers`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE INDEX `orders_partner` ON `orders` (`partner_id`,`id`);--> statement-breakpoint
CREATE TABLE `products` (
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
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL,
	FOREIGN KEY (`quota_resource`) REFERENCES `resources`(`name`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `subscriptions` (
	`id` text PRIMARY KEY NOT NULL,
	`partner_id` text NOT NULL,
	`customer_id` text NOT NULL,
	`product` text NOT NULL,
	`kind` text NOT NULL,
	`amount` integer NOT NULL,
	`start_time` text NOT NULL,
	`end_time` text,
	`auto_renew` integer NOT NULL,
	`ended_at` text,
	`root_id` text NOT NULL,
	`previous_id` text,
	`next_id` text,
	`order_id` text NOT NULL,
	`body` text NOT NULL,
	`version` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `subscriptions_partner` ON `subscriptions` (`partner_id`,`id`);--> statement-breakpoint
CREATE INDEX `subscriptions_partner_product` ON `subscriptions` (`partner_id`,`product`,`id`);--> statement-breakpoint
CREATE INDEX `subscriptions_root` ON `subscriptions` (`root_id`,`id`);--> statement-breakpoint
CREATE INDEX `subscriptions_due` ON `subscriptions` (`end_time`,`id`);--> statement-breakpoint
CREATE INDEX `subscriptions_depletion_queue` ON `subscriptions` (`customer_id`,`product`,`ended_at`,`id`);--> statement-breakpoint
PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_commissions` (
	`serial` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`service_id` text,
	`reference` text,
	`name` text DEFAULT '' NOT NULL,
	`state` text NOT NULL,
	`provisions` text NOT NULL,
	`issue_time` text NOT NULL,
	`updated_at` text NOT NULL,
	FOREIGN KEY (`service_id`) REFERENCES `services`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
INSERT INTO `__new_commissions`("serial", "service_id", "reference", "name", "state", "provisions", "issue_time", "updated_at") SELECT "serial", "service_id", "reference", "name", "state", "provisions", "issue_time", "updated_at" FROM `commissions`;--> statement-breakpoint
DROP TABLE `commissions`;--> statement-breakpoint
ALTER TABLE `__new_commissions` RENAME TO `commissions`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
CREATE INDEX `commissions_service_state` ON `commissions` (`service_id`,`state`,`serial`);--> statement-breakpoint
CREATE INDEX `commissions_state_updated` ON `commissions` (`state`,`updated_at`);--> statement-breakpoint
CREATE UNIQUE INDEX `commissions_reference` ON `commissions` (`reference`) WHERE state <> 'failed';