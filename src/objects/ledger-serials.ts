import { SERIAL_BLOCK, serialIn } from "../domain/commissions";

/** A block of serials in use: the next to hand out, and how far storage has reserved. */
interface Block {
  block: number;
  next: number;
  reserved: number;
}

const RESERVED_AT_A_TIME = 64;

/**
 * The serials a ledger hands out, from the block of them it took from D1 (`take`, under the name
 * the ledger is reached by). Storage keeps
 * where the next instance starts: serials are reserved a few at a time, in the transaction that
 * hands out the first of them, so most commissions write nothing for their serial and a restart
 * skips the ones reserved but not handed out. None is ever handed out twice.
 */
export class LedgerSerials {
  private block: Block | null | undefined;
  private refill: Promise<void> | null = null;

  constructor(
    private readonly sql: SqlStorage,
    private readonly take: (home: string) => Promise<number>,
  ) {
    sql.exec(`CREATE TABLE IF NOT EXISTS serials (
      id INTEGER PRIMARY KEY CHECK (id = 1), block INTEGER NOT NULL, next INTEGER NOT NULL);`);
  }

  /**
   * Makes sure a serial is left in the block, taking the next block if not. The caller takes it
   * (`next`) before it awaits anything but this object's own storage (during which the input gate
   * lets no other request in: `issueAcross` sets its alarm in between), so no other request can.
   */
  async ensure(home: string): Promise<void> {
    while (!this.hasSerial()) {
      this.refill ??= this.take(home)
        .then((block) => {
          this.sql.exec(
            "INSERT INTO serials (id, block, next) VALUES (1, ?, 0) ON CONFLICT (id) DO UPDATE SET block = excluded.block, next = 0",
            block,
          );
          this.block = { block, next: 0, reserved: 0 };
        })
        .finally(() => {
          this.refill = null;
        });
      await this.refill;
    }
  }

  /** The next serial of the block; `ensure` made sure there is one. Runs inside a transaction. */
  next(): number {
    const current = this.current();
    if (!current || current.next >= SERIAL_BLOCK) throw new Error("no serial left in the block");
    if (current.next >= current.reserved) {
      current.reserved = Math.min(current.next + RESERVED_AT_A_TIME, SERIAL_BLOCK);
      this.sql.exec("UPDATE serials SET next = ? WHERE id = 1", current.reserved);
    }
    const serial = serialIn(current.block, current.next);
    current.next += 1;
    return serial;
  }

  /** A transaction rolled back: what memory holds is read again from storage. */
  forget(): void {
    this.block = undefined;
  }

  private hasSerial(): boolean {
    const current = this.current();
    return current !== null && current.next < SERIAL_BLOCK;
  }

  /** The block in use, read from storage once and kept in step with it after. */
  private current(): Block | null {
    if (this.block === undefined) {
      const stored = this.sql
        .exec<{ block: number; next: number }>("SELECT block, next FROM serials WHERE id = 1")
        .toArray()[0];
      this.block = stored ? { block: stored.block, next: stored.next, reserved: stored.next } : null;
    }
    return this.block;
  }
}
