CREATE TABLE `commission_index` (
	`serial` integer PRIMARY KEY NOT NULL,
	`service_id` text NOT NULL,
	`state` text NOT NULL,
	`version` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `commission_index_service_state` ON `commission_index` (`service_id`,`state`,`serial`);--> statement-breakpoint
CREATE TABLE `serial_blocks` (
	`block` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`home` text NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) NOT NULL
);
--> statement-breakpoint
-- Serials already handed out by the old D1 commissions table stay taken: the first block starts
-- after them (ledgers remember resolved serials, so a reused one would be taken for a retry).
INSERT INTO `serial_blocks` (`block`, `home`) SELECT coalesce(max(`serial`), 0) / 1024 + 1, 'issued before ledgers kept commissions' FROM `commissions`;--> statement-breakpoint
DROP TABLE `commissions`;