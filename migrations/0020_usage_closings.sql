CREATE TABLE `usage_closings` (
	`month` text PRIMARY KEY NOT NULL,
	`sent_at` text NOT NULL
);
