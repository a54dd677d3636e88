DROP INDEX `subscriptions_due`;--> statement-breakpoint
ALTER TABLE `subscriptions` ADD `followed` integer DEFAULT false NOT NULL;--> statement-breakpoint
-- The terms there are: followed as the due scan read them until now, a created term after it
-- that is live or ran its course (expired). From here on each batch of projections sets it.
UPDATE `subscriptions` SET `followed` = 1 WHERE EXISTS (
	SELECT 1 FROM `subscriptions` n WHERE n.`id` = `subscriptions`.`next_id`
	AND (n.`ended_at` IS NULL OR json_extract(n.`body`, '$.endReason') = 'expired')
);--> statement-breakpoint
CREATE INDEX `subscriptions_due` ON `subscriptions` (`end_time`,`id`) WHERE ended_at is null and followed = 0;
