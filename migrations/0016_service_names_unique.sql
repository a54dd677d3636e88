DROP INDEX `services_partner_name`;--> statement-breakpoint
CREATE UNIQUE INDEX `services_name` ON `services` (`name`);