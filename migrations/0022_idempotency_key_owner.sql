PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_idempotency_keys` (
	`owner` text NOT NULL,
	`key` text NOT NULL,
	`fingerprint` text NOT NULL,
	`status` integer,
	`headers` text,
	`body` text,
	`intent` text,
	`locked_until` text NOT NULL,
	`expires_at` text NOT NULL,
	PRIMARY KEY(`owner`, `key`)
);
--> statement-breakpoint
-- drizzle-kit's copy selected "owner" from the old table, which has none: each key moves to the owner of the credential that sent it (src/http/idempotency.ts keyOwner), the most recent first, where two credentials of one owner sent the same key, only that one is kept.
INSERT OR IGNORE INTO `__new_idempotency_keys`("owner", "key", "fingerprint", "status", "headers", "body", "intent", "locked_until", "expires_at") SELECT coalesce((SELECT c."role" || ':' || coalesce(c."subject_id", '') FROM `credentials` c WHERE c."id" = k."credential_id"), k."credential_id"), k."key", k."fingerprint", k."status", k."headers", k."body", k."intent", k."locked_until", k."expires_at" FROM `idempotency_keys` k ORDER BY k."expires_at" DESC;--> statement-breakpoint
DROP TABLE `idempotency_keys`;--> statement-breakpoint
ALTER TABLE `__new_idempotency_keys` RENAME TO `idempotency_keys`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
CREATE INDEX `idempotency_expiry` ON `idempotency_keys` (`expires_at`);