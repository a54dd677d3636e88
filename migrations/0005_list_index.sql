DROP INDEX `subscriptions_partner`;--> statement-breakpoint
CREATE INDEX `subscriptions_list` ON `subscriptions` (`partner_id`,`id`,`product`,`kind`,`start_time`,`end_time`,`ended_at`,`previous_id`);