ALTER TABLE `operations` ADD `customer_id` text;--> statement-breakpoint
CREATE INDEX `operations_customer` ON `operations` (`partner_id`,`customer_id`,`op_ref`,`status`);--> statement-breakpoint
CREATE INDEX `orders_customer` ON `orders` (`partner_id`,`customer_id`,`id`);--> statement-breakpoint
CREATE INDEX `subscriptions_customer` ON `subscriptions` (`partner_id`,`customer_id`,`id`,`product`,`kind`,`start_time`,`end_time`,`ended_at`,`previous_id`);