CREATE TABLE `operations` (
	`op_ref` text PRIMARY KEY NOT NULL,
	`partner_id` text NOT NULL,
	`kind` text NOT NULL,
	`payload` text NOT NULL,
	`status` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`result_status` integer,
	`result_body` text,
	`result_location` text,
	`created_at` text NOT NULL,
	`updated_at` text NOT NULL,
	`expires_at` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `operations_partner` ON `operations` (`partner_id`,`op_ref`);--> statement-breakpoint
CREATE INDEX `operations_partner_status` ON `operations` (`partner_id`,`status`,`op_ref`);--> statement-breakpoint
CREATE INDEX `operations_expiry` ON `operations` (`expires_at`);