-- Each name names one product: an alias is no other product's id or alias, and an id is no other
-- product's alias. PUT /v1/products checks it on the catalog it read; these triggers check it in
-- the write itself, so two PUTs at once cannot both give one name to two products.
CREATE TRIGGER `products_names_unique_insert` BEFORE INSERT ON `products`
WHEN EXISTS (
	SELECT 1 FROM `products` o WHERE o.`id` <> NEW.`id` AND (
		EXISTS (SELECT 1 FROM json_each(o.`aliases`) t WHERE t.value = NEW.`id`)
		OR EXISTS (
			SELECT 1 FROM json_each(NEW.`aliases`) a
			WHERE a.value = o.`id` OR a.value IN (SELECT value FROM json_each(o.`aliases`))
		)
	)
)
BEGIN SELECT RAISE(ABORT, 'product name clash'); END;
--> statement-breakpoint
CREATE TRIGGER `products_names_unique_update` BEFORE UPDATE OF `id`, `aliases` ON `products`
WHEN EXISTS (
	SELECT 1 FROM `products` o WHERE o.`id` <> NEW.`id` AND o.`id` <> OLD.`id` AND (
		EXISTS (SELECT 1 FROM json_each(o.`aliases`) t WHERE t.value = NEW.`id`)
		OR EXISTS (
			SELECT 1 FROM json_each(NEW.`aliases`) a
			WHERE a.value = o.`id` OR a.value IN (SELECT value FROM json_each(o.`aliases`))
		)
	)
)
BEGIN SELECT RAISE(ABORT, 'product name clash'); END;
