/**
 * What a caller may see: one partner's rows (null: every partner's, for the operator) and, for a
 * customer-scoped key, only one customer's among them (null: all of the partner's customers).
 */
export interface Scope {
  partnerId: string | null;
  customerId: string | null;
}

/** Every row: the operator's scope, and that of the platform's own work. */
export const EVERYTHING: Scope = { partnerId: null, customerId: null };

/** All of one partner's rows: what the work a partner-API request started may touch. */
export const partnerScope = (partnerId: string): Scope => ({ partnerId, customerId: null });

/** Whether a row of `partnerId` and `customerId` is within `scope`; outside it, the row does not exist. */
export function sees(scope: Scope, row: { partnerId: string; customerId: string }): boolean {
  return (
    (scope.partnerId === null || row.partnerId === scope.partnerId) &&
    (scope.customerId === null || row.customerId === scope.customerId)
  );
}
